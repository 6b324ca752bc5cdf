"""A payment published to a running `payment-platform up` (defaults, nothing else started or clicked) lands in
HBase and in Postgres by itself: the daemon's sensor plans it, a run lands it, progress covers its offset."""
from __future__ import annotations


import pytest

from payment_platform.generation.generator import generate
from payment_platform.generation.settings import GenerationSettings
from devstack.stack.manager import remove_data_dir
from payment_platform.stores import kafka
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger
from payment_platform_tests.conftest import stack_data_dir
from payment_platform_tests.running_up import RunningUp
from payment_platform_tests.waiting import wait_until

pytestmark = pytest.mark.slow

LAND_WAIT_S = 90.0  # a bounded wait, not a timing (bench_sustained.py times it): 40 s were seen under load 20 on 2 cores


@pytest.fixture
def running_up():
    folder = stack_data_dir("payment-platform-test-up-lands-")
    try:
        with RunningUp(folder / "data") as up:
            yield up
    finally:
        remove_data_dir(folder)  # and its Postgres cluster, kept outside it when private (root)


def test_a_payment_published_to_a_running_up_lands_in_both_stores(running_up):
    endpoints = running_up.stack.endpoints
    topic = endpoints.topic  # the platform's default topic, the one `up`'s sensor ingests
    [message] = generate(1, seed=18, settings=GenerationSettings(bad_fraction=0.0))
    kafka.ensure_topic(endpoints.kafka, topic)  # what `payment-platform produce` does before it sends
    with kafka.Publisher(endpoints.kafka, topic) as publisher:
        published = publisher.publish([message])
    assert published.acknowledged == 1
    partition, (offset, _) = next(iter(published.offsets.items()))

    hbase = HBaseStore(endpoints.hbase_host, endpoints.hbase_port, endpoints.hbase_transport, endpoints.hbase_protocol)
    ledger = PostgresLedger(endpoints.postgres)
    try:
        def where() -> dict:
            found = {"postgres": None, "hbase": None, "progress": None}
            for store, read in (("postgres", lambda: ledger.get_payment(message.payment_id)),
                                ("hbase", lambda: hbase.get_payment(message.payment_id)),
                                ("progress", lambda: ledger.read_progress(topic).get(partition))):
                try:
                    found[store] = read()
                except Exception as error:  # noqa: BLE001 - tables not created yet by the first run
                    found[store] = None
                    (hbase if store == "hbase" else ledger).reset()
                    found[f"{store}_error"] = str(error)[:200]
            return found

        def landed() -> dict | None:
            found = where()
            return found if found["postgres"] and found["hbase"] and (found["progress"] or 0) > offset else None

        found = wait_until(landed, LAND_WAIT_S, f"payment {message.payment_id} (partition {partition}, offset {offset}) "
                           f"published to a running `payment-platform up` landing in both stores", every_s=1.0,
                           give_up=running_up.check,
                           detail=lambda: f"now: {where()}; {running_up.log_tail()}")
    finally:
        hbase.close()
        ledger.close()

    assert found["postgres"]["kafka_partition"] == partition and found["postgres"]["kafka_offset"] == offset
    assert found["hbase"]["paymentId"] == message.payment_id
