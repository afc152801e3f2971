"""`autoperi` subcommands of autoperi.training (registered by autoperi/cli.py)."""

from __future__ import annotations


def register(sub) -> None:
    """Add this subsystem's subcommands to the `autoperi` parser (none yet)."""
