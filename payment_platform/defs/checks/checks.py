"""Asset checks on the stores: cross-store consistency (all payments, recent days, recent ingested ranges),
no duplicate payment ids, amounts valid for their rail, the failed-payment backup, the quarantine rate.

Thin: the logic lives in `payment_platform.reconciliation`. The full pass is one multi-asset check, so the
HBase scan it needs is paid once for consistency, duplicates and rail validity. Offending payment ids go in
the metadata (a sample plus the count). The consistency, duplicate and rail checks are blocking: a run that
also builds the daily settlement summary stops before it when they fail.
"""

from typing import Iterator

import dagster as dg

from payment_platform.defs.asset_keys import FAILED_PAYMENT_BACKUP, HBASE_PAYMENTS, POSTGRES_PAYMENTS, QUARANTINE
from payment_platform.defs.checks.settings import ChecksSettingsResource
from payment_platform.defs.resources import BackupResource, HBaseResource, KafkaResource, PostgresResource
from payment_platform.reconciliation import evaluate
from payment_platform.reconciliation.readers import HBaseReader, PostgresReader

CROSS_STORE_CONSISTENCY = "cross_store_consistency"
NO_DUPLICATE_PAYMENT_IDS = "no_duplicate_payment_ids"
AMOUNTS_VALID_FOR_RAIL = "amounts_valid_for_rail"
RECENT_DAYS_CONSISTENCY = "recent_days_consistency"
INGESTED_RANGES_CONSISTENCY = "ingested_ranges_consistency"
BACKUP_EMPTY_OR_DRAINING = "backup_empty_or_draining"
QUARANTINE_RATE = "quarantine_rate_under_threshold"

STORE_ASSETS = {"hbase": HBASE_PAYMENTS, "postgres": POSTGRES_PAYMENTS}

# The checks the daily settlement summary must not build past.
BLOCKING_CHECKS = [dg.AssetCheckKey(asset, name) for asset in STORE_ASSETS.values()
                   for name in (CROSS_STORE_CONSISTENCY, NO_DUPLICATE_PAYMENT_IDS, AMOUNTS_VALID_FOR_RAIL)]


def result(asset: dg.AssetKey, name: str, verdict: evaluate.Verdict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset, check_name=name, passed=verdict.passed, description=verdict.description,
        severity=dg.AssetCheckSeverity.WARN if verdict.severity == evaluate.WARN else dg.AssetCheckSeverity.ERROR,
        metadata=verdict.metadata)


def unavailable(error: Exception) -> evaluate.Verdict:
    return evaluate.Verdict(False, f"could not evaluate: {type(error).__name__}: {error}", {"error": str(error)})


def _readers(hbase: HBaseResource, postgres: PostgresResource) -> tuple[HBaseReader, PostgresReader]:
    return HBaseReader.from_store(hbase.client()), PostgresReader.from_ledger(postgres.client())


@dg.multi_asset_check(
    name="store_integrity_checks",
    specs=[dg.AssetCheckSpec(name, asset=asset, blocking=True, description=description)
           for asset in STORE_ASSETS.values()
           for name, description in (
               (CROSS_STORE_CONSISTENCY, "HBase and Postgres hold the same payments (ids, rail, currency, amount)"),
               (NO_DUPLICATE_PAYMENT_IDS, "no payment id appears twice in the store"),
               (AMOUNTS_VALID_FOR_RAIL, "every amount and currency is valid for its rail"))],
)
def store_integrity_checks(context: dg.AssetCheckExecutionContext, hbase: HBaseResource, postgres: PostgresResource,
                           backup: BackupResource, checks_settings: ChecksSettingsResource
                           ) -> Iterator[dg.AssetCheckResult]:
    """Full reconciliation of every payment: one pass per store feeds the consistency, duplicate and rail checks."""
    settings = checks_settings.validated()
    try:
        hbase_reader, postgres_reader = _readers(hbase, postgres)
        report = evaluate.full_reconciliation(hbase_reader, postgres_reader, settings.segment_target_rows,
                                              settings.settle_seconds)
    except Exception as error:  # noqa: BLE001 - a store down fails the checks with the reason, not the run
        context.log.warning(f"store integrity checks could not read the stores: {error!r}")
        for asset in STORE_ASSETS.values():
            for name in (CROSS_STORE_CONSISTENCY, NO_DUPLICATE_PAYMENT_IDS, AMOUNTS_VALID_FOR_RAIL):
                yield result(asset, name, unavailable(error))
        return
    context.log.info(report.describe())
    consistency = evaluate.consistency_verdict(report, backup.client())
    for store, asset in STORE_ASSETS.items():
        yield result(asset, CROSS_STORE_CONSISTENCY, consistency)
        yield result(asset, NO_DUPLICATE_PAYMENT_IDS, evaluate.duplicates_verdict(report, store))
        yield result(asset, AMOUNTS_VALID_FOR_RAIL, evaluate.rail_verdict(report, store))


