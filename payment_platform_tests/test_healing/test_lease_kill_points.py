"""A lease run's process killed (SIGKILL) at each instant of a micro-batch's life: read but nothing written, HBase
written, Postgres written, Redis marked, progress committed but nothing reported. Whatever the instant, the lease is
free at once (its Postgres session ends with the process), progress is either before the batch or after it, never
half-way, and the next lease lands every payment exactly once in both stores."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import pytest

from payment_platform.generation.generator import generate
from payment_platform.ingestion.lease import LeaseRunner, LeaseSettings
from payment_platform.ingestion.loader import Ingestor
from payment_platform.stores import kafka
from payment_platform.stores.backup import FailedPaymentBackup
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PartitionLease, PostgresLedger
from payment_platform.stores.redis_state import RedisState

pytestmark = pytest.mark.stack

COUNT = 60
SETTINGS = dict(lease_seconds=30, acquire_seconds=10, idle_seconds=1.5, min_batch_size=COUNT, max_batch_size=COUNT,
                max_wait_seconds=1.0, chunk_size=25)

# Each point: (the class and method to wrap, kill before or after the call). The second chunk's writes are
# the "mid-write" instants: the first chunk is in the stores, the second not yet.
KILL_POINTS = {
    "read, nothing written": ("payment_platform.stores.hbase:HBaseStore", "write_payments", "before", 1),
    "HBase written, Postgres not": ("payment_platform.stores.postgres:PostgresLedger", "write_payments", "before", 1),
    "mid-write (first chunk in both stores)": ("payment_platform.stores.hbase:HBaseStore", "write_payments",
                                               "before", 2),
    "both stores written, Redis not marked": ("payment_platform.stores.redis_state:RedisState", "mark_landed",
                                              "before", 1),
    "progress committed, nothing reported": ("payment_platform.stores.postgres:PostgresLedger", "record_progress",
                                             "after", 1),
}

CHILD = textwrap.dedent("""
    import importlib, os, signal, sys
    from payment_platform.ingestion.lease import LeaseRunner, LeaseSettings
    from payment_platform.ingestion.loader import Ingestor
    from payment_platform.stores.backup import FailedPaymentBackup
    from payment_platform.stores.hbase import HBaseStore
    from payment_platform.stores.postgres import PartitionLease, PostgresLedger
    from payment_platform.stores.redis_state import RedisState

    (kafka_bootstrap, topic, hbase_host, hbase_port, postgres, mongo, folder, redis, target, method, when,
     nth) = sys.argv[1:13]
    module, name = target.split(":")
    owner = getattr(importlib.import_module(module), name)
    original, calls = getattr(owner, method), []

    def killing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == int(nth) and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(self, *args, **kwargs)
        if len(calls) == int(nth) and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, method, killing)
    ingestor = Ingestor(kafka_bootstrap, HBaseStore(hbase_host, int(hbase_port)), PostgresLedger(postgres),
                        FailedPaymentBackup(mongo, folder), RedisState(redis))
    settings = LeaseSettings(**{SETTINGS})
    for event in LeaseRunner(ingestor, kafka_bootstrap, topic, 0, PartitionLease(postgres, topic, 0), settings).run():
        pass
    sys.exit(3)  # never reached: the kill point is on the batch's path
""").replace("{SETTINGS}", repr(SETTINGS))


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_lease_killed_at_any_instant_of_a_batch_heals_with_every_payment_once(stack, tmp_path, point):
    ep = stack.endpoints
    topic = f"kill-{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(ep.kafka, topic, partitions=1)
    messages = list(generate(COUNT, seed=uuid.uuid4().int % 2**31))
    with kafka.Publisher(ep.kafka, topic) as publisher:
        assert publisher.publish(messages).acknowledged == COUNT
    ids = {m.payment_id for m in messages}
    folder = str(tmp_path / "failed_payments")
    target, method, when, nth = KILL_POINTS[point]
    child = subprocess.run([sys.executable, "-c", CHILD, ep.kafka, topic, ep.hbase_host, str(ep.hbase_port),
                            ep.postgres, ep.mongo, folder, ep.redis, target, method, when, str(nth)],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -9, f"the child was not killed at '{point}': {child.returncode} {child.stderr[-2000:]}"

    ledger = PostgresLedger(ep.postgres)
    hbase = HBaseStore(ep.hbase_host, ep.hbase_port)
    backup = FailedPaymentBackup(ep.mongo, folder)
    try:
        progress = ledger.read_progress(topic).get(0, 0)
        assert progress in (0, COUNT), f"progress half-way through a batch: {progress}"
        assert (progress == COUNT) == (point == "progress committed, nothing reported")
        # the next lease takes the partition at once (the dead one's session ended) and lands what is missing
        lease = PartitionLease(ep.postgres, topic, 0)
        ingestor = Ingestor(ep.kafka, HBaseStore(ep.hbase_host, ep.hbase_port), PostgresLedger(ep.postgres),
                            FailedPaymentBackup(ep.mongo, folder), RedisState(ep.redis))
        settings = LeaseSettings(**{**SETTINGS, "acquire_seconds": 2})
        events = list(LeaseRunner(ingestor, ep.kafka, topic, 0, lease, settings).run())
        ingestor.close()
        assert "another run held the lease" not in events[-1].reason
        assert ledger.read_progress(topic) == {0: COUNT}
        assert ledger.existing_ids(sorted(ids)) == ids and hbase.existing_ids(sorted(ids)) == ids
        assert not backup.stored_ids("hbase", sorted(ids)) and not backup.stored_ids("postgres", sorted(ids))
        with ledger.connection().cursor() as cur:  # exactly once: one row per payment, from one Kafka position
            cur.execute("SELECT count(*), count(DISTINCT payment_id) FROM payments WHERE kafka_topic = %s", (topic,))
            assert cur.fetchone() == (COUNT, COUNT)
    finally:
        for store in (ledger, hbase, backup):
            store.close()
