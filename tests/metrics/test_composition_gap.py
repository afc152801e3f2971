"""benchmarks/composition_gap.py: validity and exact-formula rates on a hand-worked set."""

from __future__ import annotations

from pymatgen.core import Composition

from benchmarks.composition_gap import rates


def test_rates_on_a_hand_worked_set():
    true = [Composition("NaCl"), Composition("Fe2O3"), Composition("KBr"), Composition("NaF2")]
    decoded = [Composition("Na2Cl2"), Composition("FeO3"), Composition("KBr2"), Composition("NaF")]
    out = rates(decoded, true)
    assert out["true_valid"] == 75.0  # NaF2 cannot balance Na(+1) against two F(-1)
    assert out["decoded_valid"] == 75.0  # nor KBr2; FeO3 balances with Fe(+6)
    assert out["exact_formula"] == 25.0  # only Na2Cl2, which reduces to NaCl
    assert out["n"] == 4
