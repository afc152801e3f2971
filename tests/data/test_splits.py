import pandas as pd
import pytest

from autoperi.data.splits import composition_split, read_id_list, write_id_lists


def test_no_composition_in_two_splits_and_fractions_hold(tmp_path):
    formulas = pd.Series([f"A{i % 97}B" for i in range(2000)])
    ids = pd.Series([f"id{i}" for i in range(2000)])
    split = composition_split(formulas, (0.7, 0.15, 0.15), seed=3)
    by_formula = pd.DataFrame({"f": formulas, "s": split}).groupby("f")["s"].nunique()
    assert (by_formula == 1).all()
    shares = split.value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.7, abs=0.03) and shares["test"] == pytest.approx(0.15, abs=0.03)
    sizes = write_id_lists(ids, split, tmp_path, "composition")
    lists = {name: set(read_id_list(tmp_path, "composition", name)) for name in sizes}
    assert sum(len(v) for v in lists.values()) == 2000
    assert not (lists["train"] & lists["val"] or lists["train"] & lists["test"] or lists["val"] & lists["test"])


def test_split_is_seeded():
    formulas = pd.Series([f"X{i % 50}" for i in range(500)])
    assert composition_split(formulas, seed=1).equals(composition_split(formulas, seed=1))
    assert not composition_split(formulas, seed=1).equals(composition_split(formulas, seed=2))


def test_single_composition_dataset_has_no_composition_split():
    assert composition_split(pd.Series(["C"] * 100)) is None
