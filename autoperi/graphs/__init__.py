"""Crystal graphs under periodic boundary conditions (names load their submodule on first use: the neighbour list
needs no torch)."""

from autoperi.lazy import lazy_exports

_EXPORTS = {
    "build_graph": "crystal_graph",
    "build_graphs": "crystal_graph",
    "edge_vectors": "crystal_graph",
    "rbf_expand": "crystal_graph",
    "min_pair_distance": "neighbors",
    "neighbor_list": "neighbors",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
