"""Thresholds of the checks, one resource so a deployment tunes them in one place."""
import dagster as dg

from payment_platform.config import ConfigError
from payment_platform.reconciliation.cut import Rotation


class ChecksSettingsResource(dg.ConfigurableResource):
    """Thresholds and scopes of the consistency, backup and quarantine checks."""

    backup_max_age_seconds: float = 3600.0  # a payment waiting longer than this in the backup: ERROR
    quarantine_max_rate: float = 0.05  # share of messages that may land in quarantine
    quarantine_window_hours: float = 24.0
    window_days: int = 2  # the most recent UTC days reconciled by the time-window check
    ranges_per_evaluation: int = 50  # unproven ingested ranges the range check takes on at once (newest first)
    recent_ranges: int = 10  # ranges checked again once every range is proven
    segment_target_rows: int = 4096  # rows per payment-id segment in the full reconciliation
    io_timeout_seconds: float = 5.0
    settle_seconds: float = 5.0  # a store difference must still be there this long after the first pass
    stall_after_seconds: float = 300.0  # a payment waiting longer than this to be ingested: ingestion stalled
    # The incremental reconciliation of the schedule (reconciliation.cut): every payment is re-read within
    # full_pass_hours (a slice of the id segments per run), new payments at the next run.
    full_pass_hours: float = 6.0
    # Yielding to ingestion while the store checks read: HBase rows per scan/multi-get batch, the share of time
    # the reading may be busy (a pause after each batch makes up the rest), and the run worker's nice level.
    scan_batch_rows: int = 1000
    busy_share: float = 0.5
    # ...and while ingestion drifts from its normal (its backlog above the median learnt before the check read
    # anything: reconciliation.cut.BacklogProbe), the reading waits for it, at most this share of the check's time
    # (0: never waits, and nothing is learnt)
    max_yield_share: float = 0.8
    niceness: int = 0  # the definitions set 10 (defs/checks/__init__.py): an in-process test run stays as it is

    def validated(self) -> "ChecksSettingsResource":
        for name, value, low, high in (
                ("backup_max_age_seconds", self.backup_max_age_seconds, 1, 30 * 86400),
                ("quarantine_max_rate", self.quarantine_max_rate, 0, 1),
                ("quarantine_window_hours", self.quarantine_window_hours, 0.01, 24 * 365),
                ("window_days", self.window_days, 1, 366),
                ("ranges_per_evaluation", self.ranges_per_evaluation, 1, 10_000),
                ("recent_ranges", self.recent_ranges, 1, 10_000),
                ("segment_target_rows", self.segment_target_rows, 16, 10_000_000),
                ("io_timeout_seconds", self.io_timeout_seconds, 0.1, 120),
                ("settle_seconds", self.settle_seconds, 0, 600),
                ("stall_after_seconds", self.stall_after_seconds, 1, 7 * 86400),
                ("full_pass_hours", self.full_pass_hours, 0.25, 24 * 366),
                ("scan_batch_rows", self.scan_batch_rows, 10, 100_000),
                ("busy_share", self.busy_share, 0.05, 1),
                ("max_yield_share", self.max_yield_share, 0, 0.95),
                ("niceness", self.niceness, 0, 19)):
            if not low <= value <= high:
                raise ConfigError(f"checks_settings.{name}", f"must be between {low} and {high}, got {value}")
        return self

    def rotation(self, interval_minutes: float) -> Rotation:
        """The id-segment rotation of a schedule running every `interval_minutes`, and its guarantee."""
        return Rotation.for_full_pass(self.full_pass_hours, interval_minutes)
