"""Asset checks on the stores (consistency HBase vs Postgres, duplicates, rail validity, backup, quarantine),
their job and schedule."""
import dagster as dg

from payment_platform.defs.checks.checks import (
    ALL_CHECKS,
    consistency_checks_job,
    consistency_checks_schedule,
    full_reconciliation_job,
)
from payment_platform.defs.checks.settings import ChecksSettingsResource

defs = dg.Definitions(
    asset_checks=ALL_CHECKS,
    jobs=[consistency_checks_job, full_reconciliation_job],
    schedules=[consistency_checks_schedule],
    resources={"checks_settings": ChecksSettingsResource(niceness=10)},
)
