"""The ingestion sensor against the real embedded stack: each cursor transition, Kafka or Postgres down,
offsets going backwards (a private Tansu broker restarted), failed leases followed by new ones."""
from __future__ import annotations

import json
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from payment_platform.defs.ingestion.runs import LEASE_JOB_NAME, PARTITION_TAG, RANGE_TAG
from payment_platform.defs.ingestion.sensors import evaluate, payments_ingestion_sensor, run_info_of
from payment_platform.defs.ingestion_settings import IngestionSettingsResource
from payment_platform.defs.resources import KafkaResource, PostgresResource
from payment_platform.ingestion.planner import CursorState, RunState
from payment_platform.config import Endpoints
from payment_platform.monitoring import health
from payment_platform.stores import kafka as kafka_store
from payment_platform_tests.waiting import wait_until

pytestmark = pytest.mark.stack

SETTINGS = IngestionSettingsResource(min_batch_size=10, max_batch_size=25, max_wait_seconds=0.5,
                                     max_concurrent_ranges=2, io_timeout_seconds=2.0, lease_seconds=60,
                                     handover_seconds=10)


@dataclass
class Message:
    key: bytes | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)


def publish(bootstrap: str, topic: str, per_partition: dict[int, int]) -> None:
    """Publish n small messages to each partition (payloads do not matter to the sensor)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=5000)
    try:
        for partition, n in per_partition.items():
            for i in range(n):
                producer.send(topic, value=f"m{i}".encode(), partition=partition)
        producer.flush(timeout=10)
    finally:
        producer.close(timeout=5)


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def topic(stack):
    name = f"sensor-{uuid.uuid4().hex[:8]}"
    kafka_store.ensure_topic(stack.endpoints.kafka, name, partitions=3)
    return name


def sensor_resources(bootstrap: str, stack, topic: str) -> dict:
    return {"kafka": KafkaResource(bootstrap_servers=bootstrap, topic=topic),
            "postgres": PostgresResource(dsn=stack.endpoints.postgres),
            "ingestion_settings": SETTINGS}


@pytest.fixture
def resources(stack, topic):
    return sensor_resources(stack.endpoints.kafka, stack, topic)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def tick(instance, resources, cursor=None, now=1000.0):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    return evaluate(context, resources["kafka"], resources["postgres"], resources["ingestion_settings"], now=now)


def ledger(resources):
    return resources["postgres"].client()


def test_no_topic_yet_is_waiting_not_failing_and_says_how_to_publish(instance, stack):
    resources = sensor_resources(stack.endpoints.kafka, stack, f"absent-{uuid.uuid4().hex[:8]}")
    result = tick(instance, resources)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message.startswith("no payments published yet: materialize generation/payment_batch or run "
                                          "`payment-platform produce --tps 50`"), result.skip_message
    assert "paused" not in result.skip_message


def test_empty_topic_skips_says_why_and_observes_zero_lag(instance, resources, topic):
    result = tick(instance, resources)
    assert isinstance(result, dg.SensorResult) and not result.run_requests
    assert "no new messages" in result.skip_reason.skip_message
    assert "is empty; no payments published yet" in result.skip_reason.skip_message
    cursor = json.loads(result.cursor)
    assert cursor["topic"] == topic and cursor["end_offsets"] == {"0": 0, "1": 0, "2": 0}
    [observation] = result.asset_events
    assert observation.asset_key == dg.AssetKey(["kafka", "payment_transactions"])
    assert observation.metadata["lag"].value == 0 and observation.metadata["end_offset_sum"].value == 0


def test_leases_per_partition_with_work_with_their_run_config_and_a_successor_before_the_end(
        instance, resources, topic, stack):
    publish(stack.endpoints.kafka, topic, {0: 12, 1: 30, 2: 3})
    result = tick(instance, resources)
    requests = {int(r.tags[PARTITION_TAG]): r for r in result.run_requests}
    # concurrency 2: the two biggest backlogs are leased; partition 2 waits for a slot
    assert set(requests) == {0, 1}
    one = requests[1]
    assert one.run_key == f"ingest:{topic}:1:lease:1000000"
    assert one.run_config == {"ops": {"ingest_partition_lease": {"config": {
        "topic": topic, "partition": 1, "start_offset": 0}}}}
    assert one.tags[RANGE_TAG] == one.run_key and int(one.tags["dagster/max_runtime"]) > 60
    cursor = CursorState.from_json(result.cursor)
    assert set(cursor.leases) == {0, 1}
    assert result.asset_events[0].metadata["lag"].value == 45

    # the same tick again: nothing new while both leases are requested (and not yet started)
    again = tick(instance, resources, cursor=result.cursor, now=1010.0)
    assert not again.run_requests
    # partition 0's lease ran and ended: its slot goes to partition 2
    _finished_run(instance, requests[0].run_key, success=True)
    ledger(resources).record_progress(topic, 0, 0, 12)
    later = tick(instance, resources, cursor=again.cursor, now=1011.0)
    assert [(int(r.tags[PARTITION_TAG]), r.tags["payment_platform/successor"]) for r in later.run_requests] == [
        (2, "false")]
    # partition 1's lease started at 1001: its successor is requested 10 s before its 60 s end
    _started_run(instance, requests[1].run_key)
    _finished_run(instance, later.run_requests[0].run_key, success=True)  # partition 2's lease landed its 3
    ledger(resources).record_progress(topic, 2, 0, 3)
    started = instance.get_run_records(dg.RunsFilter(tags={RANGE_TAG: requests[1].run_key}))[0].start_time
    near_end = tick(instance, resources, cursor=later.cursor, now=started + 51)
    assert [(int(r.tags[PARTITION_TAG]), r.tags["payment_platform/successor"]) for r in near_end.run_requests] == [
        (1, "true")]


def test_lag_is_observed_on_change_and_periodically_only(instance, resources, topic, stack):
    first = tick(instance, resources)
    same = tick(instance, resources, cursor=first.cursor, now=1005.0)
    assert same.asset_events == []
    later = tick(instance, resources, cursor=same.cursor, now=1000.0 + SETTINGS.lag_observation_seconds)
    assert len(later.asset_events) == 1
    publish(stack.endpoints.kafka, topic, {0: 2})
    changed = tick(instance, resources, cursor=later.cursor, now=1031.0)
    assert changed.asset_events[0].metadata["lag"].value == 2


def _stand_in_run(instance, run_key: str):
    return instance.create_run_for_job(dg.GraphDefinition(name="stand_in", node_defs=[]).to_job(),
                                       tags={RANGE_TAG: run_key})


def _started_run(instance, run_key: str) -> None:
    run = _stand_in_run(instance, run_key)
    instance.handle_new_event(dg.EventLogEntry(
        error_info=None, level="DEBUG", user_message="", run_id=run.run_id, timestamp=time.time(),
        dagster_event=dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name="stand_in")))


def _finished_run(instance, run_key: str, success: bool, message: str = "boom") -> None:
    run = _stand_in_run(instance, run_key)
    if success:
        instance.handle_new_event(dg.EventLogEntry(
            error_info=None, level="DEBUG", user_message="", run_id=run.run_id, timestamp=time.time(),
            dagster_event=dg.DagsterEvent(dg.DagsterEventType.RUN_SUCCESS.value, job_name="stand_in")))
    else:
        instance.report_run_failed(run, message)


def test_a_failed_lease_is_followed_by_a_new_one_from_the_recorded_progress_and_the_streak_is_shown(
        instance, resources, topic, stack):
    publish(stack.endpoints.kafka, topic, {0: 10})
    first = tick(instance, resources)
    [request] = first.run_requests
    _finished_run(instance, request.run_key, success=False, message="backup unreachable")
    again = tick(instance, resources, cursor=first.cursor, now=1001.0)
    [retry] = again.run_requests
    assert retry.run_key != request.run_key and retry.run_config == request.run_config
    _finished_run(instance, retry.run_key, success=False, message="backup unreachable")
    paused = tick(instance, resources, cursor=again.cursor, now=1002.0)
    assert not paused.run_requests and "next lease in 5s" in paused.skip_reason.skip_message
    [observation] = paused.asset_events
    assert observation.metadata["failing_partitions"].value == 1
    assert "ingestion FAILING on partition 0 at offset 0 (2 leases in a row" in observation.description
    assert "backup unreachable" in observation.description


def test_run_info_of_a_lease(instance):
    assert run_info_of(instance, None).state == RunState.MISSING
    run = _stand_in_run(instance, "k")
    record = lambda: instance.get_run_records(filters=dg.RunsFilter(tags={RANGE_TAG: "k"}))[0]  # noqa: E731
    assert run_info_of(instance, record()).state == RunState.ACTIVE  # not started yet
    instance.report_run_failed(run, "the lease failed: IngestionError: nope")
    failed = run_info_of(instance, record())
    assert failed.state == RunState.FAILED and "nope" in failed.error


def test_a_canceled_run_counts_as_failed(instance):
    # run monitoring cancels a run past dagster/max_runtime (e.g. its worker was frozen)
    run = _stand_in_run(instance, "c")
    instance.report_run_canceled(run)
    record = instance.get_run_records(filters=dg.RunsFilter(tags={RANGE_TAG: "c"}))[0]
    assert run_info_of(instance, record).state == RunState.FAILED


@pytest.mark.timeout(45)  # a hang guard, not a timing: each read is bounded to 2 s here
def test_kafka_down_skips_with_the_reason_and_keeps_the_cursor(instance, resources, stack):
    dead = dict(resources, kafka=KafkaResource(bootstrap_servers=f"127.0.0.1:{dead_port()}", topic="t"))
    context = dg.build_sensor_context(instance=instance, cursor="kept", resources=dead)
    result = payments_ingestion_sensor(context)
    assert isinstance(result, dg.SkipReason)
    assert "Kafka at 127.0.0.1" in result.skip_message and "cursor unchanged" in result.skip_message
    assert context.cursor == "kept"


@pytest.mark.timeout(45)  # a hang guard, not a timing: each read is bounded to 2 s here
def test_a_broker_that_accepts_but_never_answers_cannot_hang_the_tick(instance, resources):
    with socket.socket() as silent:  # the kernel completes TCP handshakes; nobody ever reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        hung = dict(resources, kafka=KafkaResource(bootstrap_servers=f"127.0.0.1:{silent.getsockname()[1]}",
                                                   topic="t"))
        result = tick(instance, hung)
    assert isinstance(result, dg.SkipReason) and "Kafka at 127.0.0.1" in result.skip_message


@pytest.mark.timeout(45)  # a hang guard, not a timing: each read is bounded to 2 s here
def test_postgres_down_skips_with_the_reason(instance, resources, topic):
    dead = dict(resources, postgres=PostgresResource(dsn=f"postgresql://postgres@127.0.0.1:{dead_port()}/x"))
    result = tick(instance, dead)
    assert isinstance(result, dg.SkipReason)
    assert "PostgreSQL" in result.skip_message or "Postgres" in result.skip_message


def test_bad_cursor_starts_fresh_and_logs_it(instance, resources, topic, stack):
    publish(stack.endpoints.kafka, topic, {0: 10})
    result = tick(instance, resources, cursor="{garbage")
    assert [r.run_key for r in result.run_requests] == [f"ingest:{topic}:0:lease:1000000"]


# ---- offsets going backwards: a private Tansu broker (memory storage) restarted under the sensor ----

class PrivateBroker:
    """A Tansu broker of this test's own (memory storage), on a fixed port so a restart keeps the address."""

    def __init__(self, folder: Path):
        from devstack.stack import services

        self.folder, self.port, self.proc = folder, dead_port(), None
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._services = services

    def start(self) -> str:
        from devstack.stack import processes

        launch = self._services.kafka_launch(self.folder, self.port)
        self.proc = processes.spawn(launch.command, self.folder / "tansu.log", die_with_parent=True)
        log = self.folder / "tansu.log"
        wait_until(lambda: health.probe("kafka", Endpoints(kafka=self.bootstrap)), 15, "the private Tansu answering",
                   retry_on=(Exception,), detail=lambda: log.read_text()[-500:])
        return self.bootstrap

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture
def private_broker(tmp_path):
    broker = PrivateBroker(Path(tmp_path))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_offsets_going_backwards_are_reset_reported_and_new_data_ingested(instance, stack, private_broker):
    topic = f"backwards-{uuid.uuid4().hex[:8]}"
    kafka_store.ensure_topic(private_broker.bootstrap, topic, partitions=1)
    resources = sensor_resources(private_broker.bootstrap, stack, topic)
    publish(private_broker.bootstrap, topic, {0: 20})
    first = tick(instance, resources)
    [request] = first.run_requests
    assert request.run_key == f"ingest:{topic}:0:lease:1000000"
    ledger(resources).record_progress(topic, 0, 0, 20)  # the lease landed them and ended
    _finished_run(instance, request.run_key, success=True)
    settled = tick(instance, resources, cursor=first.cursor, now=1001.0)
    assert not settled.run_requests and "no new messages" in settled.skip_reason.skip_message

    private_broker.stop()  # memory storage: the topic and its offsets are gone
    down = tick(instance, resources, cursor=settled.cursor, now=1002.0)
    assert isinstance(down, dg.SkipReason) and "Kafka" in down.skip_message

    private_broker.start()
    kafka_store.ensure_topic(private_broker.bootstrap, topic, partitions=1)
    publish(private_broker.bootstrap, topic, {0: 12})
    reset = tick(instance, resources, cursor=settled.cursor, now=1003.0)
    assert "went backwards" in reset.skip_reason.skip_message
    assert CursorState.from_json(reset.cursor).resets == 1
    assert ledger(resources).read_progress(topic) == {0: 0}
    [recorded] = ledger(resources).resets(topic)
    assert recorded["previous_offset"] == 20 and recorded["next_offset"] == 0
    assert "went backwards" in recorded["reason"]

    after = tick(instance, resources, cursor=reset.cursor, now=1004.0)
    assert [r.run_key for r in after.run_requests] == [f"ingest:{topic}:0:lease:1004000:reset1"]
    assert after.run_requests[0].run_config["ops"]["ingest_partition_lease"]["config"]["start_offset"] == 0


