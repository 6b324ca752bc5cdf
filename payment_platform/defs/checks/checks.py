"""Asset checks on the stores: cross-store consistency (all payments, recent days, recent ingested ranges),
no duplicate payment ids, amounts valid for their rail, the failed-payment backup, the quarantine rate, and
ingestion not stalled (on the Kafka topic).

Thin: the logic lives in `payment_platform.reconciliation`. Two kinds of store checks:
- the cheap checks of ingested ranges (`ingested_range_checks`: consistency, duplicates, rail validity of the
  range's payments) run inside every ingestion run, right after its range lands, so a user who just loaded
  data sees a verdict on it; executed on their own (UI, schedule) they take the ranges not proven yet;
- the store reconciliation (`store_integrity_checks`: consistency, duplicates, rail validity) compares the stores
  under a consistent cut, the ingestion progress read as it starts (`reconciliation.cut`): payments landing while it
  runs are in flight, never a mismatch. On the 15-minute schedule, before the daily settlement summary (blocking)
  and from the UI it is incremental: what landed since the last proven cut plus a rotating slice of the older
  payments (the guarantee is in its metadata); `full_reconciliation_job` reads every payment, on demand.
Both are multi-asset checks that can be subset: any one check, or any asset's checks, executes alone.
Offending payment ids go in the metadata (a count, a sample and a table).
"""

import os
import time
from typing import Callable, Iterator

import dagster as dg

from payment_platform.defs.asset_keys import (
    FAILED_PAYMENT_BACKUP,
    HBASE_PAYMENTS,
    PAYMENTS_TOPIC,
    POSTGRES_PAYMENTS,
    QUARANTINE,
)
from payment_platform.defs.checks.settings import ChecksSettingsResource
from payment_platform.defs.ingestion_settings import IngestionSettingsResource
from payment_platform.defs.resources import BackupResource, HBaseResource, KafkaResource, PostgresResource
from payment_platform.defs.run_workers import WORKER_PID_TAG, fail_dead_runs, record_worker
from payment_platform.ingestion.planner import lag_of
from payment_platform.reconciliation import evaluate, scheduled
from payment_platform.reconciliation.cut import BacklogProbe, Throttle
from payment_platform.reconciliation.readers import HBaseReader, PostgresReader
from payment_platform.stores.kafka import HeldMessages, UnknownTopic

CROSS_STORE_CONSISTENCY = "cross_store_consistency"
NO_DUPLICATE_PAYMENT_IDS = "no_duplicate_payment_ids"
AMOUNTS_VALID_FOR_RAIL = "amounts_valid_for_rail"
RECENT_DAYS_CONSISTENCY = "recent_days_consistency"
INGESTED_RANGES_CONSISTENCY = "ingested_ranges_consistency"
INGESTION_NOT_STALLED = "ingestion_not_stalled"
RANGE_NO_DUPLICATES = "range_no_duplicate_payment_ids"
RANGE_AMOUNTS_VALID = "range_amounts_valid_for_rail"
# Materialization metadata of the store assets listing the ranges a run ingested: [[topic, partition, start, end]]
INGESTED_RANGES_METADATA = "ingested_ranges"
BACKUP_EMPTY_OR_DRAINING = "backup_empty_or_draining"
QUARANTINE_RATE = "quarantine_rate_under_threshold"

STORE_ASSETS = {"hbase": HBASE_PAYMENTS, "postgres": POSTGRES_PAYMENTS}

# The checks the daily settlement summary must not build past.
BLOCKING_CHECKS = [dg.AssetCheckKey(asset, name) for asset in STORE_ASSETS.values()
                   for name in (CROSS_STORE_CONSISTENCY, NO_DUPLICATE_PAYMENT_IDS, AMOUNTS_VALID_FOR_RAIL)]


def result(asset: dg.AssetKey, name: str, verdict: evaluate.Verdict) -> dg.AssetCheckResult:
    metadata = dict(verdict.metadata)
    offending = offending_ids_table(metadata)
    if offending is not None:
        metadata["offending_ids"] = offending
    return dg.AssetCheckResult(
        asset_key=asset, check_name=name, passed=verdict.passed, description=verdict.description,
        severity=dg.AssetCheckSeverity.WARN if verdict.severity == evaluate.WARN else dg.AssetCheckSeverity.ERROR,
        metadata=metadata)


OFFENDING_ID_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("payment_id", "string", description="the payment the check found wrong"),
    dg.TableColumn("problem", "string", description="what is wrong with it")])


