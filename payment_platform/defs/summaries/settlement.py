"""The daily settlement summary: per settlement day, rail and currency, how many payments and how much,
settled and rejected, in the Postgres table `daily_settlement_summary`.

Built from the ledger of record (Postgres) only after the blocking store checks passed in the same run, so it
never sums inconsistent data. Re-runs are safe: the table is replaced in one transaction.
"""
import dagster as dg
import psycopg2
from psycopg2 import sql

from payment_platform.defs.asset_keys import DAILY_SETTLEMENT_SUMMARY, HBASE_PAYMENTS, POSTGRES_PAYMENTS
from payment_platform.defs.checks.checks import BLOCKING_CHECKS
from payment_platform.defs.resources import PostgresResource

SUMMARY_TABLE = "daily_settlement_summary"
SETTLED_STATUSES = ("ACSC", "ACCC")  # ISO 20022: settlement completed
REJECTED_STATUSES = ("RJCT", "CANC", "BLCK")

_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    settlement_date  date NOT NULL,
    payment_type     text NOT NULL,
    currency         char(3) NOT NULL,
    payments         bigint NOT NULL,
    total_amount     numeric NOT NULL,
    settled          bigint NOT NULL,
    settled_amount   numeric NOT NULL,
    rejected         bigint NOT NULL,
    built_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (settlement_date, payment_type, currency)
)"""

# settlement day: the value date when the payment has one, else its UTC creation day
_BUILD = """
INSERT INTO {table} (settlement_date, payment_type, currency, payments, total_amount, settled, settled_amount, rejected)
SELECT coalesce(value_date, (created_at AT TIME ZONE 'UTC')::date), payment_type, currency, count(*), sum(amount),
       count(*) FILTER (WHERE status = ANY(%(settled)s)),
       coalesce(sum(amount) FILTER (WHERE status = ANY(%(settled)s)), 0),
       count(*) FILTER (WHERE status = ANY(%(rejected)s))
FROM {payments} GROUP BY 1, 2, 3"""


def build_summary(ledger) -> dict:
    """Replace the summary table from the ledger; returns figures for the materialization."""
    table = sql.SQL("{}.{}").format(sql.Identifier(ledger.schema), sql.Identifier(SUMMARY_TABLE))
    payments = sql.SQL("{}.{}").format(sql.Identifier(ledger.schema), sql.Identifier("payments"))

    def work(cur):
        cur.execute(sql.SQL(_DDL).format(table=table))
        cur.execute(sql.SQL("DELETE FROM {}").format(table))
        cur.execute(sql.SQL(_BUILD).format(table=table, payments=payments),
                    {"settled": list(SETTLED_STATUSES), "rejected": list(REJECTED_STATUSES)})
        cur.execute(sql.SQL("SELECT count(*), coalesce(sum(payments), 0), count(DISTINCT settlement_date), "
                            "min(settlement_date), max(settlement_date) FROM {}").format(table))
        rows, payments_count, days, first, last = cur.fetchone()
        return {"rows": int(rows), "payments": int(payments_count), "days": int(days),
                "first_day": str(first) if first else "", "last_day": str(last) if last else ""}
    connection = psycopg2.connect(ledger.dsn, connect_timeout=ledger.connect_timeout_s,
                                  application_name="daily_settlement_summary")
    try:
        with connection, connection.cursor() as cur:  # one transaction: readers see the old or the new table
            return work(cur)
    finally:
        connection.close()


@dg.asset(key=DAILY_SETTLEMENT_SUMMARY, deps=[HBASE_PAYMENTS, POSTGRES_PAYMENTS], group_name="summaries",
          description="Per settlement day, rail and currency: payments, total and settled amounts, rejections "
                      "(Postgres table daily_settlement_summary). Guarded by the blocking store checks.")
def daily_settlement_summary(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    """The daily settlement summary per rail and currency, rebuilt from the ledger."""
    figures = build_summary(postgres.client())
    context.log.info(f"daily settlement summary: {figures}")
    return dg.MaterializeResult(metadata={**figures, "table": SUMMARY_TABLE})


SUMMARY_JOB = "daily_settlement_job"
daily_settlement_job = dg.define_asset_job(
    SUMMARY_JOB,
    selection=dg.AssetSelection.assets(DAILY_SETTLEMENT_SUMMARY) | dg.AssetSelection.checks(*BLOCKING_CHECKS),
    description="The blocking store checks, then the daily settlement summary (skipped if a check fails).")

daily_settlement_schedule = dg.ScheduleDefinition(
    name="daily_settlement_at_0030_utc", job=daily_settlement_job, cron_schedule="30 0 * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING)
