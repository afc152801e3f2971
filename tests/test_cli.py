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