ID_SAMPLES = {"mismatch_sample": "differs between HBase and Postgres (or missing from one)",
              "lost_sample": "in neither a store nor its backup", "duplicate_sample": "stored more than once",
              "invalid_sample": "invalid for its rail"}


def offending_ids_table(metadata: dict) -> dg.MetadataValue | None:
    """The sampled offending ids (the `*_sample` lists of ids) as one readable table, each with what is wrong."""
    reasons = metadata.get("invalid_reasons") or {}
    rows = []
    for key, value in metadata.items():
        if key in ID_SAMPLES and isinstance(value, list):
            rows += [dg.TableRecord({"payment_id": str(pid), "problem": str(reasons.get(pid, ID_SAMPLES[key]))})
                     for pid in value]
    if not rows:
        return None
    return dg.MetadataValue.table(rows, schema=OFFENDING_ID_SCHEMA)


def unavailable(error: Exception) -> evaluate.Verdict:
    return evaluate.Verdict(False, f"could not evaluate: {type(error).__name__}: {error}", {"error": str(error)})


def _readers(hbase: HBaseResource, postgres: PostgresResource, settings: ChecksSettingsResource | None = None,
             behind: Callable[[], bool] | None = None) -> tuple[HBaseReader, PostgresReader]:
    """The stores as reconciliation sources; with `settings`, HBase is read in bounded batches, and both stores with
    pauses between batches and queries (the check yields to ingestion, which shares the stores), waiting while
    `behind()` says ingestion fell behind."""
    store = _prepared(hbase.client())
    if settings is None:
        return HBaseReader.from_store(store), PostgresReader.from_ledger(_prepared(postgres.client()))
    throttle = Throttle(settings.busy_share, behind=behind if settings.max_yield_share > 0 else None,
                        max_yield_share=settings.max_yield_share)
    return (HBaseReader.from_store(store, settings.scan_batch_rows, throttle),
            PostgresReader.from_ledger(_prepared(postgres.client()), throttle))


def ingestion_backlog(kafka: KafkaResource, postgres: PostgresResource, settings: ChecksSettingsResource
                      ) -> BacklogProbe:
    """The probe a store check yields to ingestion with: the payments topic's messages not yet ingested, with the
    normal backlog learnt before the check reads anything (when the check yields at all)."""
    timeout_s = settings.io_timeout_seconds
    def read() -> tuple[int, int]:
        with kafka.client(timeout_s) as client:
            end_offsets = client.end_offsets()
        ledger = postgres.client()
        try:
            lag = lag_of(end_offsets, ledger.read_progress(kafka.topic))
        finally:
            ledger.close()
        return lag.end_offset_sum, lag.lag

    probe = BacklogProbe(read)
    if settings.max_yield_share > 0:
        probe.learn()
    return probe


def yielding_metadata(hbase_reader: HBaseReader, probe: BacklogProbe) -> dict:
    throttle = hbase_reader.throttle
    return {"paused_seconds": round(throttle.slept, 3), "yielded_to_ingestion_seconds": round(throttle.yielded, 3),
            "ingestion_backlog_at_start": -1 if probe.baseline is None else probe.baseline,
            "ingestion_backlog_normal": -1 if probe.normal is None else probe.normal}


def lower_priority(niceness: int) -> None:
    """Run this worker process at (at least) the given nice level: ingestion's processes keep the CPU first."""
    if niceness > 0 and hasattr(os, "nice"):
        current = os.nice(0)
        if current < niceness:
            os.nice(niceness - current)


def _prepared(store):
    """The store with its tables in place, created as ingestion creates them (idempotent): on a fresh platform,
    before anything is ingested, the checks read empty tables and pass ("nothing ingested yet") instead of
    failing on a table that does not exist yet."""
    store.ensure_schema()
    return store


FULL_CHECKS = ((CROSS_STORE_CONSISTENCY, "HBase and Postgres hold the same payments (ids, rail, currency, amount)"),
               (NO_DUPLICATE_PAYMENT_IDS, "no payment id appears twice in the store"),
               (AMOUNTS_VALID_FOR_RAIL, "every amount and currency is valid for its rail"))


