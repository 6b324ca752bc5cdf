"""The store checks while payments flow, under the real `dagster-daemon`: a producer publishes the whole time,
the daemon's ingestion lands what it publishes, and the checks job and the settlement job are launched through the
daemon's run queue. Clean data passes although payments land while the checks read (they compare below the cut of
ingestion progress read as they start); tampering below the cut is named, exactly, by the consistency checks and
`recent_days_consistency`, and blocks the settlement summary.

Private stores (an HBase gateway of this test and a database of the stack's Postgres), so nothing another test
left in the shared ones counts; a private topic; a unique seed (Redis remembers payment ids across tests)."""
from __future__ import annotations

import json
import random
import subprocess
import threading
import time
import uuid

import dagster as dg
import psycopg2
import pytest
import yaml

from payment_platform.defs.asset_keys import DAILY_SETTLEMENT_SUMMARY
from payment_platform.defs.checks.checks import CHECKS_JOB, CROSS_STORE_CONSISTENCY, RECENT_DAYS_CONSISTENCY
from payment_platform.defs.summaries.settlement import SUMMARY_JOB
from payment_platform.generation.generator import generate
from payment_platform.generation.settings import GenerationSettings
from devstack.stack.dagster_process import PROJECT_ROOT, DagsterDaemon, _code_location_args, dagster_tool
from payment_platform.stores import kafka
from payment_platform.stores.hbase import Q_AMOUNT_VALUE, HBaseStore
from payment_platform.stores.postgres import PostgresLedger
from payment_platform_tests.test_healing.conftest import private_hbase  # noqa: F401 - a fixture, used by name
from payment_platform_tests.waiting import watching, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1500)]  # a hang guard, not a timing

RATE = 20  # payments per second the producer publishes, the whole test long
RUN_WAIT_S = 600  # runs of store checks queue one at a time (the schedule may add its own): bounded, not a timing
# every id segment in each run (a full pass every 0.25 h): the tampered rows are older than the last proven cut
EVERY_SEGMENT = {"resources": {"checks_settings": {"config": {"full_pass_hours": 0.25, "settle_seconds": 0.5}}}}


class Producer(threading.Thread):
    """Publishes generated payments at about RATE per second until stopped."""

    def __init__(self, bootstrap: str, topic: str, seed: int):
        super().__init__(daemon=True, name="flow-producer")
        self.bootstrap, self.topic, self.seed = bootstrap, topic, seed
        self.stop_event, self.published, self.error = threading.Event(), 0, None

    def run(self) -> None:
        try:
            messages = generate(10 ** 6, self.seed, GenerationSettings(bad_fraction=0.0))
            with kafka.Publisher(self.bootstrap, self.topic) as publisher:
                while not self.stop_event.is_set():
                    started = time.monotonic()
                    for _ in range(RATE // 10):
                        publisher.send(next(messages))
                    self.published += publisher.flush().acknowledged
                    time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
        except Exception as error:  # noqa: BLE001 - reported by the test
            self.error = error


@pytest.fixture
def private_database(stack):
    name = f"flow_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(stack.endpoints.postgres)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    yield psycopg2.extensions.make_dsn(stack.endpoints.postgres, dbname=name)


def patient_dagster_yaml(tmp_path):
    """The project's dagster.yaml, with run monitoring giving a run worker 5 minutes to start instead of 45 s: on a
    2-core machine shared with other suites a worker (a Python start and Dagster's import) can take longer, and run
    monitoring would then fail the run before it begins: no verdict on the checks."""
    settings = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    settings["run_monitoring"]["start_timeout_seconds"] = 300
    path = tmp_path / "dagster.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def launch(daemon: DagsterDaemon, runs: list[tuple[str, dict]]) -> list[str]:
    """Queue runs (job, run config) through the daemon's run coordinator, the launch commands side by side (each
    loads the code location); returns their run ids in order."""
    ids = [str(uuid.uuid4()) for _ in runs]
    commands = [subprocess.Popen([dagster_tool("dagster"), "job", "launch", "-j", job, *_code_location_args(),
                                  "--run-id", run_id, "--config-json", json.dumps(config)],
                                 cwd=PROJECT_ROOT, env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True) for run_id, (job, config) in zip(ids, runs)]
    for command in commands:
        output, _ = command.communicate(timeout=180)
        assert command.returncode == 0, output
    return ids


def run_through_daemon(instance: dg.DagsterInstance, daemon: DagsterDaemon, runs: list[tuple[str, dict]],
                       attempts: int = 3) -> list[str]:
    """Launch the runs and wait until each has finished; a run that gave no verdict of the store checks (its worker
    could not be launched, or was interrupted: gRPC deadlines and run monitoring on a loaded machine) is launched
    again, up to `attempts` times. Returns the run ids of the runs that gave their verdicts."""
    ran: dict[int, str] = {}
    for _ in range(attempts):
        todo = [i for i in range(len(runs)) if i not in ran]
        ids = launch(daemon, [runs[i] for i in todo])

        def all_done(ids=ids):
            found = [instance.get_run_by_id(run_id) for run_id in ids]
            return all(r is not None and r.is_finished for r in found) and found

        wait_until(all_done, RUN_WAIT_S, f"runs {ids} finishing", every_s=1.0, **watching(daemon))
        for i, run_id in zip(todo, ids):
            if ("hbase/payments", CROSS_STORE_CONSISTENCY) in evaluations(instance, run_id):
                ran[i] = run_id
        if len(ran) == len(runs):
            return [ran[i] for i in range(len(runs))]
    raise AssertionError(f"runs gave no verdict in {attempts} attempts: {daemon.log_tail(30)}")


def evaluations(instance: dg.DagsterInstance, run_id: str) -> dict[tuple[str, str], object]:
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    found = {}
    for event in events:
        evaluation = event.dagster_event.event_specific_data
        found[("/".join(evaluation.asset_key.path), evaluation.check_name)] = evaluation
    return found


def materialized(instance: dg.DagsterInstance, run_id: str, key: dg.AssetKey) -> bool:
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return any(e.dagster_event.asset_key == key for e in events)


def sample(evaluation) -> set[str]:
    return set(evaluation.metadata["mismatch_sample"].value)


def below_cut_ids(dsn: str, topic: str, progress: dict[int, int], count: int) -> list[tuple[str, str]]:
    """(payment id, HBase row key) of the newest payments (by created_at) stored from positions below `progress`."""
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT payment_id::text, hbase_row_key, kafka_partition, kafka_offset FROM payments "
                           "WHERE kafka_topic = %s ORDER BY created_at DESC LIMIT 2000", (topic,))
            rows = [(pid, key) for pid, key, p, o in cursor.fetchall() if o < progress.get(p, 0) - 50]
    finally:
        connection.close()
    return rows[:count]


