"""Numerical checks of the model's symmetries, shown in notebooks/02_model (the tests in tests/model assert them).

`invariance_errors`: for real crystals, the largest change of μ_G, of the decoded lattice and of the encoder's
per-atom displacement under rotation, translation, permutation and shifting atoms by lattice vectors (each should be
at floating-point level), next to a control (stretching one lattice axis) that must change them.
`flow_checks`: the flow's inverse error and its log-determinant against autograd's Jacobian.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from pymatgen.core import Lattice, Structure
from torch_geometric.utils import to_dense_batch

from autoperi.config import GraphConfig
from autoperi.model.lattice import encode_lattice

TRANSFORMS = ("rotation", "translation", "permutation", "lattice_shift", "control: stretch a by 10%")


def _rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def transform(structures, kind: str, seed: int = 0) -> tuple[list[Structure], list[np.ndarray]]:
    """Transformed copies (no wrapping into the cell) and the atom order of each copy."""
    rng = np.random.default_rng(seed)
    out, orders = [], []
    for s in structures:
        frac, species, matrix = s.frac_coords.copy(), list(s.species), s.lattice.matrix.copy()
        order = np.arange(len(s))
        if kind == "rotation":
            matrix = matrix @ _rotation(seed).T
        elif kind == "translation":
            frac = np.mod(frac + rng.random(3), 1.0)
        elif kind == "permutation":
            order = rng.permutation(len(s))
            frac, species = frac[order], [species[i] for i in order]
        elif kind == "lattice_shift":
            frac = frac + rng.integers(-2, 3, size=frac.shape)
        elif kind.startswith("control"):
            matrix = matrix * np.array([[1.1], [1.0], [1.0]])
        orders.append(order)
        out.append(Structure(Lattice(matrix), species, frac, coords_are_cartesian=False, to_unit_cell=False))
    return out, orders


@torch.no_grad()
def encode_structures(model, structures, spacegroups) -> dict[str, torch.Tensor]:
    """μ_G [B, latent], decoded lattice [B, 3, 3] and the encoder's per-atom displacement [n, 3] (Å)."""
    from autoperi.model.autoperi_gnn import collate

    graphs = []
    from autoperi.graphs.crystal_graph import build_graph

    cfg = GraphConfig(cutoff_angstrom=model.cfg.encoder_cutoff_angstrom)
    for s, sg in zip(structures, spacegroups, strict=True):
        g = build_graph([site.specie.Z for site in s], s.frac_coords, s.lattice.matrix, cfg,
                        spacegroup=torch.tensor([int(sg)]))
        del g.x, g.edge_attr
        graphs.append(g)
    batch = collate(graphs)
    dtype = model.condition.weight.dtype
    n = batch.num_graphs
    mu, _, pos = model.encoder(batch, n)
    n_atoms = torch.bincount(batch.batch, minlength=n)
    code, theta = encode_lattice(batch.lattice.to(dtype), n_atoms, model.length_mean.to(dtype),
                                 model.length_std.to(dtype))
    species, mask = to_dense_batch(batch.atomic_numbers, batch.batch)
    cond = model.condition(batch.spacegroup - 1)
    pc, pt = model.lattice(mu, code, theta, model.composition_embedding(species, mask), cond)
    lattice = model.decode_lattice(pc, pt, n_atoms, batch.spacegroup.tolist())
    start = (batch.frac_coords.to(dtype).unsqueeze(1) @ batch.lattice.to(dtype)[batch.batch]).squeeze(1)
    return {"mu": mu, "lattice": lattice, "displacement": pos - start}


def invariance_errors(model, structures, spacegroups, seed: int = 0) -> pd.DataFrame:
    """Max |change| of μ_G, decoded lattice and per-atom displacement (rotated back / reordered) per transform."""
    model = model.double().eval()
    ref = encode_structures(model, structures, spacegroups)
    rows = []
    for kind in TRANSFORMS:
        moved, orders = transform(structures, kind, seed)
        got = encode_structures(model, moved, spacegroups)
        disp = got["displacement"]
        if kind == "rotation":
            disp = disp @ torch.as_tensor(_rotation(seed))  # rotate back: equivariant displacement
        sizes = [len(s) for s in structures]
        ref_disp = torch.cat([d[torch.as_tensor(o)] for d, o in
                              zip(torch.split(ref["displacement"], sizes), orders, strict=True)])
        rows.append({"transform": kind, "max |Δ μ_G|": float((got["mu"] - ref["mu"]).abs().max()),
                     "max |Δ decoded lattice| (Å)": float((got["lattice"] - ref["lattice"]).abs().max()),
                     "max |Δ displacement| (Å)": float((disp - ref_disp).abs().max())})
    model.float()
    return pd.DataFrame(rows).set_index("transform")


def flow_checks(flow, cond: torch.Tensor, seed: int = 0, n_jacobian: int = 8) -> dict:
    """Inverse error max |f⁻¹(f(u)) − u| (torus part on the circle) and |log det − log|det J_autograd|| (float64)."""
    flow = flow.double()
    g = torch.Generator().manual_seed(seed)
    n = cond.shape[0]
    u_g = torch.randn(n, flow.gauss_dim, generator=g, dtype=torch.float64)
    u_t = (torch.rand(n, flow.torus_dim, generator=g, dtype=torch.float64) * 2 - 1) * np.pi
    with torch.no_grad():
        z_g, z_t, logdet = flow(u_g, u_t, cond)
        back_g, back_t, _ = flow.inverse(z_g, z_t, cond)
    circ = torch.remainder(back_t - u_t + np.pi, 2 * np.pi) - np.pi
    inverse_error = float(max((back_g - u_g).abs().max(), circ.abs().max()))
    jac_errors = []
    for i in range(min(n_jacobian, n)):
        def f(x, i=i):
            zg, zt, _ = flow(x[None, : flow.gauss_dim], x[None, flow.gauss_dim:], cond[i: i + 1])
            return torch.cat([zg, zt], dim=-1)[0]
        jac = torch.autograd.functional.jacobian(f, torch.cat([u_g[i], u_t[i]]))
        jac_errors.append(abs(float(torch.linalg.slogdet(jac)[1]) - float(logdet[i])))
    flow.float()
    on_torus = bool(((z_t >= -np.pi) & (z_t < np.pi)).all())
    return {"inverse_max_error": inverse_error, "logdet_max_error": max(jac_errors), "torus_outputs_in_range": on_torus}
