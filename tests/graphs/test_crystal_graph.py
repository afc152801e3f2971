"""Graph features: invariances, differentiable edge vectors, batching."""

import numpy as np
import pytest
import torch

from autoperi.config import GraphConfig
from autoperi.graphs import build_graph, build_graphs, edge_vectors

CFG = GraphConfig()


def _graph(structure, frac=None):
    frac = structure.frac_coords if frac is None else frac
    return build_graph([s.specie.Z for s in structure], frac, structure.lattice.matrix, CFG)


def _edge_multiset(g):
    vec = edge_vectors(g).detach().numpy()
    keys = np.concatenate([g.edge_index.T.numpy(), np.round(vec, 6)], axis=1)
    return keys[np.lexsort(keys.T[::-1])]


@pytest.mark.parametrize("fixture", ["nacl", "silicon", "perovskite"])
def test_features_invariant_to_lattice_vector_shifts(fixture, request):
    s = request.getfixturevalue(fixture)
    rng = np.random.default_rng(0)
    shifted = s.frac_coords + rng.integers(-3, 4, size=s.frac_coords.shape)
    g0, g1 = _graph(s), _graph(s, shifted)
    torch.testing.assert_close(g0.x, g1.x, atol=1e-9, rtol=0)
    # same (i, j, edge vector) set: the image shifts absorb the lattice-vector moves
    np.testing.assert_allclose(_edge_multiset(g0), _edge_multiset(g1), atol=1e-6)
    attr0 = np.sort(np.round(g0.edge_attr.numpy(), 8), axis=0)
    attr1 = np.sort(np.round(g1.edge_attr.numpy(), 8), axis=0)
    np.testing.assert_allclose(attr0, attr1, atol=1e-7)


def test_edge_distances_match_pymatgen(perovskite):
    g = _graph(perovskite)
    dist = edge_vectors(g).norm(dim=-1).numpy()
    i, j, images, ref = perovskite.get_neighbor_list(CFG.cutoff_angstrom)
    assert len(dist) == len(ref)
    np.testing.assert_allclose(np.sort(dist), np.sort(ref), atol=1e-8)


def test_node_features_layout(perovskite):
    g = _graph(perovskite)
    assert g.x.shape == (5, 1 + CFG.max_atomic_number + 6)
    assert g.x[:, 0].tolist() == [38, 22, 8, 8, 8]
    assert g.x[0, 1 + 37] == 1 and g.x[0, 1 : 1 + CFG.max_atomic_number].sum() == 1  # Sr one-hot
    assert g.edge_attr.shape == (g.edge_index.shape[1], CFG.rbf_count)


def test_edge_vectors_are_differentiable_in_lattice_and_coordinates(silicon):
    g = _graph(silicon)
    g.lattice = g.lattice.clone().requires_grad_(True)
    g.frac_coords = g.frac_coords.clone().requires_grad_(True)

    def energy(lattice, frac):
        g.lattice, g.frac_coords = lattice, frac
        return (edge_vectors(g).norm(dim=-1) ** -2).sum()

    assert torch.autograd.gradcheck(energy, (g.lattice, g.frac_coords), eps=1e-6, atol=1e-5)


def test_batched_graphs_equal_single_graphs(nacl, silicon, perovskite):
    structures = [nacl, silicon, perovskite]
    triples = [([x.specie.Z for x in s], s.frac_coords, s.lattice.matrix) for s in structures]
    batch = build_graphs(triples, CFG)
    vec = edge_vectors(batch)
    offset = 0
    for k, s in enumerate(structures):
        single = _graph(s)
        n = single.edge_index.shape[1]
        torch.testing.assert_close(vec[offset : offset + n], edge_vectors(single))
        torch.testing.assert_close(batch.x[batch.ptr[k] : batch.ptr[k + 1]], single.x)
        offset += n
    assert offset == vec.shape[0]
