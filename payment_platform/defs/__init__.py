"""The Dagster layer: one subpackage per room, each exposing `defs: dg.Definitions`. Thin: it calls
into the domain, generation, ingestion and store modules.

The rooms are listed by hand rather than found by `dg.components.load_defs` / `dg.load_from_defs_folder`:
with dagster 1.13 `load_defs` collects every sensor and schedule twice (from its module and from its room's
`defs`), any module-level Dagster object under `defs/` would silently join the code location, and
`load_from_defs_folder` needs a `dg` project configuration this package does not have. A test checks that
every room exposing `defs` is in `ROOMS`."""
from __future__ import annotations

import importlib
import warnings

import dagster as dg

ROOMS = (
    "payment_platform.defs.resources",
    "payment_platform.defs.generation",
    "payment_platform.defs.ingestion",
    "payment_platform.defs.checks",
    "payment_platform.defs.replay",
    "payment_platform.defs.monitoring",
    "payment_platform.defs.summaries",
    "payment_platform.defs.housekeeping",
)


def definitions_by_room() -> list[dg.Definitions]:
    return [with_code_references(importlib.import_module(room).defs) for room in ROOMS]


def with_code_references(room: dg.Definitions) -> dg.Definitions:
    """Each asset's page in the UI links to the function that builds it (dagster/code_references)."""
    if not room.assets:
        return room
    with warnings.catch_warnings():  # the API is marked beta; what it adds is plain metadata
        warnings.simplefilter("ignore")
        assets = dg.with_source_code_references(list(room.assets))
    return dg.Definitions(assets=assets, asset_checks=room.asset_checks, jobs=room.jobs, schedules=room.schedules,
                          sensors=room.sensors, resources=room.resources)
