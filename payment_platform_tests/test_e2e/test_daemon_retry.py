"""Under the real `dagster-daemon`: a batch that cannot be settled (HBase down AND the backup unreachable) is
tried again by its lease with fewer messages, then fails the lease; progress does not move, the sensor starts
another lease from the same offset; once the stores are back the same offsets land, and every payment is in
both stores: the failed batch was never skipped."""
from __future__ import annotations

import socket
import uuid

import dagster as dg
import pytest

from payment_platform.defs.ingestion.runs import LEASE_JOB_NAME, RANGE_TAG
from devstack.demo.accounting import account
from payment_platform.generation.generator import generate
from devstack.stack.dagster_process import DagsterDaemon
from payment_platform.stores import kafka
from payment_platform.stores.backup import FailedPaymentBackup, default_fallback_dir
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger
from payment_platform_tests.waiting import watching, wait_until

pytestmark = [pytest.mark.stack, pytest.mark.slow]

COUNT = 40


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def range_runs(instance, topic):
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=LEASE_JOB_NAME))
    return [r for r in runs if r.tags.get(RANGE_TAG, "").startswith(f"ingest:{topic}:")]


def test_a_failed_range_is_retried_and_lands_once_the_stores_are_back(stack, tmp_path, monkeypatch):
    topic = f"retry-{uuid.uuid4().hex[:8]}"
    ep = stack.endpoints
    kafka.ensure_topic(ep.kafka, topic, partitions=1)
    good_env = {**stack.env(), "PAYMENTS_TOPIC": topic}
    broken_env = {**good_env, "HBASE_PORT": str(dead_port()), "MONGO_URI": f"mongodb://127.0.0.1:{dead_port()}/",
                  "FAILED_PAYMENTS_DIR": "/proc/no-such-dir/failed_payments"}
    messages = list(generate(COUNT, seed=uuid.uuid4().int % 2**31))
    ledger = PostgresLedger(ep.postgres)
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", stack.dagster_postgres_url)
    home = tmp_path / "dagster_home"

    with DagsterDaemon(home, broken_env, tmp_path / "daemon-broken.log") as daemon:
        with kafka.Publisher(ep.kafka, topic) as publisher:
            assert publisher.publish(messages).acknowledged == COUNT
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            # the first lease fails (after its batch was tried again, smaller) and the sensor starts another one;
            # stop only when no lease is in flight (a run killed with the daemon would be judged dead later)
            def leases_failed():
                runs = range_runs(instance, topic)
                failed = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
                return len(failed) >= 2 and all(r.is_finished for r in runs) and failed

            failed = wait_until(leases_failed, 240, "a second failed lease, none in flight", every_s=2.0,
                                **watching(daemon))
            assert all(r.tags[RANGE_TAG].startswith(f"ingest:{topic}:0:lease:") for r in failed)
            assert ledger.read_progress(topic).get(0, 0) == 0  # nothing settled, nothing recorded
        finally:
            instance.dispose()

    # the stores are back (the daemon's environment is the real stack again): the same range lands
    hbase = HBaseStore(ep.hbase_host, ep.hbase_port)
    backup = FailedPaymentBackup(ep.mongo, default_fallback_dir(good_env))
    with DagsterDaemon(home, good_env, tmp_path / "daemon-good.log") as daemon:
        def landed():
            try:
                result = account(messages, COUNT, hbase, ledger, backup)
            except Exception:  # noqa: BLE001
                return None
            return result if result.unaccounted == 0 and result.hbase == result.postgres else None

        accounting = wait_until(landed, 240, "the failed range landing", every_s=2.0, **watching(daemon))
        wait_until(lambda: ledger.read_progress(topic) == {0: COUNT}, 30, f"progress {{0: {COUNT}}} recorded",
                   every_s=1.0, **watching(daemon))
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            # the lease ends a few seconds after the partition went quiet
            wait_until(lambda: [r for r in range_runs(instance, topic) if r.status == dg.DagsterRunStatus.SUCCESS],
                       60, "a lease run succeeding", every_s=1.0, **watching(daemon))
            runs = range_runs(instance, topic)
        finally:
            instance.dispose()
    succeeded = [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]
    assert len(succeeded) == 1  # one lease landed the offsets the failed ones could not
    assert succeeded[0].run_config["ops"]["ingest_partition_lease"]["config"]["partition"] == 0
    assert accounting.hbase == accounting.postgres == len({m.payment_id for m in messages if m.defect is None})
    for store in (hbase, ledger, backup):
        store.close()
