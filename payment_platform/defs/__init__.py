"""The Dagster layer: one subpackage per room, each exposing `defs: dg.Definitions`. Thin: it calls
into the domain, generation, ingestion and store modules.

The rooms are listed by hand rather than found by `dg.components.load_defs` / `dg.load_from_defs_folder`:
with dagster 1.13 `load_defs` collects every sensor and schedule twice (from its module and from its room's
`defs`), any module-level Dagster object under `defs/` would silently join the code location, and
`load_from_defs_folder` needs a `dg` project configuration this package does not have. A test checks that
every room exposing `defs` is in `ROOMS`."""
from __future__ import annotations

import importlib

import dagster as dg

ROOMS = (
    "payment_platform.defs.resources",
    "payment_platform.defs.generation",
    "payment_platform.defs.ingestion",
    "payment_platform.defs.checks",
    "payment_platform.defs.replay",
    "payment_platform.defs.monitoring",
    "payment_platform.defs.summaries",
)


def definitions_by_room() -> list[dg.Definitions]:
    return [importlib.import_module(room).defs for room in ROOMS]