# Run tag choosing the store reconciliation: "incremental" (the schedule: new payments + a rotating slice of older
# ones, under a cut) or "full" (every payment under a cut, on demand: `full_reconciliation_job`).
RECONCILIATION_TAG = "payment_platform/reconciliation"
# Every run of store checks carries it; the run coordinator runs one such run at a time (dagster.yaml).
CHECKS_TAG = "payment_platform/checks"
CHECKS_INTERVAL_MINUTES = 15  # the schedule's period: the rotation's guarantee is computed from it


@dg.multi_asset_check(
    name="store_integrity_checks",
    specs=[dg.AssetCheckSpec(name, asset=asset, blocking=True, description=description)
           for asset in STORE_ASSETS.values() for name, description in FULL_CHECKS],
    can_subset=True,  # Execute on one check (or Execute all on one asset's Checks tab) runs just those
)
def store_integrity_checks(context: dg.AssetCheckExecutionContext, hbase: HBaseResource, postgres: PostgresResource,
                           backup: BackupResource, kafka: KafkaResource, checks_settings: ChecksSettingsResource
                           ) -> Iterator[dg.AssetCheckResult]:
    """Reconciliation under a consistent cut (the ingestion progress read as it starts): incremental (what landed
    since the last proven cut + a rotating slice of older payments) or, in a run tagged full, every payment. One
    pass per store feeds the consistency, duplicate and rail checks (whichever of them were selected)."""
    record_worker(context)  # a checks run killed with Dagster is found by the schedule's next tick
    selected = context.selected_asset_check_keys
    settings = checks_settings.validated()
    mode = context.run.tags.get(RECONCILIATION_TAG, scheduled.INCREMENTAL)
    lower_priority(settings.niceness)
    probe = ingestion_backlog(kafka, postgres, settings)
    try:
        hbase_reader, postgres_reader = _readers(hbase, postgres, settings, probe)
        if mode == scheduled.FULL:
            outcome = scheduled.full_reconciliation(hbase_reader, postgres_reader, settings.segment_target_rows,
                                                    settings.settle_seconds)
        else:
            outcome = scheduled.incremental_reconciliation(hbase_reader, postgres_reader,
                                                           settings.rotation(CHECKS_INTERVAL_MINUTES),
                                                           settings.settle_seconds)
    except Exception as error:  # noqa: BLE001 - a store down fails the checks with the reason, not the run
        context.log.warning(f"store integrity checks could not read the stores: {error!r}")
        for key in selected:
            yield result(key.asset_key, key.name, unavailable(error))
        return
    report = outcome.report
    context.log.info(f"{report.describe()} [{outcome.cut.describe()}; HBase reads paused "
                     f"{hbase_reader.throttle.slept:.1f} s and waited {hbase_reader.throttle.yielded:.0f} s for "
                     f"ingestion to catch up]")
    consistency = evaluate.consistency_verdict(report, backup.client())
    for store, asset in STORE_ASSETS.items():
        verdicts = {CROSS_STORE_CONSISTENCY: lambda: consistency,
                    NO_DUPLICATE_PAYMENT_IDS: lambda s=store: evaluate.duplicates_verdict(report, s),
                    AMOUNTS_VALID_FOR_RAIL: lambda s=store: evaluate.rail_verdict(report, s)}
        for name, verdict in verdicts.items():
            if dg.AssetCheckKey(asset, name) in selected:
                found = verdict()
                found.metadata.update({**outcome.metadata, **yielding_metadata(hbase_reader, probe)})
                yield result(asset, name, found)


@dg.asset_check(asset=POSTGRES_PAYMENTS, name=RECENT_DAYS_CONSISTENCY, blocking=True,
                description="HBase and Postgres agree on each of the most recent UTC days of payments (below the cut "
                            "of ingestion progress read as the check starts)")
def recent_days_consistency(hbase: HBaseResource, postgres: PostgresResource, backup: BackupResource,
                            kafka: KafkaResource, checks_settings: ChecksSettingsResource,
                            ingestion_settings: IngestionSettingsResource) -> dg.AssetCheckResult:
    """Time-window reconciliation: hours of the most recent days, each a row-key range in HBase and a created_at
    range, inside the valid window ingestion validates with (`ingestion_settings`): what ingestion accepted is never
    flagged. Only payments below the cut are compared: those landing meanwhile are in flight. Each run compares the
    newest hour and its slice of a rotation over all the hours (every hour within the stated guarantee)."""
    settings = checks_settings.validated()
    window = ingestion_settings.validity_window()  # a malformed setting fails the check's step, naming it
    lower_priority(settings.niceness)
    probe = ingestion_backlog(kafka, postgres, settings)
    try:
        hbase_reader, postgres_reader = _readers(hbase, postgres, settings, probe)
        verdict = scheduled.recent_days_reconciliation(
            hbase_reader, postgres_reader, settings.rotation(CHECKS_INTERVAL_MINUTES), window,
            lambda cut, select: evaluate.window_consistency(hbase_reader, postgres_reader, settings.window_days,
                                                            window, backup.client(), settings.settle_seconds,
                                                            cut=cut, select=select))
        verdict.metadata.update(yielding_metadata(hbase_reader, probe))
    except Exception as error:  # noqa: BLE001
        verdict = unavailable(error)
    return result(POSTGRES_PAYMENTS, RECENT_DAYS_CONSISTENCY, verdict)


