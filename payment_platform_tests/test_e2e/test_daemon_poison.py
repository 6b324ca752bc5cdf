"""Under the real `dagster-daemon`: a message validation did not foresee (Postgres's jsonb refuses a number with
200,001 digits) in the middle of a partition. The sensor-requested range run isolates it by bisection and
quarantines it with Postgres's error at its Kafka position; every other payment lands once in both stores and the
partition's progress moves past it: no retry loop, nothing behind it waits."""
from __future__ import annotations

import uuid

import pytest

from devstack.stack.dagster_process import DagsterDaemon
from payment_platform.stores import kafka
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger
from payment_platform_tests.waiting import watching, wait_until

from ..test_loader.conftest import publish
from ..test_loader.test_poison import overflowing_payment
from ..test_stores.payments import payment_doc, raw

pytestmark = [pytest.mark.stack, pytest.mark.slow]

COUNT, POISON = 30, 17
WAIT_S = 180  # bounded: daemon start, the sensor's plan, one run


def test_under_the_daemon_a_poison_message_is_quarantined_and_the_partition_moves_on(stack, tmp_path):
    topic = f"poison-{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(stack.endpoints.kafka, topic, partitions=1)
    namespace = topic
    values = [raw(payment_doc(i, namespace)) for i in range(COUNT)]
    values[POISON] = overflowing_payment(POISON, namespace)
    ids = [payment_doc(i, namespace)["payment_id"] for i in range(COUNT)]
    ledger = PostgresLedger(stack.endpoints.postgres)
    ledger.ensure_schema()  # a fresh session stack: the tables the assertions read exist from the start
    hbase = HBaseStore(stack.endpoints.hbase_host, stack.endpoints.hbase_port)

    with DagsterDaemon(tmp_path / "dagster_home", {**stack.env(), "PAYMENTS_TOPIC": topic},
                       tmp_path / "daemon.log") as daemon:
        first, end = publish(stack.endpoints.kafka, topic, values)
        assert (first, end) == (0, COUNT)
        wait_until(lambda: ledger.read_progress(topic).get(0) == COUNT, WAIT_S, f"progress of partition 0 reaching {COUNT}",
                   every_s=1.0, **watching(daemon))

    entries = [q for q in ledger.quarantined(limit=1000) if q["kafka_topic"] == topic]
    assert [(q["kafka_offset"], q["payment_id"], q["raw"]) for q in entries] == [(POISON, ids[POISON], values[POISON])]
    assert "postgres refused it" in entries[0]["reason"] and "numeric" in entries[0]["reason"]
    good = set(ids) - {ids[POISON]}
    assert ledger.existing_ids(ids) == good and hbase.existing_ids(ids) == good
    ledger.close()
    hbase.close()
