"""The whole loop under the real `dagster-daemon`: payments published while the HBase gateway is down are
ingested by sensor-requested runs (Postgres gets them, HBase's share goes to the backup); once the gateway is
back, empty, the replay sensor starts a run by itself, which creates HBase's tables and lands every payment.
Private HBase gateway and MongoDB, a private topic; the session stack for Kafka, Postgres and Redis."""
from __future__ import annotations

import time
import uuid

import dagster as dg
import pytest

from payment_platform.defs.replay.replay import REPLAY_JOB
from payment_platform.generation.generator import generate
from devstack.stack.dagster_process import DagsterDaemon
from payment_platform.reconciliation.compare import AllPayments
from payment_platform.reconciliation.readers import HBaseReader
from payment_platform.stores import kafka
from payment_platform_tests.waiting import watching, wait_until
from payment_platform.stores.backup import FailedPaymentBackup
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger

pytestmark = [pytest.mark.stack, pytest.mark.slow]

COUNT = 60
WAIT_S = 180  # bounded: daemon start, ingestion runs, a 30 s sensor interval, the replay run


def test_under_the_daemon_a_store_back_is_healed_by_itself(stack, private_hbase, private_mongo, tmp_path,
                                                            monkeypatch):
    private_hbase.kill()  # down before anything: HBase does not even have its tables
    topic = f"heal-{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(stack.endpoints.kafka, topic, partitions=1)
    mongo_uri = f"mongodb://127.0.0.1:{private_mongo.port}"
    fallback = tmp_path / "failed_payments"
    env = {**stack.env(), "PAYMENTS_TOPIC": topic, "HBASE_HOST": "127.0.0.1", "HBASE_PORT": str(private_hbase.port),
           "MONGO_URI": mongo_uri, "FAILED_PAYMENTS_DIR": str(fallback)}
    messages = list(generate(COUNT, seed=21))
    ids = {m.payment_id for m in messages}
    backup = FailedPaymentBackup(mongo_uri, fallback, timeout_ms=1000)
    ledger = PostgresLedger(stack.endpoints.postgres)
    started = time.time()

    with DagsterDaemon(tmp_path / "dagster_home", env, tmp_path / "daemon.log") as daemon:
        with kafka.Publisher(stack.endpoints.kafka, topic) as publisher:
            assert publisher.publish(messages).acknowledged == COUNT
        wait_until(lambda: backup.size("hbase") == COUNT, WAIT_S, f"the backup holding {COUNT} payments for hbase",
                   every_s=2.0, **watching(daemon))
        assert ledger.existing_ids(ids) == ids

        private_hbase.start()  # back, and empty
        hbase = HBaseStore("127.0.0.1", private_hbase.port, timeout_ms=3000)

        def healed():
            try:
                return backup.size() == 0 and sorted(
                    r.payment_id for r in HBaseReader.from_store(hbase).iter_records(AllPayments())) == sorted(ids)
            except Exception:  # noqa: BLE001 - tables not created yet by the replay run
                hbase.reset()
                return False

        wait_until(healed, WAIT_S, "the stores healed", every_s=2.0, **watching(daemon))

    monkeypatch.setenv("DAGSTER_POSTGRES_URL", stack.dagster_postgres_url)
    instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster_home"))
    try:
        records = instance.get_run_records(dg.RunsFilter(job_name=REPLAY_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]))
        ours = [r for r in records if r.create_timestamp.timestamp() >= started
                and r.dagster_run.tags.get("dagster/sensor_name") == "backup_replay_sensor"
                and f"hbase: {COUNT} waiting, healthy" in r.dagster_run.tags.get("payment_platform/replay", "")]
        assert ours, [r.dagster_run.tags for r in records]
    finally:
        instance.dispose()
    assert ledger.existing_ids(ids) == ids  # every payment once in each store: ids are keys in both
