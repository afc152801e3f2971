"""Crystal graphs under periodic boundary conditions."""

from autoperi.graphs.crystal_graph import build_graph, build_graphs, edge_vectors, rbf_expand
from autoperi.graphs.neighbors import min_pair_distance, neighbor_list

__all__ = ["build_graph", "build_graphs", "edge_vectors", "min_pair_distance", "neighbor_list", "rbf_expand"]
