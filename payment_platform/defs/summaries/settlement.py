"""The daily settlement summary: per settlement day, rail and currency, how many payments and how much,
settled and rejected, in the Postgres table `daily_settlement_summary`.

Built from the ledger of record (Postgres) only after the blocking store checks passed in the same run, so it
never sums inconsistent data. Re-runs are safe: the table is replaced in one transaction.
"""
import dagster as dg

from payment_platform.defs import catalog
from payment_platform.defs.asset_keys import DAILY_SETTLEMENT_SUMMARY, HBASE_PAYMENTS, POSTGRES_PAYMENTS
from payment_platform.defs.checks.checks import BLOCKING_CHECKS, CHECKS_EXECUTOR, CHECKS_TAG
from payment_platform.defs.resources import PostgresResource
from payment_platform.stores.postgres import SETTLEMENT_SUMMARY_TABLE

SETTLED_STATUSES = ("ACSC", "ACCC")  # ISO 20022: settlement completed
REJECTED_STATUSES = ("RJCT", "CANC", "BLCK")


@dg.asset(key=DAILY_SETTLEMENT_SUMMARY, deps=[HBASE_PAYMENTS, POSTGRES_PAYMENTS], group_name="summaries",
          kinds={"postgres"}, owners=catalog.OWNERS,
          metadata=catalog.table_metadata("daily_settlement_summary", catalog.SUMMARY_SCHEMA),
          description="Per settlement day, rail and currency: payments, total and settled amounts, rejections "
                      "(Postgres table daily_settlement_summary). Guarded by the blocking store checks.")
def daily_settlement_summary(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    """The daily settlement summary per rail and currency, rebuilt from the ledger."""
    ledger = postgres.client()
    try:
        figures = ledger.rebuild_settlement_summary(SETTLED_STATUSES, REJECTED_STATUSES)
    finally:
        ledger.close()
    context.log.info(f"daily settlement summary: {figures}")
    return dg.MaterializeResult(metadata={**figures, "table": SETTLEMENT_SUMMARY_TABLE,
                                          "dagster/row_count": figures["rows"]})


SUMMARY_JOB = "daily_settlement_job"
daily_settlement_job = dg.define_asset_job(
    SUMMARY_JOB,
    selection=dg.AssetSelection.assets(DAILY_SETTLEMENT_SUMMARY) | dg.AssetSelection.checks(*BLOCKING_CHECKS),
    tags={CHECKS_TAG: "store"},  # one run of store checks at a time (dagster.yaml)
    executor_def=CHECKS_EXECUTOR,
    description="The blocking store checks, then the daily settlement summary (skipped if a check fails).")

daily_settlement_schedule = dg.ScheduleDefinition(
    name="daily_settlement_at_0030_utc", job=daily_settlement_job, cron_schedule="30 0 * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING)
