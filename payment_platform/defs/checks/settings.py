"""Thresholds of the checks, one resource so a deployment tunes them in one place."""
import dagster as dg

from payment_platform.config import ConfigError


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
                ("stall_after_seconds", self.stall_after_seconds, 1, 7 * 86400)):
            if not low <= value <= high:
                raise ConfigError(f"checks_settings.{name}", f"must be between {low} and {high}, got {value}")
        return self
