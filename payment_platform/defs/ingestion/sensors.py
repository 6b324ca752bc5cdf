"""The ingestion sensor: reads offsets only, keeps each partition with work leased, requests the lease runs.

Each tick: read the topic's end offsets (Kafka) and the recorded progress (Postgres), both bounded in
time; look up the runs of the leases in the cursor (failing those whose worker died); let the pure planner
decide; record progress resets (offsets that went backwards) BEFORE moving the cursor; request lease runs
(lease_job.py) with unique run keys; observe the topic's lag on the topic asset. If Kafka or Postgres cannot be
read, the tick skips with the reason and the cursor does not move.
"""

import time
from typing import Callable, TypeVar

import dagster as dg

from payment_platform.defs import asset_keys
from payment_platform.defs.ingestion.assets import NO_PAYMENTS_YET
from payment_platform.defs.ingestion.lease_job import ingest_lease_job
from payment_platform.defs.ingestion.runs import PARTITION_TAG, RANGE_TAG, lease_run_config
from payment_platform.defs.ingestion_settings import IngestionSettingsResource
from payment_platform.defs.resources import KafkaResource, PostgresResource
from payment_platform.defs.run_workers import fail_dead_runs
from payment_platform.ingestion import planner
from payment_platform.lib.bounded import bounded
from payment_platform.stores.kafka import KafkaClient, UnknownTopic

SENSOR_NAME = "payments_ingestion_sensor"
SENSOR_INTERVAL_SECONDS = 3  # a tick costs milliseconds; it starts leases, not batches: off every payment's path
MAX_RUNTIME_MARGIN_SECONDS = 300  # past its lease (and the wait for it), run monitoring ends a hung lease run

_FINISHED_BAD = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}

T = TypeVar("T")


class OffsetsUnavailable(RuntimeError):
    """Offsets or progress could not be read in time; the message says which system and why."""


def _read(system: str, what: str, call: Callable[[], T], timeout_s: float) -> T:
    """One offsets-only read, bounded in time; any failure is "`system` unavailable", said plainly."""
    try:
        return bounded(call, timeout_s, f"{system} {what}")
    except Exception as error:  # noqa: BLE001 - any client error pauses the tick with its reason
        raise OffsetsUnavailable(f"{system}: cannot read {what}: {type(error).__name__}: {error}") from error


def read_offsets(kafka: KafkaClient, ledger, cursor: planner.CursorState, timeout_s: float):
    """End offsets, topic id, progress and (when a partition is new or went backwards) first offsets, each
    read once, through the tick's one Kafka client (one admin connection)."""
    topic, where = kafka.topic, f"Kafka at {kafka.bootstrap_servers}"
    margin_s = timeout_s + 1.0  # the client's own timeout fires first; this only catches a hung socket
    if cursor.topic != topic:  # first tick (of a deployment, a new topic, a bad cursor): tables exist from now on
        bounded(ledger.ensure_schema, timeout_s, "postgres ensure_schema")
    # Progress first, then the end offsets: lease runs land batches between the two reads, and progress read
    # after the end offsets could be past them, which would look like offsets going backwards (a broker reset)
    # and start the partition again from its first offset.
    try:
        progress = _read("Postgres", f"ingestion progress of {topic!r}", lambda: ledger.read_progress(topic),
                         timeout_s)
    except OffsetsUnavailable as error:
        if type(error.__cause__).__name__ != "UndefinedTable":
            raise
        # the tables went away under a running sensor (a database restored or recreated): create them again
        bounded(ledger.ensure_schema, timeout_s, "postgres ensure_schema")
        progress = _read("Postgres", f"ingestion progress of {topic!r}", lambda: ledger.read_progress(topic),
                         timeout_s)
    end_offsets = _read(where, f"end offsets of {topic!r}", kafka.end_offsets, margin_s)
    topic_id = _read(where, f"the id of topic {topic!r}", kafka.topic_id, margin_s)
    first_offsets = {}
    missing = [p for p in end_offsets if p not in progress]
    if missing or planner.backwards_partitions(cursor, topic, end_offsets, progress, topic_id):
        first_offsets = _read(where, f"beginning offsets of {topic!r}", kafka.beginning_offsets, margin_s)
    return end_offsets, topic_id, progress, first_offsets


