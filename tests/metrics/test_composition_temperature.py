"""benchmarks/composition_temperature.py: the composition-only scores on a hand-worked set."""

from __future__ import annotations

import pandas as pd
import pytest
from pymatgen.core import Composition

from benchmarks.composition_temperature import composition_from_slots, score


def test_padding_slots_are_not_atoms():
    assert composition_from_slots([11, 17, 0, 0, 11, 17]) == Composition("Na2Cl2")


def test_composition_scores_on_a_hand_worked_set():
    generated = [Composition("NaCl"), Composition("Na2Cl2"), Composition("Fe2O3"), Composition("NaF2")]
    test = pd.DataFrame({"reduced_formula": ["NaCl", "KBr"], "n_elements": [2, 2]})
    out = score(generated, test, train_formulas={"NaCl"})
    assert out["comp_validity"] == 75.0  # NaF2 cannot balance Na(+1) against two F(-1)
    assert out["distinct_elements_mean"] == 2.0 and out["wdist_num_elems"] == 0.0
    assert out["unique_formulas"] == 75.0  # NaCl twice (Na2Cl2 reduces to it)
    assert out["novel_formulas"] == 50.0  # Fe2O3 and NaF2
    assert out["test_formula_coverage"] == pytest.approx(50.0)  # NaCl of {NaCl, KBr}
