"""Settings of sensor-driven ingestion, as a resource so a deployment (or a test) can change them.

The scaling knobs INGESTION_BATCH_SIZE, INGESTION_MAX_RANGES_IN_FLIGHT, INGESTION_LEASE_SECONDS and
INGESTION_LEASE_IDLE_SECONDS (config.py) apply where the resource leaves the matching setting unset.

The valid window of a payment's dates is set here once: ingestion validates with it and the checks that look at
dates (`recent_days_consistency`) read it from this same resource, so widening it never makes the checks flag
what ingestion accepted. That is why this module sits beside the rooms rather than in `defs/ingestion/`: the
checks room imports it, and the ingestion room imports the checks room (its range job runs the range checks).
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import dagster as dg

from payment_platform.config import ConfigError, scaling_from_env
from payment_platform.domain.validation import DEFAULT_WINDOW, ValidityWindow
from payment_platform.ingestion.lease import LeaseSettings
from payment_platform.ingestion.planner import PlanError, PlannerSettings

DEFAULT_PLANNER = PlannerSettings()
DEFAULT_LEASE = LeaseSettings()
# Bounds a sane window stays within (a window reaching year 9999 is what the window exists to prevent).
MAX_CLOCK_SKEW_SECONDS = 366 * 86400
MAX_VALUE_DATE_DAYS = 10 * 366


class IngestionSettingsResource(dg.ConfigurableResource):
    """Micro-batch sizing and the sensor's bounded I/O (see payment_platform.ingestion.planner)."""

    min_batch_size: int = DEFAULT_PLANNER.min_batch_size
    max_batch_size: int | None = None  # None: INGESTION_BATCH_SIZE (default 20,000)
    max_wait_seconds: float = DEFAULT_PLANNER.max_wait_seconds
    max_concurrent_ranges: int | None = None  # None: INGESTION_MAX_RANGES_IN_FLIGHT (default 3)
    missing_run_seconds: float = DEFAULT_PLANNER.missing_run_seconds
    # Leases (ingestion/lease.py): one run ingests a partition for lease_seconds; its successor is requested
    # handover_seconds before the end and waits up to lease_acquire_seconds for it; a lease with nothing to read
    # for lease_idle_seconds ends early; range checks run every range_check_seconds over the batches landed since.
    lease_seconds: float | None = None  # None: INGESTION_LEASE_SECONDS (default 600)
    handover_seconds: float = DEFAULT_PLANNER.handover_seconds
    lease_acquire_seconds: float = DEFAULT_LEASE.acquire_seconds
    lease_idle_seconds: float | None = None  # None: INGESTION_LEASE_IDLE_SECONDS (default 120)
    range_check_seconds: float = 5.0
    max_batch_failures: int = DEFAULT_LEASE.max_failures
    chunk_size: int = 2000  # messages a run reads, validates and writes at a time (bounds its memory)
    io_timeout_seconds: float = 5.0  # each offsets/progress read in the sensor; a tick stays far under 60 s
    lag_observation_seconds: float = 30.0  # observe the topic's lag at least this often (and on every change)
    # The valid window of a payment's dates (domain.validation.ValidityWindow); outside it: quarantine.
    earliest_created_at: str = DEFAULT_WINDOW.earliest_created_at.isoformat()
    created_at_clock_skew_seconds: float = DEFAULT_WINDOW.max_clock_skew.total_seconds()
    max_value_date_days: int = DEFAULT_WINDOW.max_value_date_days

    def validity_window(self) -> ValidityWindow:
        """The window ingestion and the checks share; raises config.ConfigError naming the malformed setting."""
        text = self.earliest_created_at.strip()
        try:
            earliest = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            earliest = None
        if earliest is None or earliest.tzinfo is None:
            raise ConfigError("ingestion_settings.earliest_created_at",
                              f"must be an ISO 8601 timestamp with a time zone (e.g. 2000-01-01T00:00:00Z), got "
                              f"{self.earliest_created_at!r}")
        skew = self.created_at_clock_skew_seconds
        if not math.isfinite(skew) or not 0 <= skew <= MAX_CLOCK_SKEW_SECONDS:
            raise ConfigError("ingestion_settings.created_at_clock_skew_seconds",
                              f"must be between 0 and {MAX_CLOCK_SKEW_SECONDS} seconds (how far a producer's clock "
                              f"may run ahead), got {skew!r}")
        if not 0 <= self.max_value_date_days <= MAX_VALUE_DATE_DAYS:
            raise ConfigError("ingestion_settings.max_value_date_days",
                              f"must be between 0 and {MAX_VALUE_DATE_DAYS} days after the creation date, got "
                              f"{self.max_value_date_days!r}")
        return ValidityWindow(earliest, timedelta(seconds=skew), self.max_value_date_days)

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
            lease_seconds=self.lease_seconds if self.lease_seconds is not None else scaling.lease_seconds,
            handover_seconds=self.handover_seconds,
        )

    def lease(self) -> LeaseSettings:
        """A lease run's settings; raises config.ConfigError naming a malformed one."""
        try:
            rules = self.planner()
        except PlanError as error:
            raise ConfigError("ingestion_settings", str(error)) from None
        try:
            return LeaseSettings(lease_seconds=rules.lease_seconds, acquire_seconds=self.lease_acquire_seconds,
                                 idle_seconds=(self.lease_idle_seconds if self.lease_idle_seconds is not None
                                               else scaling_from_env().lease_idle_seconds),
                                 min_batch_size=rules.min_batch_size,
                                 max_batch_size=rules.max_batch_size, max_wait_seconds=rules.max_wait_seconds,
                                 chunk_size=self.chunk_size, max_failures=self.max_batch_failures)
        except ValueError as error:
            raise ConfigError("ingestion_settings", str(error)) from None
