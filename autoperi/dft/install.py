"""Finding GPAW and its PAW setups, and the one message that says how to install them.

GPAW is built into the project venv by `make setup` (pip, against Debian's libxc and OpenBLAS); its PAW setups come
from Debian's `gpaw-data` package (/usr/share/gpaw-setups) or conda-forge's `gpaw-data`. The runtime finds them
without the user exporting anything: `ensure_gpaw()` sets GPAW_SETUP_PATH from the first folder found when unset.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

GPAW_VERSION = "26.7.0"

INSTALL_HINT = (
    "GPAW is not installed in this Python environment. Install it with `make setup` (as root it runs "
    "`apt-get install -y --no-install-recommends gpaw-data libxc-dev libopenblas-dev g++`), or by hand:\n"
    "  sudo apt-get install -y --no-install-recommends gpaw-data libxc-dev libopenblas-dev g++\n"
    f"  CC=g++ {sys.executable} -m pip install --no-deps gpaw=={GPAW_VERSION}\n"
    "(conda: `conda install -c conda-forge gpaw`, see environment.yml)."
)
SETUPS_HINT = (
    "GPAW is installed but no PAW setups were found (looked in GPAW_SETUP_PATH, /usr/share/gpaw-setups, "
    "$CONDA_PREFIX/share/gpaw, ~/.gpaw/setups). Install Debian's `gpaw-data` (`apt-get install gpaw-data`) or "
    "export GPAW_SETUP_PATH=<folder with *.PBE.gz setups>."
)


class GpawMissing(RuntimeError):
    """GPAW or its PAW setups are not available; the message says how to install them."""


def candidate_setup_dirs() -> list[Path]:
    """Folders that may hold PAW setups, in the order they are tried."""
    dirs = [Path(p) for p in os.environ.get("GPAW_SETUP_PATH", "").split(os.pathsep) if p]
    dirs.append(Path("/usr/share/gpaw-setups"))  # Debian/Ubuntu gpaw-data
    if os.environ.get("CONDA_PREFIX"):
        dirs.append(Path(os.environ["CONDA_PREFIX"]) / "share" / "gpaw")
    dirs.append(Path.home() / ".gpaw" / "setups")
    return dirs


def find_setup_dir() -> Path | None:
    """The first candidate folder that holds PBE setups (e.g. `O.PBE.gz`), or None."""
    for folder in candidate_setup_dirs():
        if folder.is_dir() and any(folder.glob("*.PBE*")):
            return folder
    return None


@functools.cache  # asked per element of every candidate structure: list the folder once each
def has_setup(element: str, xc: str = "PBE") -> bool:
    """Whether the installed PAW data set holds `element` for `xc` (Debian's gpaw-data lacks lanthanides, actinides
    and Tc); True when no setup folder is found (GPAW then reports what is missing itself)."""
    folder = find_setup_dir()
    return folder is None or any(folder.glob(f"{element}.{xc}*")) or any(folder.glob(f"{element}.*.{xc}*"))


def ensure_gpaw() -> str:
    """Import GPAW with a setup path in place; returns GPAW's version. Raises GpawMissing with install advice.

    Sets GPAW_SETUP_PATH (and GPAW's in-process `setup_paths`) from `find_setup_dir()` when it is unset, so child
    processes and dask workers inherit it.
    """
    try:
        import gpaw
    except ImportError as exc:
        raise GpawMissing(INSTALL_HINT) from exc
    folder = find_setup_dir()
    if folder is None:
        raise GpawMissing(SETUPS_HINT)
    if not os.environ.get("GPAW_SETUP_PATH"):
        os.environ["GPAW_SETUP_PATH"] = str(folder)
    if str(folder) not in map(str, gpaw.setup_paths):
        gpaw.setup_paths.insert(0, str(folder))
    return gpaw.__version__


def gpaw_available() -> bool:
    """True when GPAW imports and PAW setups are found (tests skip on False)."""
    try:
        ensure_gpaw()
    except GpawMissing:
        return False
    return True
