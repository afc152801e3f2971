import pytest

from autoperi.config import ParamsError, load_params


def test_profiles_lay_over_base(tmp_path):
    (tmp_path / "params.yaml").write_text(
        "profile: a\ndata:\n  max_atoms: 30\n  datasets: [perov_5]\n"
        "profiles:\n  a: {}\n  b:\n    data: {max_atoms: 12}\n"
    )
    a = load_params(tmp_path / "params.yaml")
    b = load_params(tmp_path / "params.yaml", "b")
    assert (a.profile, a.data.max_atoms, a.data.datasets) == ("a", 30, ("perov_5",))
    assert (b.profile, b.data.max_atoms, b.data.datasets) == ("b", 12, ("perov_5",))
    assert a.path("data/raw") == tmp_path / "data/raw"


@pytest.mark.parametrize(
    "text, match",
    [
        ("profile: a\ndata: {max_atom: 3}\nprofiles: {a: {}}\n", "unknown key"),
        ("profile: a\nmodle: {}\nprofiles: {a: {}}\n", "unknown top-level"),
        ("profile: zz\nprofiles: {a: {}}\n", "profile 'zz'"),
        ("profile: a\nprofiles: {a: {dta: {}}}\n", "unknown section"),
        ("profile: a\nprofiles: {a: {dft: {sources: [oracle]}}}\n", "dft.sources, which dvc.yaml expands"),
    ],
)
def test_bad_params_are_refused_with_the_key(tmp_path, text, match):
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match=match):
        load_params(tmp_path / "params.yaml")


def test_repo_params_load_for_every_profile(params):
    for profile in ("smoke", "default", "paper"):
        p = load_params(params.root / "params.yaml", profile)
        assert p.graphs.cutoff_angstrom == 8.0
