"""Package namespaces that import a submodule on first use of one of its names (PEP 562), so that importing one
submodule, or starting the CLI, does not load torch, matminer and MLflow for all the others."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """`(__getattr__, __dir__)` for `package`, whose public names `exports` maps to the submodule defining each. A
    name equal to a submodule's cannot be exported: once that submodule is imported, the attribute is the module."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
