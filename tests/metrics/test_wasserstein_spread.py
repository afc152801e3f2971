"""benchmarks/wasserstein_spread.py: disjoint draws of valid samples only, scored as the evaluation scores them."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks.wasserstein_spread import spread


def test_spread_uses_disjoint_draws_of_valid_samples_only():
    table = pd.DataFrame({"valid": [True, True, False, True, True, True],
                          "density": [1.0, 2.0, 1e6, 3.0, 4.0, 9.0], "n_elements": [1, 2, 99, 3, 4, 9]})
    reference = pd.DataFrame({"density": [1.0, 2.0, 3.0, 4.0, 9.0], "n_elements": [1, 2, 3, 4, 9]})
    out = spread(table, reference, subset_size=2)
    assert (out["n_valid"], out["n_subsets"]) == (5, 2)  # the fifth valid sample is left over
    for key in ("wdist_density", "wdist_num_elems"):
        assert out[key]["all_valid"] == 0.0  # all valid samples = the reference
        assert out[key]["subsets_max"] < 9.0  # the invalid row (1e6, 99) never enters a draw
        assert out[key]["subsets_min"] <= out[key]["subsets_mean"] <= out[key]["subsets_max"]


def test_spread_refuses_too_few_valid_samples():
    table = pd.DataFrame({"valid": [True, False, True], "density": [1.0, 2.0, 3.0], "n_elements": [1, 2, 3]})
    with pytest.raises(ValueError, match="2 valid samples give fewer than two disjoint subsets of 2"):
        spread(table, table, subset_size=2)
