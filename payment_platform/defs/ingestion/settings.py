"""Settings of sensor-driven ingestion, as a resource so a deployment (or a test) can change them.

The scaling knobs INGESTION_BATCH_SIZE and INGESTION_MAX_RANGES_IN_FLIGHT (config.py) apply where the resource
leaves `max_batch_size` / `max_concurrent_ranges` unset.
"""
from __future__ import annotations

import dagster as dg

from payment_platform.config import scaling_from_env
from payment_platform.ingestion.planner import PlannerSettings

DEFAULT_PLANNER = PlannerSettings()


class IngestionSettingsResource(dg.ConfigurableResource):
    """Micro-batch sizing and the sensor's bounded I/O (see payment_platform.ingestion.planner)."""

    min_batch_size: int = DEFAULT_PLANNER.min_batch_size
    max_batch_size: int | None = None  # None: INGESTION_BATCH_SIZE (default 20,000)
    max_wait_seconds: float = DEFAULT_PLANNER.max_wait_seconds
    max_concurrent_ranges: int | None = None  # None: INGESTION_MAX_RANGES_IN_FLIGHT (default 3)
    missing_run_seconds: float = DEFAULT_PLANNER.missing_run_seconds
    chunk_size: int = 2000  # messages a run reads, validates and writes at a time (bounds its memory)
    io_timeout_seconds: float = 5.0  # each offsets/progress read in the sensor; a tick stays far under 60 s
    lag_observation_seconds: float = 30.0  # observe the topic's lag at least this often (and on every change)

    def planner(self) -> PlannerSettings:
        """The planner's settings; raises config.ConfigError naming a malformed scaling variable."""
        scaling = scaling_from_env()
        max_batch = self.max_batch_size if self.max_batch_size is not None else scaling.batch_size
        in_flight = self.max_concurrent_ranges if self.max_concurrent_ranges is not None else scaling.max_ranges_in_flight
        return PlannerSettings(
            # a micro-batch size below the default minimum: ranges of that size are planned at once
            min_batch_size=min(self.min_batch_size, max_batch) if self.max_batch_size is None else self.min_batch_size,
            max_batch_size=max_batch,
            max_wait_seconds=self.max_wait_seconds,
            max_concurrent_ranges=in_flight,
            missing_run_seconds=self.missing_run_seconds,
        )