RANGE_CHECK_SPECS = [
    dg.AssetCheckSpec(INGESTED_RANGES_CONSISTENCY, asset=HBASE_PAYMENTS,
                      description="every payment of the ingested Kafka range(s) is in both stores or waits in the "
                                  "backup for the one that missed it"),
    *[dg.AssetCheckSpec(name, asset=asset, description=description)
      for asset in STORE_ASSETS.values() for name, description in (
          (RANGE_NO_DUPLICATES, "no payment id of the ingested range(s) appears twice in the store"),
          (RANGE_AMOUNTS_VALID, "every amount and currency of the ingested range(s) is valid for its rail"))],
]
# Evaluated in every ingestion run, right after its range lands (the ingestion job selects them).
RANGE_CHECK_KEYS = [spec.key for spec in RANGE_CHECK_SPECS]


RECHECKED_RECENT = "the most recent ranges, again (every range is proven)"


def ranges_for_run(context: dg.AssetCheckExecutionContext, postgres_reader: PostgresReader,
                   settings: ChecksSettingsResource) -> tuple[list[tuple], str]:
    """The ranges to check: in an ingestion run, the ones it ingested (from its materialization); otherwise
    (Execute in the UI, the schedule) every range not proven yet, newest first, or, when all are proven,
    the most recent ones again (a row removed since shows up)."""
    event = context.instance.get_latest_materialization_event(HBASE_PAYMENTS)
    if event is not None and event.run_id == context.run.run_id:
        ingested = event.asset_materialization.metadata.get(INGESTED_RANGES_METADATA)
        wanted = {tuple(r) for r in (ingested.value if ingested else [])}
        if not wanted:
            return [], "this run ingested no range"
        recent = postgres_reader.recent_ranges(max(50, 4 * len(wanted)))
        return [row for row in recent if tuple(row[1:5]) in wanted], "the range(s) this run ingested"
    rows, _unproven = postgres_reader.ranges_to_check(settings.ranges_per_evaluation)
    if rows:
        return rows, "ranges not proven yet"
    return postgres_reader.recent_ranges(settings.recent_ranges), RECHECKED_RECENT


def range_verdicts(rows: list[tuple], which: str, hbase_reader: HBaseReader, postgres_reader: PostgresReader,
                   backup: BackupResource, kafka: KafkaResource,
                   count_unproven: bool = True, held: list[tuple] = ()) -> dict[dg.AssetCheckKey, evaluate.Verdict]:
    """The range checks' verdicts on the ingested ranges `rows` (as `recent_ranges` lists them); ranges proven
    consistent are remembered. `count_unproven` counts the ranges never proven (a scan of every recorded range:
    a lease, checking every few seconds, leaves it to the scheduled run). `held`: (OffsetRange, messages) a lease
    has just read and landed, parsed from memory instead of fetched from Kafka again."""
    ranges = [evaluate.IngestedRange(*row) for row in rows]
    with kafka.client() as kafka_client:
        source = HeldMessages(kafka_client, kafka.topic)
        for offset_range, messages in held:
            source.hold(offset_range.topic, offset_range.partition, offset_range.start, offset_range.end, messages)
        verdicts = evaluate.ranges_verdicts(ranges, hbase_reader, postgres_reader, backup.client(), source)
    verdicts.consistency.metadata.update({"ranges_read_from_memory": source.served_from_memory,
                                          "ranges_read_from_kafka": source.read_from_broker})
    postgres_reader.ensure_range_checks()
    postgres_reader.record_range_checks(verdicts.consistency.outcomes)
    verdicts.consistency.metadata.update({"checked": which, "rechecked_recent": which == RECHECKED_RECENT})
    if count_unproven:
        verdicts.consistency.metadata["ranges_unproven"] = postgres_reader.ranges_to_check(1)[1]
    by_key = {dg.AssetCheckKey(HBASE_PAYMENTS, INGESTED_RANGES_CONSISTENCY): verdicts.consistency}
    for store, asset in STORE_ASSETS.items():
        by_key[dg.AssetCheckKey(asset, RANGE_NO_DUPLICATES)] = verdicts.duplicates[store]
        by_key[dg.AssetCheckKey(asset, RANGE_AMOUNTS_VALID)] = verdicts.rails[store]
    return by_key


