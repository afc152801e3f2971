"""nbval on every numbered notebook, in the fresh copy where the smoke pipeline has run (the notebooks' own default
profile), so each notebook finds what the stages before it produced."""

import sys

import pytest

from tests.conftest import NOTEBOOKS, _run

pytestmark = pytest.mark.slow


@pytest.mark.timeout(3600)  # the first one runs the smoke pipeline in its setup
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=str)
def test_notebook_runs_clean(smoke_pipeline, notebook):
    root, env = smoke_pipeline.root, smoke_pipeline.env
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--nbval-lax"]
    out = _run([*command, str(notebook)], root, env)  # no:xdist: a notebook's cells share one kernel
    assert " passed" in out and "failed" not in out