def failure_of(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """Why a run failed, in its own words (its step's error, else the run's), for the partition's failure streak."""
    try:
        for event_type in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE):
            logs = instance.all_logs(run.run_id, of_type=event_type)
            if logs:
                event = logs[-1].dagster_event
                data = event.step_failure_data if event_type == dg.DagsterEventType.STEP_FAILURE else None
                error = data.error.message.strip() if data and data.error else (event.message or "")
                return f"run {run.run_id[:8]}: {error}"
    except Exception as error:  # noqa: BLE001 - the streak still counts without the words
        return f"run {run.run_id[:8]} {run.status.value} (its error could not be read: {error!r})"
    return f"run {run.run_id[:8]} {run.status.value}"


def run_info_of(instance: dg.DagsterInstance, record: dg.RunRecord | None) -> planner.RunInfo:
    """What a lease's run adds up to."""
    if record is None:
        return planner.RunInfo(planner.RunState.MISSING)
    run = record.dagster_run
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return planner.RunInfo(planner.RunState.SUCCEEDED, record.start_time)
    if run.status in _FINISHED_BAD:
        return planner.RunInfo(planner.RunState.FAILED, record.start_time, failure_of(instance, run))
    return planner.RunInfo(planner.RunState.ACTIVE, record.start_time)


def run_infos(instance: dg.DagsterInstance, lease_keys: list[str], log=None) -> dict[str, planner.RunInfo]:
    infos = {}
    for key in lease_keys:
        runs = dg.RunsFilter(tags={RANGE_TAG: key})
        records = list(instance.get_run_records(filters=runs, limit=1))
        if fail_dead_runs(instance, records, log):  # a killed worker's run fails now, not at max_runtime
            records = list(instance.get_run_records(filters=runs, limit=1))
        infos[key] = run_info_of(instance, records[0] if records else None)
    return infos


def run_request(planned: planner.PlannedLease, settings: planner.PlannerSettings,
                acquire_seconds: float) -> dg.RunRequest:
    max_runtime = settings.lease_seconds + acquire_seconds + MAX_RUNTIME_MARGIN_SECONDS
    return dg.RunRequest(
        run_key=planned.run_key,
        run_config=lease_run_config(planned.topic, planned.partition, planned.start_offset),
        tags={RANGE_TAG: planned.run_key, PARTITION_TAG: str(planned.partition),
              "payment_platform/lease_start_offset": str(planned.start_offset),
              "payment_platform/successor": str(planned.successor).lower(),
              "dagster/max_runtime": str(int(max_runtime))},
    )


FAILING_STREAK = 2  # failed leases in a row at one offset before the topic's observation names the partition


def lag_observation(lag: planner.Lag, topic: str, failing: dict | None = None) -> dg.AssetObservation:
    failing = failing or {}
    metadata = {**lag.as_metadata(), "topic": topic, "failing_partitions": len(failing)}
    description = "messages published but not yet ingested"
    if failing:
        metadata["failing"] = dg.MetadataValue.json({str(p): {"failed_leases_in_a_row": f.count, "at_offset": f.offset,
                                                              "error": f.error} for p, f in failing.items()})
        description += "; ingestion FAILING on " + ", ".join(
            f"partition {p} at offset {f.offset} ({f.count} leases in a row: {f.error[:200]})"
            for p, f in sorted(failing.items()))
    return dg.AssetObservation(asset_key=asset_keys.PAYMENTS_TOPIC, metadata=metadata, description=description)


def _should_observe(cursor: planner.CursorState, lag: planner.Lag, now: float, every_s: float) -> bool:
    last = cursor.lag_observed
    changed = {k: float(v) for k, v in lag.as_metadata().items()} != {k: v for k, v in last.items() if k != "at"}
    return changed or now - last.get("at", 0.0) >= every_s


def evaluate(context: dg.SensorEvaluationContext, kafka: KafkaResource, postgres: PostgresResource,
             settings: IngestionSettingsResource, now: float | None = None) -> dg.SensorResult | dg.SkipReason:
    """One tick (separate from the decorator so tests can call it with a fixed clock)."""
    now = time.time() if now is None else now
    try:
        cursor = planner.CursorState.from_json(context.cursor)
    except planner.PlanError as error:
        # progress lives in Postgres, so a fresh cursor is safe; in-flight runs keep their run keys
        context.log.error(f"{error}; starting from a fresh cursor")
        cursor = planner.CursorState()
    ledger = postgres.client()
    try:
        return _tick(context, kafka, ledger, settings, cursor, now)
    finally:
        ledger.close()


