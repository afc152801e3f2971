"""Every numbered notebook is valid under its own nbformat version, cell ids included (a missing id is a warning now
and "will become a hard error in future nbformat versions"), so papermill and nbval keep reading them."""

import warnings

import nbformat
import pytest

from tests.conftest import NOTEBOOKS, REPO


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_nbformat(path):
    path = REPO / path
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        nbformat.validate(notebook)
    assert notebook.cells and all(cell.source.strip() for cell in notebook.cells)
