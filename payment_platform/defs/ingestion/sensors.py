"""The ingestion sensor: reads offsets only, plans micro-batch ranges, requests one run per range.

Each tick: read the topic's end offsets (Kafka) and the recorded progress (Postgres), both bounded in
time; look up the runs of the ranges in flight; let the pure planner decide; record progress resets
(offsets that went backwards) BEFORE moving the cursor; request runs with stable run keys; observe the
topic's lag on the topic asset. If Kafka or Postgres cannot be read, the tick skips with the reason and
the cursor does not move.
"""

import time
from typing import Callable, TypeVar

import dagster as dg
from dagster._core.storage.tags import WILL_RETRY_TAG

from payment_platform.defs import asset_keys
from payment_platform.defs.ingestion.assets import NO_PAYMENTS_YET
from payment_platform.defs.ingestion.runs import INGEST_JOB_NAME, PARTITION_TAG, RANGE_TAG, range_run_config
from payment_platform.defs.ingestion_settings import IngestionSettingsResource
from payment_platform.defs.resources import KafkaResource, PostgresResource
from payment_platform.defs.run_workers import fail_dead_runs
from payment_platform.ingestion import planner
from payment_platform.lib.bounded import bounded
from payment_platform.stores.kafka import KafkaClient, UnknownTopic

SENSOR_NAME = "payments_ingestion_sensor"
SENSOR_INTERVAL_SECONDS = 3  # a tick costs milliseconds; it sits in every payment's latency

_FINISHED_BAD = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
_FINISHED = _FINISHED_BAD | {dg.DagsterRunStatus.SUCCESS}

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
    end_offsets = _read(where, f"end offsets of {topic!r}", kafka.end_offsets, margin_s)
    topic_id = _read(where, f"the id of topic {topic!r}", kafka.topic_id, margin_s)
    if cursor.topic is None:  # first tick (of a deployment or after a bad cursor): tables exist from now on
        bounded(ledger.ensure_schema, timeout_s, "postgres ensure_schema")
    progress = _read("Postgres", f"ingestion progress of {topic!r}", lambda: ledger.read_progress(topic), timeout_s)
    first_offsets = {}
    missing = [p for p in end_offsets if p not in progress]
    if missing or planner.backwards_partitions(cursor, topic, end_offsets, progress, topic_id):
        first_offsets = _read(where, f"beginning offsets of {topic!r}", kafka.beginning_offsets, margin_s)
    return end_offsets, topic_id, progress, first_offsets


def run_state_of(records: list[dg.RunRecord], retries_enabled: bool, now: float,
                 retry_grace_s: float) -> planner.RunState:
    """What the runs of one range attempt (the first run and its Dagster run retries) add up to."""
    runs = [r.dagster_run for r in records]
    if not runs:
        return planner.RunState.MISSING
    if any(r.status == dg.DagsterRunStatus.SUCCESS for r in runs):
        return planner.RunState.SUCCEEDED
    if any(r.status not in _FINISHED for r in runs):
        return planner.RunState.ACTIVE
    # every run failed or was canceled: a Dagster run retry may still come for the newest one
    newest = max(records, key=lambda r: int(r.dagster_run.tags.get("dagster/retry_number", "0")))
    will_retry = newest.dagster_run.tags.get(WILL_RETRY_TAG, "true" if retries_enabled else "false") == "true"
    ended = newest.end_time or now
    if newest.dagster_run.status == dg.DagsterRunStatus.FAILURE and will_retry and now - ended < retry_grace_s:
        return planner.RunState.ACTIVE
    return planner.RunState.FAILED


def run_states(instance: dg.DagsterInstance, in_flight: list[planner.PlannedRange], now: float,
               retry_grace_s: float, log=None) -> dict[str, planner.RunState]:
    states = {}
    for flight in in_flight:
        runs = dg.RunsFilter(tags={RANGE_TAG: flight.run_key})
        records = list(instance.get_run_records(filters=runs))
        if fail_dead_runs(instance, records, log):  # a killed worker's run fails now, not at max_runtime
            records = list(instance.get_run_records(filters=runs))
        states[flight.run_key] = run_state_of(records, instance.run_retries_enabled, now, retry_grace_s)
    return states


def run_request(planned: planner.PlannedRange) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=planned.run_key,
        run_config=range_run_config(planned.topic, planned.partition, planned.start, planned.end),
        tags={RANGE_TAG: planned.run_key, PARTITION_TAG: str(planned.partition),
              "payment_platform/messages": str(planned.messages)},
    )


def lag_observation(lag: planner.Lag, topic: str) -> dg.AssetObservation:
    return dg.AssetObservation(asset_key=asset_keys.PAYMENTS_TOPIC,
                               metadata={**lag.as_metadata(), "topic": topic},
                               description="messages published but not yet ingested")


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
    # run states before progress: a run that succeeded has recorded its progress before, so progress read
    # afterwards is never older than the run states (no range is planned twice from a stale read)
    states = run_states(context.instance, cursor.in_flight_ranges(), now, settings.missing_run_seconds, context.log)
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

    plan = planner.plan(topic=topic, end_offsets=end_offsets, progress=progress, cursor=cursor,
                        run_states=states, now=now,
                        settings=settings.planner(), first_offsets=first_offsets, topic_id=topic_id)

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
    if _should_observe(cursor, plan.lag, now, settings.lag_observation_seconds):
        events.append(lag_observation(plan.lag, topic))
        plan.cursor.lag_observed = {**{k: float(v) for k, v in plan.lag.as_metadata().items()}, "at": now}

    for note in plan.notes:
        context.log.info(note)
    requests = [run_request(r) for r in plan.ranges]
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
    if plan.notes:
        return plan.summary()
    in_flight = plan.cursor.in_flight_ranges()
    if in_flight:
        return (f"{plan.lag.lag} payments not ingested yet; {len(in_flight)} range(s) in flight "
                f"({', '.join(r.run_key for r in in_flight[:3])}): the next range of a partition starts after its "
                f"run")
    rules = settings.planner()
    return (f"{plan.lag.lag} payments waiting; a range starts once {rules.min_batch_size} wait in a partition "
            f"or the oldest has waited {rules.max_wait_seconds:g} s")


@dg.sensor(
    name=SENSOR_NAME,
    job_name=INGEST_JOB_NAME,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Plans Kafka offset ranges from end offsets and recorded progress; one run per range.",
)
def payments_ingestion_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource,
                              postgres: PostgresResource, ingestion_settings: IngestionSettingsResource):
    return evaluate(context, kafka, postgres, ingestion_settings)
