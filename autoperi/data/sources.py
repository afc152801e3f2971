"""Raw data acquisition: explicit folder → local mirror → public URL, every file checked against its sha256.

The file list, checksums, URLs and provenance live in `sources.yaml` beside this module.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml


@dataclass(frozen=True)
class RawFile:
    path: str
    sha256: str
    bytes: int
    url: str | None
    provenance: str


class DataUnavailable(RuntimeError):
    """Some raw files could not be obtained from any source."""


class ChecksumMismatch(ValueError):
    pass


def raw_files() -> list[RawFile]:
    doc = yaml.safe_load(resources.files("autoperi.data").joinpath("sources.yaml").read_text())
    return [RawFile(**entry) for entry in doc["files"]]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _install(src: Path, dest: Path, expected: str, origin: str) -> None:
    """Copy src → dest through a temporary file, refusing it unless its sha256 matches."""
    got = sha256_of(src)
    if got != expected:
        raise ChecksumMismatch(f"{origin}: sha256 {got} != expected {expected}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.copyfile(src, tmp)
    tmp.replace(dest)


def _download(url: str, timeout_s: float) -> Path:
    fd, name = tempfile.mkstemp(prefix="autoperi-", suffix=".download")
    with urllib.request.urlopen(url, timeout=timeout_s) as response, open(fd, "wb") as out:
        shutil.copyfileobj(response, out)
    return Path(name)


def _obtain(f: RawFile, target: Path, folders, allow_download: bool, timeout_s: float) -> str:
    """Install one file from the first source that has it intact; returns the origin or raises DataUnavailable."""
    reasons = []
    for label, folder in folders:
        candidate = Path(folder) / f.path
        if not candidate.exists():
            reasons.append(f"{label} {folder}: no such file")
            continue
        try:
            _install(candidate, target, f.sha256, str(candidate))
            return f"{label}:{candidate}"
        except ChecksumMismatch as exc:
            reasons.append(str(exc))
    if not f.url:
        reasons.append("no public URL serves this exact file (derived or repacked): copy it from a mirror")
    elif not allow_download:
        reasons.append("downloads disabled")
    else:
        try:
            tmp = _download(f.url, timeout_s)
            try:
                _install(tmp, target, f.sha256, f.url)
            finally:
                tmp.unlink(missing_ok=True)
            return f"url:{f.url}"
        except (OSError, ChecksumMismatch) as exc:
            reasons.append(f"{f.url}: {exc}")
    raise DataUnavailable("; ".join(reasons))


def fetch_raw(
    dest: Path,
    explicit: Path | None = None,
    mirror: Path | None = None,
    allow_download: bool = True,
    timeout_s: float = 60.0,
    files: list[RawFile] | None = None,
) -> dict[str, str]:
    """Lay out every raw file under `dest`; returns {path: where it came from}.

    Order per file: already present and intact → `explicit` folder → `mirror` folder → its URL. A present but
    corrupt file is replaced. Raises DataUnavailable naming every file no source provided (with the reasons),
    after installing all the others.
    """
    dest = Path(dest)
    folders = [(label, folder) for label, folder in (("explicit", explicit), ("mirror", mirror)) if folder]
    origins, missing = {}, {}
    for f in files or raw_files():
        target = dest / f.path
        if target.exists() and target.stat().st_size == f.bytes and sha256_of(target) == f.sha256:
            origins[f.path] = "present"
            continue
        try:
            origins[f.path] = _obtain(f, target, folders, allow_download, timeout_s)
        except DataUnavailable as exc:
            missing[f.path] = str(exc)
    if missing:
        lines = "\n".join(f"  - {path}: {why}" for path, why in missing.items())
        raise DataUnavailable(
            f"{len(missing)} raw file(s) could not be obtained:\n{lines}\n"
            "Provide them with `autoperi data fetch --source FOLDER` (or AUTOPERI_DATA_SOURCE=FOLDER), a folder laid "
            "out like sources.yaml's paths, or run online so the URLs can be used."
        )
    return origins


def fetch_online_only(dest: Path, timeout_s: float = 120.0) -> dict[str, str]:
    """Download the full upstream splits absent from the mirror (sources.yaml `online_only`) into `dest`.

    No checksum is published for them, so the first download records its sha256 in `dest/checksums.json` and later
    downloads must match it. Returns {path: sha256}.
    """
    dest = Path(dest)
    doc = yaml.safe_load(resources.files("autoperi.data").joinpath("sources.yaml").read_text())
    record_file = dest / "checksums.json"
    known = json.loads(record_file.read_text()) if record_file.exists() else {}
    failed = {}
    for entry in doc["online_only"]:
        try:
            tmp = _download(entry["url"], timeout_s)
        except OSError as exc:
            failed[entry["path"]] = f"{entry['url']}: {exc}"
            continue
        try:
            expected = known.get(entry["path"]) or sha256_of(tmp)
            _install(tmp, dest / entry["path"], expected, entry["url"])
            known[entry["path"]] = expected
        except ChecksumMismatch as exc:
            failed[entry["path"]] = f"{exc} (recorded at first download in {record_file})"
        finally:
            tmp.unlink(missing_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    record_file.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
    if failed:
        raise DataUnavailable("\n".join(f"  - {p}: {why}" for p, why in failed.items()))
    return known
