"""Subcommands of this room (registered by payment_platform.cli)."""
from __future__ import annotations


def register(subparsers) -> None:
    """Adds this room's subcommands; each sets `func=handler` where handler(args) -> exit status."""
