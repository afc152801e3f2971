"""Shared fixtures: the repo's params, the raw data folder, and small real crystals."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from autoperi.config import load_params

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.relative_to(REPO) for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))  # numbered ones


# The test files that use the smoke copy (`repo_copy`, `smoke_pipeline`): under xdist they must share one worker.
SMOKE_FILES = ("tests/test_pipeline.py", "tests/notebooks/test_nbval.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`make test` runs two xdist workers: the smoke files form one work unit, handed out first (units are ordered by
    size), so one worker runs the smoke `dvc repro` and nbval once while the other takes the unit tests one by one.
    xdist's own `--dist loadgroup` cannot do it under pytest 9 (it renames `item._nodeid`, which pytest 9 ignores)."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SmokeTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "smoke pipeline" if path in SMOKE_FILES else nodeid

    return SmokeTogether(config, log)


@pytest.fixture(scope="session")
def params():
    return load_params(REPO / "params.yaml", "smoke")


@pytest.fixture(scope="session")
def raw_dir(params) -> Path:
    """data/raw as `autoperi data fetch` lays it out (the README's test command fetches it first)."""
    raw = params.path(params.data.raw_dir)
    if not (raw / "perov_5" / "test.csv").exists():
        pytest.fail(f"{raw} is empty: run `autoperi data fetch` first (the README's test command does)")
    return raw


@pytest.fixture
def nacl() -> Structure:
    return Structure(
        Lattice.cubic(5.64),
        ["Na"] * 4 + ["Cl"] * 4,
        [
            [0, 0, 0],
            [0, 0.5, 0.5],
            [0.5, 0, 0.5],
            [0.5, 0.5, 0],
            [0.5, 0.5, 0.5],
            [0.5, 0, 0],
            [0, 0.5, 0],
            [0, 0, 0.5],
        ],
    )


@pytest.fixture
def silicon() -> Structure:
    return Structure(
        Lattice.from_parameters(3.867, 3.867, 3.867, 60, 60, 60), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]]
    )


@pytest.fixture
def perovskite() -> Structure:
    return Structure(
        Lattice.cubic(3.905),
        ["Sr", "Ti", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )


def skewed_cells() -> list[Structure]:
    """Small and strongly skewed cells, where a fixed image range {-1,0,1}^3 misses neighbours at 8 Å."""
    rng = np.random.default_rng(0)
    cells = [
        Structure(Lattice.from_parameters(1.5, 2.0, 9.0, 60, 70, 100), ["Si", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure(Lattice.from_parameters(2.5, 2.5, 2.5, 30, 30, 30), ["C"], [[0, 0, 0]]),
        Structure(
            Lattice.from_parameters(3.0, 12.0, 2.2, 95, 120, 45),
            ["Li", "H", "H"],
            [[0.1, 0.2, 0.3], [0.6, 0.1, 0.9], [0.95, 0.55, 0.05]],
        ),
    ]
    for _ in range(5):
        abc = rng.uniform(1.8, 6.0, 3)
        angles = rng.uniform(50, 130, 3)
        try:
            lattice = Lattice.from_parameters(*abc, *angles)
        except ValueError:
            continue
        if lattice.volume < 1.0:
            continue
        n = int(rng.integers(1, 4))
        cells.append(Structure(lattice, ["Na", "Cl", "K"][:n], rng.uniform(0, 1, (n, 3))))
    return cells


def _run(cmd, cwd, env=None, timeout=1200):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="session")
def repo_copy(tmp_path_factory, raw_dir):
    """A fresh copy of the repository (what git would clone, plus uncommitted edits) on the `smoke` profile,
    with its raw data fetched from an explicit folder. Tests run DVC and notebooks there, never in the repo."""
    root = tmp_path_factory.mktemp("clone") / "repo"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for rel in filter(None, listed):
        if rel.startswith("data/references/"):  # the default profile's committed caches: smoke builds its own
            continue
        src = REPO / rel
        if src.is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / rel)
    params_file = root / "params.yaml"
    params_file.write_text(re.sub(r"^profile: \w+", "profile: smoke", params_file.read_text(), flags=re.M))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    _run(["git", "init", "-q"], root, env)
    _run([sys.executable, "-m", "autoperi.cli", "data", "fetch", "--source", str(raw_dir), "--no-download"], root, env)
    return root, env


@pytest.fixture(scope="session")
def smoke_pipeline(repo_copy):
    """The fresh copy after one `dvc repro` of the whole smoke pipeline. Shared by the end-to-end test and nbval, so
    every notebook runs with the outputs of the stages before it. What the end-to-end test checks about the pipeline
    itself (the repro logs, its MLflow runs, a second repro, `dvc status`) is captured here, before nbval re-executes
    notebooks in the same copy and adds runs of its own."""
    import mlflow

    root, env = repo_copy
    first = _run([sys.executable, "-m", "dvc", "repro"], root, env, timeout=2400)
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlruns/mlflow.db")
    data_runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.dvc_stage = 'data'")
    data_notebooks = [
        [a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "notebooks")] for run_id in data_runs.run_id
    ]
    second = _run([sys.executable, "-m", "dvc", "repro"], root, env)
    status = _run([sys.executable, "-m", "dvc", "status"], root, env)
    return SimpleNamespace(
        root=root, env=env, first=first, second=second, status=status,
        data_runs=data_runs, data_notebooks=data_notebooks,
    )