def tamper(dsn: str, hbase: HBaseStore, victims: list[tuple[str, str]]) -> None:
    """An amount altered in HBase, a row deleted from HBase, an amount altered and a row deleted in Postgres."""
    (altered_h, key_h), (deleted_h, key_d), (altered_p, _), (deleted_p, _) = victims
    table = hbase.table("payments")
    table.put(key_h.encode(), {Q_AMOUNT_VALUE: b"99999.99"})
    table.delete(key_d.encode())
    connection = psycopg2.connect(dsn)
    with connection, connection.cursor() as cursor:
        cursor.execute("UPDATE payments SET amount = amount + 1 WHERE payment_id = %s::uuid", (altered_p,))
        cursor.execute("DELETE FROM payments WHERE payment_id = %s::uuid", (deleted_p,))
    connection.close()


def test_checks_hold_while_payments_flow_and_name_tampering_below_the_cut(stack, private_hbase,  # noqa: F811
                                                                          private_database, tmp_path, monkeypatch):
    topic = f"flow-{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(stack.endpoints.kafka, topic, partitions=2)
    env = {**stack.env(), "PAYMENTS_TOPIC": topic, "HBASE_HOST": "127.0.0.1", "HBASE_PORT": str(private_hbase.port),
           "POSTGRES_DSN": private_database}
    ledger = PostgresLedger(private_database)
    hbase = HBaseStore("127.0.0.1", private_hbase.port, timeout_ms=5000)
    producer = Producer(stack.endpoints.kafka, topic, random.randrange(1 << 30))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", stack.dagster_postgres_url)

    with DagsterDaemon(tmp_path / "dagster_home", env, tmp_path / "daemon.log",
                       dagster_yaml=patient_dagster_yaml(tmp_path)) as daemon:
        instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster_home"))
        producer.start()
        try:
            def landed(at_least: int):
                try:
                    progress = ledger.read_progress(topic)
                except Exception:  # noqa: BLE001 - tables not created yet by the first run
                    return None
                return progress if sum(progress.values()) >= at_least else None

            wait_until(lambda: landed(200), RUN_WAIT_S, "200 payments landing", every_s=1.0, **watching(daemon))

            # clean data, payments landing all along: every check of the stores passes, the summary is built
            clean, summary = run_through_daemon(instance, daemon, [(CHECKS_JOB, {}), (SUMMARY_JOB, {})])
            results = evaluations(instance, clean)
            for key in (("hbase/payments", CROSS_STORE_CONSISTENCY), ("postgres/payments", CROSS_STORE_CONSISTENCY),
                        ("postgres/payments", RECENT_DAYS_CONSISTENCY)):
                assert results[key].passed, (key, results[key].metadata)
            cut = results[("hbase/payments", CROSS_STORE_CONSISTENCY)].metadata["cut_offsets"].value
            assert cut and all(k.startswith(f"{topic}[") for k in cut)
            after = ledger.read_progress(topic)
            assert sum(after.values()) > sum(cut.values())  # ingestion kept landing past the cut meanwhile
            assert materialized(instance, summary, DAILY_SETTLEMENT_SUMMARY), evaluations(instance, summary)

            # tampered below the cut, still flowing: exactly those ids, and
            # the summary is not built
            victims = below_cut_ids(private_database, topic, ledger.read_progress(topic), 4)
            assert len(victims) == 4
            tamper(private_database, hbase, victims)
            tampered = {pid for pid, _ in victims}
            red, blocked = run_through_daemon(instance, daemon, [(CHECKS_JOB, EVERY_SEGMENT),
                                                                 (SUMMARY_JOB, EVERY_SEGMENT)])
            results = evaluations(instance, red)
            for key in (("hbase/payments", CROSS_STORE_CONSISTENCY), ("postgres/payments", RECENT_DAYS_CONSISTENCY)):
                assert not results[key].passed
                assert sample(results[key]) == tampered, (key, results[key].metadata)
                assert results[key].metadata["mismatch_count"].value == 4
            assert results[("hbase/payments", CROSS_STORE_CONSISTENCY)].metadata["guarantee_hours"].value == 0.5
            assert not materialized(instance, blocked, DAILY_SETTLEMENT_SUMMARY)
            assert sample(evaluations(instance, blocked)[("postgres/payments", CROSS_STORE_CONSISTENCY)]) == tampered
        finally:
            producer.stop_event.set()
            producer.join(timeout=10)
            instance.dispose()
    assert producer.error is None and producer.published > 0
