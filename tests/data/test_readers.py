"""Every bad-input reason is detected, named and never crashes; what pymatgen silently repairs is caught."""

import pytest
from pymatgen.core import Lattice, Structure

from autoperi.data.preprocess import structure_record
from autoperi.data.readers import Limits, RefusedInput, read_structure_file, structure_from_cif_block

CIF = """data_{name}
_symmetry_space_group_name_H-M   '{sg}'
_cell_length_a   {a}
_cell_length_b   5.64
_cell_length_c   5.64
_cell_angle_alpha   90
_cell_angle_beta   90
_cell_angle_gamma   90
_symmetry_Int_Tables_number   {num}
{ops}loop_
 _atom_site_type_symbol
 _atom_site_label
 _atom_site_fract_x
 _atom_site_fract_y
 _atom_site_fract_z
 _atom_site_occupancy
  {el}  A0  0.0  0.0  {z}  {occ}
  Cl  B1  0.5  0.5  0.5  1
"""
OPS = "loop_\n _symmetry_equiv_pos_site_id\n _symmetry_equiv_pos_as_xyz\n  1  'x, y, z'\n"


def cif(name="ok", sg="P 1", a="5.64", num=1, ops=OPS, el="Na", z="0.0", occ="1"):
    return CIF.format(name=name, sg=sg, a=a, num=num, ops=ops, el=el, z=z, occ=occ)


def test_a_good_cif_parses():
    s = structure_from_cif_block(cif())
    assert s.composition.reduced_formula == "NaCl"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("data_x\n_cell_length_a 3\n", "malformed"),
        (cif(a="-5.64"), "bad_lattice"),  # pymatgen would take |a|
        (cif(el="Xx"), "unknown_element"),  # pymatgen would read a dummy species
        (cif(occ="0"), "partial_occupancy"),  # pymatgen would drop the site
        (cif(occ="0.5"), "partial_occupancy"),
        (cif(z="nan"), "nan_coordinates"),
        (cif(z="12345.25"), "absurd_coordinates"),  # pymatgen would wrap it to 0.25
        (cif(sg="Q 42", num=999, ops=""), "unknown_space_group"),  # pymatgen would use P1
        (cif() + cif(name="second", el="K"), "multiple_blocks"),  # one CSV row must hold one crystal
    ],
)
def test_bad_cif_text_is_refused_with_its_reason(text, reason):
    with pytest.raises(RefusedInput) as info:
        structure_from_cif_block(text)
    assert info.value.reason == reason


def test_structure_checks_catch_contacts_through_periodic_images():
    # 0.4 Å apart only through the image across x = 0 / 1
    s = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0.02, 0, 0], [0.94, 0, 0]])
    with pytest.raises(RefusedInput) as info:
        structure_record(s, Limits(), 0.1)
    assert info.value.reason == "atoms_too_close"


def test_too_many_atoms_counts_the_primitive_cell(nacl):
    # conventional NaCl has 8 atoms but its primitive cell 2: a limit of 4 keeps it, a limit of 1 refuses it
    assert structure_record(nacl, Limits(max_atoms=4), 0.1)["n_atoms"] == 2
    with pytest.raises(RefusedInput, match="too_many_atoms"):
        structure_record(nacl, Limits(max_atoms=1), 0.1)


def test_absurd_lattice_is_refused():
    s = Structure(Lattice.from_parameters(500, 4, 4, 90, 90, 90), ["Na"], [[0, 0, 0]])
    with pytest.raises(RefusedInput, match="bad_lattice"):
        structure_record(s, Limits(), 0.1)


def test_files_of_every_format_and_every_cif_block(tmp_path, nacl):
    (tmp_path / "two.cif").write_text(cif(name="a") + cif(name="b", el="K"))
    nacl.to(filename=str(tmp_path / "POSCAR"))
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    write(tmp_path / "frames.extxyz", [AseAtomsAdaptor.get_atoms(nacl)] * 2, format="extxyz")
    (tmp_path / "short_POSCAR.vasp").write_text(
        "NaCl\n1.0\n4 0 0\n0 4 0\n0 0 4\nNa Cl\n2 2\nDirect\n0 0 0\n0.5 0.5 0.5\n"
    )
    (tmp_path / "blank_comment.vasp").write_text("\n1.0\n4 0 0\n0 4 0\n0 0 4\nNa Cl\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n")
    (tmp_path / "notes.txt").write_text("not a crystal")
    results = {}
    for path in sorted(tmp_path.iterdir()):
        results.update(dict(read_structure_file(path)))
    assert results["two.cif#0"].composition.reduced_formula == "NaCl"
    assert results["two.cif#1"].composition.reduced_formula == "KCl"  # the later block is read, not ignored
    assert len(results["POSCAR"]) == 8
    assert results["frames.extxyz#1"].composition.reduced_formula == "NaCl"
    assert results["short_POSCAR.vasp"].reason == "malformed"  # header says 4 atoms, 2 coordinate lines
    assert results["notes.txt"].reason == "malformed"
    assert results["blank_comment.vasp"].composition.reduced_formula == "NaCl"  # an empty comment line is legal


def test_p1_fast_path_equals_pymatgen_on_real_files(raw_dir):
    import io

    import numpy as np
    import pandas as pd
    from pymatgen.io.cif import CifParser

    checked = 0
    for path in ("perov_5/test.csv", "carbon_24/test.csv", "mp_20/train_cifs.csv.gz", "mpts_52/val.csv.gz"):
        for text in pd.read_csv(raw_dir / path, nrows=60, index_col=False)["cif"]:
            ours = structure_from_cif_block(text)
            ref = CifParser(io.StringIO(text)).parse_structures(primitive=False)[0]
            np.testing.assert_allclose(ours.lattice.matrix, ref.lattice.matrix, atol=1e-8)

            # same sites up to order (pymatgen regroups them by species) and wrapping into the cell
            def sites(s):
                return sorted((x.specie.Z, *np.round(x.frac_coords % 1.0, 6) % 1.0) for x in s)

            assert sites(ours) == sites(ref)
            checked += 1
    assert checked == 240


def test_read_structures_from_a_csv_with_a_cif_column(tmp_path):
    import pandas as pd

    from autoperi.data.readers import read_structures

    pd.DataFrame({"cif": [cif(), cif(el="Xx"), ""]}).to_csv(tmp_path / "samples.csv", index=False)
    out = dict(read_structures(tmp_path / "samples.csv"))
    assert out["samples.csv:0"].composition.reduced_formula == "NaCl"
    assert out["samples.csv:1"].reason == "unknown_element"
    assert out["samples.csv:2"].reason == "empty"
    pd.DataFrame({"structure": ["x"]}).to_csv(tmp_path / "other.csv", index=False)
    assert read_structures(tmp_path / "other.csv")[0][1].reason == "malformed"