def lease_range_verdicts(landed: list[tuple], hbase: HBaseResource, postgres: PostgresResource,
                         backup: BackupResource, kafka: KafkaResource) -> tuple[dict, str | None]:
    """The range checks' verdicts on what a lease run just landed (`landed`: (OffsetRange, its messages as read)),
    and the warning to log when the stores could not be read. No Dagster context: it runs on the lease's checks
    thread, with clients of its own."""
    try:
        hbase_reader, postgres_reader = _readers(hbase, postgres)
        wanted = {(r.topic, r.partition, r.start, r.end) for r, _ in landed}
        recent = postgres_reader.recent_ranges(max(50, 4 * len(wanted)))
        rows = [row for row in recent if tuple(row[1:5]) in wanted]
        return range_verdicts(rows, "the micro-batches this lease landed", hbase_reader, postgres_reader, backup,
                              kafka, count_unproven=False, held=landed), None
    except Exception as error:  # noqa: BLE001 - a store down fails the checks with the reason, not the lease
        return {key: unavailable(error) for key in RANGE_CHECK_KEYS}, f"range checks could not read the stores: {error!r}"


def range_check_evaluations(by_key: dict) -> list[dg.AssetCheckEvaluation]:
    """The verdicts of `lease_range_verdicts` as the check evaluations a lease run logs."""
    evaluations = []
    for key in RANGE_CHECK_KEYS:
        checked = result(key.asset_key, key.name, by_key[key])
        evaluations.append(dg.AssetCheckEvaluation(asset_key=key.asset_key, check_name=key.name,
                                                   passed=checked.passed, metadata=checked.metadata,
                                                   severity=checked.severity, description=checked.description))
    return evaluations


@dg.multi_asset_check(name="ingested_range_checks", specs=RANGE_CHECK_SPECS, can_subset=True)
def ingested_range_checks(context: dg.AssetCheckExecutionContext, hbase: HBaseResource, postgres: PostgresResource,
                          backup: BackupResource, kafka: KafkaResource, checks_settings: ChecksSettingsResource
                          ) -> Iterator[dg.AssetCheckResult]:
    """The cheap checks of ingested ranges, from one read of each range (Kafka and both stores): consistency,
    duplicate ids and rail validity of the range's payments. Ranges proven consistent are remembered."""
    record_worker(context)
    selected = context.selected_asset_check_keys
    settings = checks_settings.validated()
    try:
        hbase_reader, postgres_reader = _readers(hbase, postgres)
        rows, which = ranges_for_run(context, postgres_reader, settings)
        by_key = range_verdicts(rows, which, hbase_reader, postgres_reader, backup, kafka)
    except Exception as error:  # noqa: BLE001 - a store down fails the checks with the reason, not the run
        context.log.warning(f"ingested range checks could not read the stores: {error!r}")
        by_key = {key: unavailable(error) for key in RANGE_CHECK_KEYS}
    for key in RANGE_CHECK_KEYS:
        if key in selected:
            yield result(key.asset_key, key.name, by_key[key])


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
        quarantined, messages = PostgresReader.from_ledger(_prepared(postgres.client())).quarantine_window(window_s)
        verdict = evaluate.quarantine_verdict(quarantined, messages, settings.quarantine_max_rate, window_s)
    except Exception as error:  # noqa: BLE001
        verdict = unavailable(error)
    return result(QUARANTINE, QUARANTINE_RATE, verdict)


@dg.asset_check(asset=PAYMENTS_TOPIC, name=INGESTION_NOT_STALLED,
                description="payments waiting in Kafka are ingested in time: fails when the oldest waiting one is "
                            "older than checks_settings.stall_after_seconds; an idle topic passes")
