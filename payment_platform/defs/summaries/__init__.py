"""Downstream summaries of the stores, guarded by the blocking store checks."""
import dagster as dg

from payment_platform.defs.summaries.settlement import (
    daily_settlement_job,
    daily_settlement_schedule,
    daily_settlement_summary,
)

defs = dg.Definitions(assets=[daily_settlement_summary], jobs=[daily_settlement_job],
                      schedules=[daily_settlement_schedule])
