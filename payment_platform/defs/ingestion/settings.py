"""Settings of sensor-driven ingestion, as a resource so a deployment (or a test) can change them."""
from __future__ import annotations

import dagster as dg

from payment_platform.ingestion.planner import PlannerSettings

DEFAULT_PLANNER = PlannerSettings()


class IngestionSettingsResource(dg.ConfigurableResource):
    """Micro-batch sizing and the sensor's bounded I/O (see payment_platform.ingestion.planner)."""

    min_batch_size: int = DEFAULT_PLANNER.min_batch_size
    max_batch_size: int = DEFAULT_PLANNER.max_batch_size
    max_wait_seconds: float = DEFAULT_PLANNER.max_wait_seconds
    max_concurrent_ranges: int = DEFAULT_PLANNER.max_concurrent_ranges
    missing_run_seconds: float = DEFAULT_PLANNER.missing_run_seconds
    chunk_size: int = 2000  # messages a run reads, validates and writes at a time (bounds its memory)
    io_timeout_seconds: float = 5.0  # each offsets/progress read in the sensor; a tick stays far under 60 s
    lag_observation_seconds: float = 30.0  # observe the topic's lag at least this often (and on every change)

    def planner(self) -> PlannerSettings:
        return PlannerSettings(
            min_batch_size=self.min_batch_size,
            max_batch_size=self.max_batch_size,
            max_wait_seconds=self.max_wait_seconds,
            max_concurrent_ranges=self.max_concurrent_ranges,
            missing_run_seconds=self.missing_run_seconds,
        )