@dg.asset_check(asset=POSTGRES_PAYMENTS, name=RECENT_DAYS_CONSISTENCY, blocking=True,
                description="HBase and Postgres agree on each of the most recent UTC days of payments")
def recent_days_consistency(hbase: HBaseResource, postgres: PostgresResource, backup: BackupResource,
                            checks_settings: ChecksSettingsResource) -> dg.AssetCheckResult:
    """Time-window reconciliation: the most recent days, each a row-key range in HBase and a created_at range."""
    settings = checks_settings.validated()
    try:
        hbase_reader, postgres_reader = _readers(hbase, postgres)
        verdict = evaluate.window_consistency(hbase_reader, postgres_reader, settings.window_days, backup.client(),
                                              settings.settle_seconds)
    except Exception as error:  # noqa: BLE001
        verdict = unavailable(error)
    return result(POSTGRES_PAYMENTS, RECENT_DAYS_CONSISTENCY, verdict)


@dg.asset_check(asset=HBASE_PAYMENTS, name=INGESTED_RANGES_CONSISTENCY,
                description="every payment of the recent ingested Kafka ranges is in both stores or waits in "
                            "the backup for the one that missed it")
def ingested_ranges_consistency(hbase: HBaseResource, postgres: PostgresResource, backup: BackupResource,
                                kafka: KafkaResource, checks_settings: ChecksSettingsResource) -> dg.AssetCheckResult:
    """Range by range: every ingested range until it is proven (its ids read back from Kafka are in both stores);
    when all are proven, the most recent ranges again (a row removed since shows up)."""
    settings = checks_settings.validated()
    try:
        hbase_reader, postgres_reader = _readers(hbase, postgres)
        rows, unproven = postgres_reader.ranges_to_check(settings.ranges_per_evaluation)
        rechecked = not rows
        if rechecked:
            rows = postgres_reader.recent_ranges(settings.recent_ranges)
        ranges = [evaluate.IngestedRange(*row) for row in rows]
        with kafka.client() as kafka_client:
            verdict = evaluate.ranges_consistency(ranges, hbase_reader, postgres_reader, backup.client(),
                                                  kafka_client)
        postgres_reader.record_range_checks(verdict.outcomes)
        proven_now = sum(1 for _, proven, _ in verdict.outcomes if proven and not rechecked)
        verdict.metadata.update({"ranges_unproven": unproven - proven_now, "rechecked_recent": rechecked})
    except Exception as error:  # noqa: BLE001
        verdict = unavailable(error)
    return result(HBASE_PAYMENTS, INGESTED_RANGES_CONSISTENCY, verdict)


@dg.asset_check(asset=FAILED_PAYMENT_BACKUP, name=BACKUP_EMPTY_OR_DRAINING,
                description="the failed-payment backup is empty; WARN while it holds payments, ERROR past the "
                            "configured age")
def backup_empty_or_draining(backup: BackupResource, checks_settings: ChecksSettingsResource) -> dg.AssetCheckResult:
    settings = checks_settings.validated()
    try:
        verdict = evaluate.backup_verdict(backup.client().stats(), settings.backup_max_age_seconds)
    except Exception as error:  # noqa: BLE001
        verdict = unavailable(error)
    return result(FAILED_PAYMENT_BACKUP, BACKUP_EMPTY_OR_DRAINING, verdict)


@dg.asset_check(asset=QUARANTINE, name=QUARANTINE_RATE,
                description="the share of messages sent to quarantine stays under the configured threshold")
def quarantine_rate(postgres: PostgresResource, checks_settings: ChecksSettingsResource) -> dg.AssetCheckResult:
    settings = checks_settings.validated()
    window_s = settings.quarantine_window_hours * 3600
    try:
        quarantined, messages = PostgresReader.from_ledger(postgres.client()).quarantine_window(window_s)
        verdict = evaluate.quarantine_verdict(quarantined, messages, settings.quarantine_max_rate, window_s)
    except Exception as error:  # noqa: BLE001
        verdict = unavailable(error)
    return result(QUARANTINE, QUARANTINE_RATE, verdict)


ALL_CHECKS = [store_integrity_checks, recent_days_consistency, ingested_ranges_consistency,
              backup_empty_or_draining, quarantine_rate]

CHECKS_JOB = "consistency_checks_job"
consistency_checks_job = dg.define_asset_job(
    CHECKS_JOB, selection=dg.AssetSelection.checks(*ALL_CHECKS),
    description="Every store check: consistency HBase vs Postgres, duplicates, rail validity, backup, quarantine.")

consistency_checks_schedule = dg.ScheduleDefinition(
    name="consistency_checks_every_15_minutes", job=consistency_checks_job, cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING)