def ingestion_not_stalled(kafka: KafkaResource, postgres: PostgresResource,
                          checks_settings: ChecksSettingsResource) -> dg.AssetCheckResult:
    settings = checks_settings.validated()
    try:
        verdict = evaluate.stall_verdict(waiting_payments(kafka, postgres, settings.io_timeout_seconds),
                                         settings.stall_after_seconds)
    except Exception as error:  # noqa: BLE001
        verdict = unavailable(error)
    return result(PAYMENTS_TOPIC, INGESTION_NOT_STALLED, verdict)


def waiting_payments(kafka: KafkaResource, postgres: PostgresResource, timeout_s: float
                     ) -> dict[int, tuple[int, float | None]]:
    """Per partition: messages published and not ingested, and the age of the oldest (its Kafka timestamp)."""
    with kafka.client(timeout_s) as client:
        try:
            end_offsets = client.end_offsets()
        except UnknownTopic:
            return {}  # no payments published yet: nothing can be stalled
        ledger = postgres.client()
        try:
            progress = ledger.read_progress(kafka.topic)
        finally:
            ledger.close()
        first = client.beginning_offsets() if any(p not in progress for p in end_offsets) else {}
        waiting = {}
        for partition, end in end_offsets.items():
            start = max(progress.get(partition, first.get(partition, 0)), first.get(partition, 0))
            if start >= end:
                waiting[partition] = (0, None)
                continue
            oldest = next(iter(client.read_range(partition, start, start + 1, batch=1)), [])
            age = time.time() - oldest[0].timestamp_ms / 1000 if oldest else None
            waiting[partition] = (end - start, age)
    return waiting


ALL_CHECKS = [store_integrity_checks, recent_days_consistency, ingested_range_checks, ingestion_not_stalled,
              backup_empty_or_draining, quarantine_rate]

# One process for all the checks of a run, one after the other: each step in its own process (Dagster's default)
# costs a Python start and an import of Dagster and the project per check, CPU taken from ingestion for nothing.
CHECKS_EXECUTOR = dg.in_process_executor

CHECKS_JOB = "consistency_checks_job"
consistency_checks_job = dg.define_asset_job(
    CHECKS_JOB, selection=dg.AssetSelection.checks(*ALL_CHECKS),
    # max_runtime: the last resort for a run whose worker died before recording itself (the schedule finds the others)
    tags={CHECKS_TAG: "store", RECONCILIATION_TAG: scheduled.INCREMENTAL, "dagster/max_runtime": "10800"},
    executor_def=CHECKS_EXECUTOR,
    description="Every store check: consistency HBase vs Postgres (incremental, under a cut of ingestion progress), "
                "duplicates, rail validity, backup, quarantine.")

UNFINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


@dg.schedule(name="consistency_checks_every_15_minutes", job=consistency_checks_job,
             cron_schedule=f"*/{CHECKS_INTERVAL_MINUTES} * * * *", default_status=dg.DefaultScheduleStatus.RUNNING,
             description="The store checks every 15 minutes; a tick is skipped while the previous checks run has not "
                         "finished (incremental: the next run covers what landed meanwhile), so runs never pile up "
                         "in the queue behind a slow one.")
def consistency_checks_schedule(context: dg.ScheduleEvaluationContext):
    unfinished = context.instance.get_run_records(dg.RunsFilter(job_name=CHECKS_JOB, statuses=UNFINISHED))
    # a run whose worker died (killed with Dagster) would hold every later tick back: it is marked failed here
    dead = set(fail_dead_runs(context.instance, [r for r in unfinished if WORKER_PID_TAG in r.dagster_run.tags],
                              context.log))
    alive = [r.dagster_run for r in unfinished if r.dagster_run.run_id not in dead]
    if alive:
        run = alive[0]
        return dg.SkipReason(f"the checks run {run.run_id} is still {run.status.value.lower()}: the next run after it "
                             f"covers what landed meanwhile")
    return dg.RunRequest()

FULL_RECONCILIATION_JOB = "full_reconciliation_job"
full_reconciliation_job = dg.define_asset_job(
    FULL_RECONCILIATION_JOB, selection=dg.AssetSelection.checks(store_integrity_checks),
    tags={CHECKS_TAG: "store", RECONCILIATION_TAG: scheduled.FULL},
    executor_def=CHECKS_EXECUTOR,
    description="On demand: every payment ever stored, HBase vs Postgres (under a cut of ingestion progress), "
                "duplicates and rail validity. Its cost grows with the history; the schedule runs the incremental one.")