def _tick(context, kafka: KafkaResource, ledger, settings: IngestionSettingsResource,
          cursor: planner.CursorState, now: float) -> dg.SensorResult | dg.SkipReason:
    topic = kafka.topic
    timeout_s = settings.io_timeout_seconds
    # run states before progress: a lease that ended recorded its progress before, so progress read afterwards is
    # never older than the run states
    infos = run_infos(context.instance, cursor.lease_keys(), context.log)
    try:
        with kafka.client(timeout_s) as client:
            end_offsets, topic_id, progress, first_offsets = read_offsets(client, ledger, cursor, timeout_s)
    except OffsetsUnavailable as error:
        if isinstance(error.__cause__, UnknownTopic):  # waiting for the first payments is not a failure
            return dg.SkipReason(f"{NO_PAYMENTS_YET} (topic {topic!r} does not exist yet)")
        return dg.SkipReason(f"ingestion paused, cursor unchanged: {error}")
    except Exception as error:  # noqa: BLE001 - e.g. Postgres refusing the schema: said plainly, tick retried
        return dg.SkipReason(f"ingestion paused, cursor unchanged: {type(error).__name__}: {error}")
    if not end_offsets:
        return dg.SkipReason(f"topic {topic!r} has no partitions yet: {NO_PAYMENTS_YET}")

    rules = settings.planner()
    plan = planner.plan(topic=topic, end_offsets=end_offsets, progress=progress, cursor=cursor,
                        run_infos=infos, now=now, settings=rules, first_offsets=first_offsets, topic_id=topic_id)

    for reset in plan.resets:
        context.log.warning(f"progress reset: {reset.reason}")
        try:
            bounded(lambda r=reset: ledger.reset_progress(r.topic, r.partition, r.to_offset, r.reason),
                    timeout_s, "postgres reset_progress")
        except Exception as error:  # noqa: BLE001 - reported, and the tick is retried with the cursor unchanged
            return dg.SkipReason(f"progress reset of {topic}[{reset.partition}] needed ({reset.reason}) but it "
                                 f"could not be recorded in Postgres ({type(error).__name__}: {error}); "
                                 f"cursor unchanged")

    events = []
    failing = {p: f for p, f in plan.cursor.failures.items() if f.count >= FAILING_STREAK}
    for partition, streak in failing.items():
        context.log.warning(f"{topic}[{partition}]: {streak.count} leases failed in a row at offset {streak.offset}: "
                            f"{streak.error}")
    if _should_observe(cursor, plan.lag, now, settings.lag_observation_seconds) or failing:
        events.append(lag_observation(plan.lag, topic, failing))
        plan.cursor.lag_observed = {**{k: float(v) for k, v in plan.lag.as_metadata().items()}, "at": now}

    for note in plan.notes:
        context.log.info(note)
    requests = [run_request(r, rules, settings.lease_acquire_seconds) for r in plan.leases]
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=plan.cursor.to_json(), asset_events=events)
    return dg.SensorResult(skip_reason=dg.SkipReason(idle_reason(plan, topic, settings)),
                           cursor=plan.cursor.to_json(), asset_events=events)


def idle_reason(plan: planner.Plan, topic: str, settings: IngestionSettingsResource) -> str:
    """Why no run was requested, in words a person reading the sensor's ticks understands."""
    if plan.lag.lag == 0 and all(note.startswith("no new messages") for note in plan.notes):
        if plan.lag.end_offset_sum == 0:
            return f"no new messages: topic {topic!r} is empty; {NO_PAYMENTS_YET}"
        return (f"no new messages: up to date, all {plan.lag.end_offset_sum} published payments are ingested; "
                f"waiting for new ones on {topic!r}")
    return plan.summary()


@dg.sensor(
    name=SENSOR_NAME,
    job=ingest_lease_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps every Kafka partition with payments waiting leased to an ingestion run (one run ingests one "
                "partition continuously for a lease, the next one requested before it ends), from end offsets and "
                "recorded progress.",
)
def payments_ingestion_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource,
                              postgres: PostgresResource, ingestion_settings: IngestionSettingsResource):
    return evaluate(context, kafka, postgres, ingestion_settings)
