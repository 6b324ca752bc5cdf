"""The Dagster layer: one subpackage per room, each exposing `defs: dg.Definitions`. Thin: it calls
into the domain, generation, ingestion and store modules."""
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