def test_sensor_is_registered_against_the_lease_job():
    assert payments_ingestion_sensor.job_name == LEASE_JOB_NAME
    assert payments_ingestion_sensor.minimum_interval_seconds <= 10


def test_broker_restarted_and_refilled_past_the_old_end_is_caught_by_the_topic_id(instance, stack, private_broker):
    topic = f"refilled-{uuid.uuid4().hex[:8]}"
    kafka_store.ensure_topic(private_broker.bootstrap, topic, partitions=1)
    resources = sensor_resources(private_broker.bootstrap, stack, topic)
    publish(private_broker.bootstrap, topic, {0: 20})
    first = tick(instance, resources)
    ledger(resources).record_progress(topic, 0, 0, 20)
    _finished_run(instance, first.run_requests[0].run_key, success=True)
    assert CursorState.from_json(first.cursor).topic_id

    private_broker.stop()
    private_broker.start()
    kafka_store.ensure_topic(private_broker.bootstrap, topic, partitions=1)
    publish(private_broker.bootstrap, topic, {0: 30})  # offsets alone look like 10 new messages
    reset = tick(instance, resources, cursor=first.cursor, now=1001.0)
    assert "topic id changed" in reset.skip_reason.skip_message
    assert ledger(resources).read_progress(topic) == {0: 0}
    after = tick(instance, resources, cursor=reset.cursor, now=1002.0)
    assert [r.run_key for r in after.run_requests] == [f"ingest:{topic}:0:lease:1002000:reset1"]


def test_tables_gone_under_a_running_sensor_are_created_again_not_a_pause_forever(instance, stack, topic):
    # a database restored or recreated while the sensor runs (its cursor already knows the topic)
    schema = f"gone_{uuid.uuid4().hex[:8]}"
    resources = dict(sensor_resources(stack.endpoints.kafka, stack, topic),
                     postgres=PostgresResource(dsn=stack.endpoints.postgres, schema_name=schema))
    publish(stack.endpoints.kafka, topic, {0: 3})
    first = tick(instance, resources)
    assert first.run_requests
    ledger = resources["postgres"].client()
    with ledger.connection().cursor() as cur:
        cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
    ledger.connection().commit()
    again = tick(instance, resources, cursor=first.cursor, now=1001.0)
    assert isinstance(again, dg.SensorResult), again
    assert "paused" not in (again.skip_reason.skip_message if again.skip_reason else "")
    assert ledger.read_progress(topic) == {}
    ledger.close()
