"""Text and files → pymatgen Structures, refusing what pymatgen would silently "fix".

pymatgen returns a structure for many broken inputs without complaint (a negative cell length taken as its absolute
value, an unknown symbol read as a dummy species, zero occupancies dropped, coordinates wrapped, an unknown space
group replaced by P1, a CIF's later data blocks ignored). So the raw CIF fields are checked before the parsed
structure is trusted, every data block is read, and every structure passes `check_structure`.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymatgen.core import Element, Lattice, Structure
from pymatgen.io.cif import CifFile, CifParser

# Every reason a row or file can be refused; reports count by these names.
SKIP_REASONS = (
    "malformed",
    "empty",
    "multiple_blocks",
    "partial_occupancy",
    "unknown_element",
    "bad_lattice",
    "nan_coordinates",
    "absurd_coordinates",
    "unknown_space_group",
    "atoms_too_close",
    "too_many_atoms",
    "volume_filter",
)

STRUCTURE_SUFFIXES = {".cif": "cif", ".vasp": "poscar", ".poscar": "poscar", ".extxyz": "extxyz", ".xyz": "extxyz"}
ABSURD_FRACTION = 100.0  # |fractional coordinate| beyond this is a broken file, not an unwrapped atom


class RefusedInput(ValueError):
    """An input that is not a usable crystal; `reason` is one of SKIP_REASONS."""

    def __init__(self, reason: str, detail: str = ""):
        assert reason in SKIP_REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    max_atoms: int = 64
    min_distance_angstrom: float = 0.5
    max_lattice_length_angstrom: float = 100.0


_BLOCK_START = re.compile(r"^data_", re.MULTILINE)
_SYMBOL = re.compile(r"^([A-Z][a-z]?)")


def split_cif_blocks(text: str) -> list[str]:
    """One string per `data_` block (text before the first block is dropped)."""
    starts = [m.start() for m in _BLOCK_START.finditer(text)]
    if not starts:
        return []
    return [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)], strict=True)]


def _as_list(value) -> list:
    """CIF loop columns come back as lists, single values as scalars; treat both as lists."""
    return value if isinstance(value, list) else [value]


def _cif_number(value) -> float:
    """CIF numeric field ('4.05', '4.056(2)', '?') → float; NaN where absent."""
    if isinstance(value, list):
        raise ValueError("expected a single value")
    text = str(value).strip().split("(")[0]
    return float(text) if text not in {"", "?", "."} else math.nan


def _check_cif_block(block: dict, name: str) -> None:
    cell = [block.get(f"_cell_length_{x}") for x in "abc"] + [
        block.get(f"_cell_angle_{x}") for x in ("alpha", "beta", "gamma")
    ]
    if any(v is None for v in cell):
        raise RefusedInput("malformed", f"block {name}: missing cell parameters")
    try:
        a, b, c, alpha, beta, gamma = (_cif_number(v) for v in cell)
    except ValueError as exc:
        raise RefusedInput("malformed", f"block {name}: unreadable cell parameter ({exc})") from None
    if not all(np.isfinite([a, b, c, alpha, beta, gamma])):
        raise RefusedInput("bad_lattice", f"block {name}: non-numeric cell parameter")
    if min(a, b, c) <= 0 or not all(0 < x < 180 for x in (alpha, beta, gamma)):
        raise RefusedInput("bad_lattice", f"block {name}: a,b,c={a},{b},{c} α,β,γ={alpha},{beta},{gamma}")
    symbols = block.get("_atom_site_type_symbol") or block.get("_atom_site_label")
    if not symbols:
        raise RefusedInput("empty", f"block {name}: no atom sites")
    for sym in _as_list(symbols):
        m = _SYMBOL.match(str(sym))
        if not m or not Element.is_valid_symbol(m.group(1)):
            raise RefusedInput("unknown_element", f"block {name}: site symbol {sym!r}")
    occupancies = block.get("_atom_site_occupancy")
    if occupancies is not None:
        occ = np.array([_cif_number(o) for o in _as_list(occupancies)])
        if np.any(np.abs(occ[np.isfinite(occ)] - 1.0) > 1e-3):
            raise RefusedInput("partial_occupancy", f"block {name}: occupancies {sorted(set(occ.round(3)))}")
    for axis in "xyz":
        values = block.get(f"_atom_site_fract_{axis}")
        if values is None:
            continue
        try:
            frac = np.array([_cif_number(v) for v in _as_list(values)])
        except ValueError:
            raise RefusedInput("malformed", f"block {name}: unreadable _atom_site_fract_{axis}") from None
        if not np.all(np.isfinite(frac)):
            raise RefusedInput("nan_coordinates", f"block {name}: _atom_site_fract_{axis} has NaN/missing")
        if np.any(np.abs(frac) > ABSURD_FRACTION):
            raise RefusedInput("absurd_coordinates", f"block {name}: |fract_{axis}| up to {np.abs(frac).max():g}")


def _is_p1(block: dict) -> bool:
    ops = block.get("_symmetry_equiv_pos_as_xyz", block.get("_space_group_symop_operation_xyz"))
    ops = _as_list(ops)
    return len(ops) == 1 and isinstance(ops[0], str) and ops[0].replace(" ", "").strip("'\"").lower() == "x,y,z"


def _p1_structure(block: dict) -> Structure:
    """A P1 block (identity the only operation) read directly: the sites are the atom-site loop as written.

    Same structure as pymatgen's CifParser (tests/data/test_readers.py compares them on real files), about 15x
    faster, and stricter: pymatgen merges coincident sites, which the distance check here refuses instead.
    """
    params = [_cif_number(block[f"_cell_length_{x}"]) for x in "abc"]
    params += [_cif_number(block[f"_cell_angle_{x}"]) for x in ("alpha", "beta", "gamma")]
    symbols = _as_list(block.get("_atom_site_type_symbol") or block["_atom_site_label"])
    coords = [[_cif_number(v) for v in _as_list(block[f"_atom_site_fract_{x}"])] for x in "xyz"]
    species = [_SYMBOL.match(str(sym)).group(1) for sym in symbols]
    return Structure(Lattice.from_parameters(*params), species, np.array(coords).T)


def structure_from_cif_block(text: str) -> Structure:
    """Exactly one CIF data block → Structure, or RefusedInput naming why not."""
    if not text.strip():
        raise RefusedInput("empty", "no text")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            blocks = {name: block.data for name, block in CifFile.from_str(text).data.items()}
        except Exception as exc:  # pymatgen raises many types for unreadable text
            raise RefusedInput("malformed", f"{type(exc).__name__}: {exc}"[:200]) from None
        if len(blocks) != 1:
            raise RefusedInput("multiple_blocks" if blocks else "malformed", f"{len(blocks)} data blocks")
        name, block = next(iter(blocks.items()))
        _check_cif_block(block, name)
        if _is_p1(block) and "_atom_site_fract_x" in block:
            return _p1_structure(block)
        try:
            structures = CifParser(io.StringIO(text)).parse_structures(primitive=False, on_error="raise")
        except Exception as exc:
            raise RefusedInput("malformed", f"block {name}: {exc}"[:200]) from None
    messages = " | ".join(str(w.message) for w in caught)
    if "Defaulting to P1" in messages:
        raise RefusedInput("unknown_space_group", f"block {name}: {messages}"[:200])
    if "Missing elements" in messages or "not a valid Element" in messages:
        raise RefusedInput("unknown_element", f"block {name}: {messages}"[:200])
    if len(structures) != 1:
        raise RefusedInput("malformed", f"block {name}: {len(structures)} structures parsed")
    return structures[0]


def check_readable_crystal(structure: Structure) -> None:
    """Refuse (RefusedInput) what is not an ordered periodic crystal of real elements with a finite lattice."""
    if len(structure) == 0:
        raise RefusedInput("empty", "no sites")
    if not structure.is_ordered:
        raise RefusedInput("partial_occupancy", str(structure.composition))
    for site in structure:
        for sp in site.species:
            if not isinstance(sp, Element) and not isinstance(getattr(sp, "element", None), Element):
                raise RefusedInput("unknown_element", f"species {sp}")
    if not np.all(np.isfinite(structure.lattice.matrix)):
        raise RefusedInput("bad_lattice", "non-finite lattice")


def check_structure(structure: Structure, limits: Limits) -> None:
    """Refuse structures no crystal model should see. Raises RefusedInput; returns None when fine."""
    check_readable_crystal(structure)
    abc = structure.lattice.abc
    if structure.lattice.volume <= 1e-3 or max(abc) > limits.max_lattice_length_angstrom:
        raise RefusedInput(
            "bad_lattice", f"abc={tuple(round(x, 3) for x in abc)} volume={structure.lattice.volume:.3g} Å³"
        )
    if not np.all(np.isfinite(structure.frac_coords)):
        raise RefusedInput("nan_coordinates", "non-finite coordinates")
    if np.any(np.abs(structure.frac_coords) > ABSURD_FRACTION):
        raise RefusedInput("absurd_coordinates", f"|frac| up to {np.abs(structure.frac_coords).max():g}")


def _poscar(text: str) -> Structure:
    from pymatgen.io.vasp import Poscar

    try:
        poscar = Poscar.from_str(text)
    except Exception as exc:  # pymatgen raises IndexError etc. when coordinate lines are missing
        raise RefusedInput("malformed", f"POSCAR: {type(exc).__name__}: {exc}"[:200]) from None
    if sum(poscar.natoms) != len(poscar.structure):
        expected = sum(poscar.natoms)
        raise RefusedInput("malformed", f"POSCAR: header counts {expected} atoms, read {len(poscar.structure)}")
    return poscar.structure


def _extxyz(path: Path) -> list[Structure]:
    from ase.io import read
    from pymatgen.io.ase import AseAtomsAdaptor

    try:
        frames = read(path, index=":", format="extxyz")
    except Exception as exc:
        raise RefusedInput("malformed", f"extxyz: {type(exc).__name__}: {exc}"[:200]) from None
    out = []
    for atoms in frames:
        if not atoms.pbc.all() or atoms.cell.volume <= 0:
            out.append(RefusedInput("bad_lattice", "frame without a full periodic cell"))
            continue
        out.append(AseAtomsAdaptor.get_structure(atoms))
    return out


def _refusal_or(read, *args):
    """read(*args), or the RefusedInput saying why not: one bad entry never stops a folder or a file."""
    try:
        return read(*args)
    except RefusedInput as exc:
        return exc
    except Exception as exc:  # any other parser failure on broken text is still a refusal
        return RefusedInput("malformed", f"{type(exc).__name__}: {exc}"[:200])


def read_structure_file(path: str | Path) -> list[tuple[str, Structure | RefusedInput]]:
    """A file → [(key, Structure or the RefusedInput explaining why not)], one entry per block or frame.

    Keys are `file` for single-structure files and `file#k` (k from 0) where a file holds several.
    Formats by suffix: .cif (every data block), POSCAR/CONTCAR/.vasp/.poscar, .extxyz/.xyz (every frame).
    """
    path = Path(path)
    kind = STRUCTURE_SUFFIXES.get(path.suffix.lower())
    if kind is None and path.name.upper().startswith(("POSCAR", "CONTCAR")):
        kind = "poscar"
    if kind is None:
        return [(path.name, RefusedInput("malformed", f"unsupported file type {path.suffix!r}"))]
    try:
        if kind == "extxyz":
            items = _extxyz(path)
        else:
            text = path.read_text(errors="replace")
            if kind == "poscar":
                items = [_poscar(text)]
            else:
                blocks = split_cif_blocks(text)
                if not blocks:
                    raise RefusedInput("empty" if not text.strip() else "malformed", "no data_ block")
                items = [_refusal_or(structure_from_cif_block, block) for block in blocks]
    except RefusedInput as exc:
        items = [exc]
    except Exception as exc:  # unreadable bytes, a frame ASE or pymatgen cannot convert, ...
        items = [RefusedInput("malformed", f"{type(exc).__name__}: {exc}"[:200])]
    if not items:
        items = [RefusedInput("empty", "no structures in file")]
    if len(items) == 1:
        return [(path.name, items[0])]
    return [(f"{path.name}#{k}", item) for k, item in enumerate(items)]


def read_structures(path: str | Path) -> list[tuple[str, Structure | RefusedInput]]:
    """A folder of structure files, one structure file, or a CSV with a `cif` column → [(key, item)].

    Keys name the file (relative to the folder), `file#k` for the k-th block/frame, or `file:row` for CSV rows.
    Nothing is dropped: unreadable entries come back as RefusedInput with their reason.
    """
    path = Path(path)
    if path.is_dir():
        out = []
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            prefix = str(file.relative_to(path).parent)
            out += [(key if prefix == "." else f"{prefix}/{key}", item) for key, item in read_structure_file(file)]
        return out
    if path.suffix.lower() in {".csv", ".gz"} and ".csv" in path.suffixes:
        import pandas as pd

        table = pd.read_csv(path, index_col=False)
        if "cif" not in table.columns:
            return [(path.name, RefusedInput("malformed", f"CSV without a `cif` column: {list(table.columns)[:8]}"))]
        out = []
        texts = table["cif"].fillna("").astype(str)
        return [(f"{path.name}:{row}", _refusal_or(structure_from_cif_block, text)) for row, text in enumerate(texts)]
    return read_structure_file(path)
