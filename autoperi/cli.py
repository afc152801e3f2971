"""`autoperi` command line: thin wrappers over the same functions the notebooks call."""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

from autoperi.config import load_params

DATA_SOURCE_ENV = "AUTOPERI_DATA_SOURCE"

# Modules that define `register(subparsers)`, with the commands they add; they import heavy dependencies (torch,
# CHGNet, GPAW) inside the command functions, so `autoperi data` stays fast. A module whose imports fail here (a
# bare GPU machine carrying only what `autoperi refine` needs, say) leaves its commands answering with the reason.
_SUBSYSTEM_COMMANDS = {
    "autoperi.metrics.commands": ("evaluate", "evaluate-checkpoint", "references"),
    "autoperi.baselines.commands": ("baselines",),
    "autoperi.dft.commands": ("dft", "dft-convergence"),
    "autoperi.training.commands": ("train", "refine"),
    "autoperi.sampling.commands": ("generate", "csp"),
}


def _params(args):
    return load_params(args.params, args.profile)


def cmd_data_fetch(args) -> int:
    from autoperi.data.sources import DataUnavailable, fetch_raw

    params = _params(args)
    if args.online_only:
        from autoperi.data.sources import fetch_online_only

        try:
            got = fetch_online_only(params.path("data/external"))
        except DataUnavailable as exc:
            print(f"autoperi data fetch --online-only:\n{exc}", file=sys.stderr)
            return 2
        print(f"{len(got)} upstream files in {params.path('data/external')} (sha256 in checksums.json)")
        return 0
    explicit = args.source or os.environ.get(DATA_SOURCE_ENV)
    mirror = params.path(params.data.mirror_dir)
    try:
        origins = fetch_raw(
            params.path(params.data.raw_dir),
            explicit=Path(explicit) if explicit else None,
            mirror=mirror if mirror.is_dir() else None,
            allow_download=not args.no_download,
        )
    except DataUnavailable as exc:
        print(f"autoperi data fetch: {exc}", file=sys.stderr)
        return 2
    counts = {}
    for origin in origins.values():
        kind = origin.split(":", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    print(f"{len(origins)} raw files in {params.path(params.data.raw_dir)} ({counts})")
    return _record_in_dvc_cache(params.root)


def _record_in_dvc_cache(root: Path) -> int:
    """Put the fetched files into DVC's cache so that `dvc status` shows data.dvc unchanged on a fresh clone."""
    dvc_file = root / "data.dvc"
    if not (dvc_file.exists() and (root / ".dvc").is_dir()):
        return 0
    before = dvc_file.read_text()
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "commit", "--force", "--quiet", "data.dvc"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(f"autoperi data fetch: `dvc commit data.dvc` failed:\n{done.stderr}", file=sys.stderr)
        return done.returncode
    if dvc_file.read_text() != before:
        print(
            "autoperi data fetch: data/raw differs from data.dvc (extra files?); data.dvc was updated", file=sys.stderr
        )
    return 0


def cmd_data_preprocess(args) -> int:
    from autoperi.data.registry import preprocess_registry

    summary = preprocess_registry(_params(args))
    for name, rep in summary["datasets"].items():
        print(f"{name:12s} raw {rep['n_raw']:6d}  kept {rep['n_kept']:6d}  skipped {rep['skipped']}")
    return 0


def cmd_data_import(args) -> int:
    from autoperi.data.registry import import_folder

    report = import_folder(args.folder, args.name, _params(args))
    print(json.dumps({k: report[k] for k in ("n_raw", "n_kept", "skipped", "splits")}, indent=2))
    return 0


def cmd_log_notebook(args) -> int:
    from autoperi.tracking import log_notebook

    ids = log_notebook(_params(args), args.stage, args.notebook)
    print(f"attached {args.notebook} to {len(ids)} MLflow run(s) of stage {args.stage}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoperi", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (default: ./params.yaml)")
    parser.add_argument("--profile", default=None, help="profile in params.yaml (default: the file's `profile`)")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="raw data and preprocessing").add_subparsers(dest="data_command", required=True)
    fetch = data.add_parser("fetch", help="lay out data/raw from a folder, the mirror or the public URLs")
    fetch.add_argument("--source", help=f"folder laid out like sources.yaml (or ${DATA_SOURCE_ENV})")
    fetch.add_argument("--no-download", action="store_true", help="never use the network")
    fetch.add_argument(
        "--online-only", action="store_true", help="download the full upstream splits absent from the mirror"
    )
    fetch.set_defaults(func=cmd_data_fetch)
    prep = data.add_parser("preprocess", help="build the configured datasets into data/processed")
    prep.set_defaults(func=cmd_data_preprocess)
    imp = data.add_parser("import", help="run a folder of CIF/POSCAR/extxyz files through the same pipeline")
    imp.add_argument("folder")
    imp.add_argument("--name", required=True, help="dataset name for the outputs")
    imp.set_defaults(func=cmd_data_import)

    lognb = sub.add_parser("log-notebook", help="attach an executed notebook to the MLflow runs of a stage")
    lognb.add_argument("stage")
    lognb.add_argument("notebook")
    lognb.set_defaults(func=cmd_log_notebook)

    # Each subsystem adds its own subcommands (`register(sub)`), so this file stays a table of contents.
    for module, commands in _SUBSYSTEM_COMMANDS.items():
        try:
            importlib.import_module(module).register(sub)
        except ImportError as exc:
            for name in commands:
                stub = sub.add_parser(name, help=f"unavailable here: {exc}", add_help=False)
                stub.set_defaults(func=functools.partial(_unavailable, name, exc), accepts_extra=True)
    return parser


def _unavailable(command: str, exc: ImportError, args) -> int:
    missing = f"the module {exc.name!r}" if exc.name else "a dependency"
    print(f"autoperi {command}: needs {missing}, which does not import here ({exc}); install the project's "
          "requirements (README: set-up)", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
