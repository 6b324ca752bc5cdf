"""Errors a person can act on. The CLI prints them as one line and exits with status 2."""
from __future__ import annotations


class UsageError(Exception):
    """A bad option, setting or environment: the message names it and says what is wrong."""

    exit_code = 2
