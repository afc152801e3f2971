"""The `autoperi` entry point: a subsystem whose dependencies do not import leaves the other commands working and
its own commands answering with the reason (a bare GPU machine runs `autoperi refine` with a few wheels)."""

from __future__ import annotations

import importlib

import pytest

from autoperi import cli


def test_a_subsystem_that_cannot_import_answers_with_the_reason(monkeypatch, capsys):
    real = importlib.import_module

    def fake(name, *args, **kwargs):
        if name == "autoperi.dft.commands":
            raise ModuleNotFoundError("No module named 'gpaw'", name="gpaw")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(cli.importlib, "import_module", fake)
    assert cli.main(["dft", "--dataset", "mp20_bt", "--n", "3"]) == 2
    err = capsys.readouterr().err
    assert "autoperi dft: needs the module 'gpaw'" in err and "set-up" in err
    assert cli.main(["dft-convergence"]) == 2
    # the other subsystems registered as usual: their parsers still check arguments
    with pytest.raises(SystemExit):
        cli.main(["refine"])  # --dataset is required
    with pytest.raises(SystemExit):
        cli.main(["data", "fetch", "--no-such-option"])


def test_every_registered_command_is_listed():
    """The table of commands per module matches what the modules register (the stub names must be the real ones)."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for commands in cli._SUBSYSTEM_COMMANDS.values():
        assert set(commands) <= set(sub.choices)
    registered = set(sub.choices) - {"data", "log-notebook"}
    assert registered == {c for commands in cli._SUBSYSTEM_COMMANDS.values() for c in commands}


HEAVY = ("torch", "torch_geometric", "matminer", "mlflow", "pymatgen", "dask", "chgnet", "gpaw")


def test_the_cli_starts_without_loading_heavy_dependencies():
    """Every stage of the pipeline starts `autoperi`: building its parser must not import torch, matminer or MLflow
    (it took 6.5 s when the package namespaces imported their submodules eagerly)."""
    import subprocess
    import sys

    code = (
        "import sys; from autoperi.cli import build_parser; build_parser(); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("package", ["autoperi.metrics", "autoperi.graphs", "autoperi.baselines", "autoperi.tracking"])
def test_lazy_package_names_resolve_to_their_submodules(package):
    module = importlib.import_module(package)
    assert dir(module) == sorted(module.__all__)
    for name in module.__all__:
        value = getattr(module, name)
        assert value is getattr(importlib.import_module(f"{package}.{module._EXPORTS[name]}"), name)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = module.no_such_name
