"""z_G (its mean μ_G) and the decoded lattice are invariant, the encoder's coordinate update is equivariant, under
rotation, translation, atom permutation and shifting atoms by lattice vectors — on real perov_5 and MP-20 crystals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from torch_geometric.utils import to_dense_batch

from autoperi.config import GraphConfig
from autoperi.model.autoperi_gnn import AutoPeriGNN, batch_from_frame, collate, dataset_statistics
from autoperi.model.lattice import encode_lattice
from tests.model.helpers import frame_of, random_rotation, randomize, raw_structures, small_config

TOL = 1e-8


@pytest.fixture(scope="module", params=["perov_5", "mp20_bt"])
def setup(request):
    structures = list(raw_structures(request.param, 6))
    frame = frame_of(structures)
    model = AutoPeriGNN(small_config(), dataset_statistics(frame)).double()
    randomize(model)
    return model, structures


def encode(model, structures, spacegroups=None):
    frame = frame_of(structures)
    if spacegroups is not None:
        frame["spacegroup"] = spacegroups
    batch = collate(batch_from_frame(frame, GraphConfig(), model.cfg.encoder_cutoff_angstrom))
    n = batch.num_graphs
    mu, _, pos = model.encoder(batch, n)
    n_atoms = torch.bincount(batch.batch, minlength=n)
    code, theta = encode_lattice(batch.lattice.double(), n_atoms, model.length_mean.double(), model.length_std.double())
    species, mask = to_dense_batch(batch.atomic_numbers, batch.batch)
    cond = model.condition(batch.spacegroup - 1)
    pred_code, pred_theta = model.lattice(mu, code, theta, model.composition_embedding(species, mask), cond)
    lattice = model.decode_lattice(pred_code, pred_theta, n_atoms, batch.spacegroup.tolist())
    return mu.detach(), pos.detach(), lattice.detach(), list(frame["spacegroup"])


def transformed(structures, kind: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    out, perms = [], []
    for s in structures:
        frac, species, matrix = s.frac_coords.copy(), [site.specie for site in s], s.lattice.matrix.copy()
        perm = np.arange(len(s))
        if kind == "rotation":
            matrix = matrix @ random_rotation(seed).numpy().T
        elif kind == "translation":
            frac = np.mod(frac + rng.random(3), 1.0)
        elif kind == "permutation":
            perm = rng.permutation(len(s))
            frac, species = frac[perm], [species[i] for i in perm]
        elif kind == "lattice_shift":
            frac = frac + rng.integers(-2, 3, size=frac.shape)
        perms.append(perm)
        out.append(Structure(Lattice(matrix), species, frac, coords_are_cartesian=False, to_unit_cell=False))
    return out, perms


@pytest.mark.parametrize("kind", ["rotation", "translation", "permutation", "lattice_shift"])
def test_latent_mean_and_decoded_lattice_are_invariant(setup, kind):
    model, structures = setup
    mu, _, lattice, sgs = encode(model, structures)
    moved, _ = transformed(structures, kind)
    mu2, _, lattice2, _ = encode(model, moved, sgs)
    assert mu.abs().max() > 1e-3  # a non-trivial latent
    torch.testing.assert_close(mu2, mu, atol=TOL, rtol=TOL)
    torch.testing.assert_close(lattice2, lattice, atol=TOL, rtol=TOL)


def test_a_non_rigid_change_does_change_the_latent(setup):
    """The invariance test can fail: stretching one axis changes μ_G."""
    model, structures = setup
    mu, *_ = encode(model, structures)
    stretched = [Structure(Lattice(s.lattice.matrix * np.array([[1.1], [1.0], [1.0]])), s.species, s.frac_coords)
                 for s in structures]
    mu2, *_ = encode(model, stretched)
    assert (mu2 - mu).abs().max() > 1e-4


@pytest.mark.parametrize("kind", ["rotation", "translation", "permutation", "lattice_shift"])
def test_coordinate_update_is_equivariant(setup, kind):
    model, structures = setup
    _, pos, _, sgs = encode(model, structures)
    moved, perms = transformed(structures, kind)
    _, pos2, _, _ = encode(model, moved, sgs)
    start = 0
    rotation = random_rotation(0)
    displaced = False
    for s, s2, perm in zip(structures, moved, perms, strict=True):
        n = len(s)
        p, p2 = pos[start:start + n], pos2[start:start + n]
        x0 = torch.tensor(s.lattice.get_cartesian_coords(s.frac_coords))
        displaced |= bool((p - x0).abs().max() > 1e-3)  # the update moved atoms, so the check is not vacuous
        if kind == "rotation":
            torch.testing.assert_close(p2, p @ rotation.T, atol=TOL, rtol=TOL)
        else:
            # same displacement of every atom (in its new order); absolute positions differ by lattice vectors only
            x0_moved = torch.tensor(s2.lattice.get_cartesian_coords(s2.frac_coords))
            torch.testing.assert_close(p2 - x0_moved, (p - x0)[torch.as_tensor(perm)], atol=TOL, rtol=TOL)
        start += n
    assert displaced
