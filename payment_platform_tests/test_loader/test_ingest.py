"""Ingestor.ingest against the embedded stack: landing, quarantine, duplicates, re-runs, Redis down."""
import pytest

from payment_platform.ingestion.loader import IngestionError, OffsetRange

from ..test_stores.payments import bad_messages, payment_doc, raw
from .conftest import free_port

pytestmark = pytest.mark.stack


def payments(n, namespace, start=0):
    return [raw(payment_doc(i, namespace)) for i in range(start, start + n)]


def test_range_lands_everywhere_with_quarantine_and_duplicates(lane):
    good = payments(250, lane.namespace)
    bad = bad_messages(lane.namespace)
    twin = payment_doc(7, lane.namespace)  # a later message reusing payment 7's id with other content
    twin["amount"]["value"] = "1.00"
    values = good[:100] + [b for b, _ in bad] + good[100:] + [raw(twin)]
    rng = lane.publish(values, headers={100: {"defect": b"not_json"}})
    ingestor = lane.ingestor()
    result = ingestor.ingest(rng, chunk_size=64)

    assert result.messages == len(values) == rng.size
    assert result.written == {"hbase": 250, "postgres": 250, "redis": 250}
    assert result.backed_up == {"hbase": 0, "postgres": 0}
    assert (result.quarantined, result.duplicates_skipped) == (len(bad), 1)
    assert result.progress_recorded and lane.postgres().read_progress(lane.topic) == {0: rng.end}
    assert ingestor.hbase.count_index() == 250 and ingestor.postgres.count_payments() == 250
    first_seven = raw(payment_doc(7, lane.namespace))
    pid = twin["payment_id"]
    assert ingestor.postgres.get_payment(pid)["document"] == payment_doc(7, lane.namespace)
    assert ingestor.hbase.get_payment(pid)["raw"] == first_seven
    quarantined = {q["kafka_offset"]: q for q in ingestor.postgres.quarantined()}
    assert sorted(quarantined) == list(range(rng.start + 100, rng.start + 100 + len(bad)))
    assert [quarantined[rng.start + 100 + n]["field"] for n in range(len(bad))] == [f for _, f in bad]
    assert quarantined[rng.start + 100]["raw"] == b"{not json"
    assert quarantined[rng.start + 100]["defect_label"] == "not_json"
    assert "must be positive" in quarantined[rng.start + 101]["reason"]
    metrics = ingestor.redis.metrics()
    assert (metrics["processed"], metrics["quarantined"], metrics["duplicates"]) == (250, len(bad), 1)
    assert metrics["by_rail"] == {"ACH": 125, "SEPA": 125}
    meta = result.as_metadata()
    assert meta["messages"] == len(values) and meta["rate_msgs_per_s"] > 0 and meta["written_postgres"] == 250


def test_same_range_twice_changes_nothing(lane):
    rng = lane.publish(payments(120, lane.namespace) + [b"garbage"])
    ingestor = lane.ingestor()
    ingestor.ingest(rng, chunk_size=50)
    hbase_before = list(ingestor.hbase.scan_payments())
    again = ingestor.ingest(rng, chunk_size=50)
    assert again.written == {"hbase": 0, "postgres": 0, "redis": 0}
    assert (again.duplicates_skipped, again.quarantined, again.progress_recorded) == (120, 1, False)
    # Redis is only an optimisation: with its keys gone the stores themselves still say "already landed".
    ingestor.redis.forget_landed([payment_doc(i, lane.namespace)["payment_id"] for i in range(120)])
    third = lane.ingestor().ingest(rng, chunk_size=50)
    assert (third.written["hbase"], third.written["postgres"], third.duplicates_skipped) == (0, 0, 120)
    assert third.written["redis"] == 120
    assert list(ingestor.hbase.scan_payments()) == hbase_before
    assert ingestor.postgres.count_payments() == 120 and ingestor.postgres.count_quarantine() == 1
    assert lane.postgres().read_progress(lane.topic) == {0: rng.end}


def test_only_malformed_messages_go_to_quarantine_and_progress_moves(lane):
    bad = bad_messages(lane.namespace)
    rng = lane.publish([b for b, _ in bad])
    result = lane.ingestor().ingest(rng)
    assert (result.quarantined, result.written["postgres"], result.progress_recorded) == (len(bad), 0, True)
    assert lane.postgres().count_quarantine() == len(bad)
    assert lane.postgres().read_progress(lane.topic) == {0: rng.end}


def test_redis_down_still_lands_everything(lane):
    rng = lane.publish(payments(60, lane.namespace))
    ingestor = lane.ingestor(redis=lane.redis(f"redis://127.0.0.1:{free_port()}/0"))
    result = ingestor.ingest(rng, chunk_size=20)
    assert result.written["hbase"] == result.written["postgres"] == 60 and result.written["redis"] == 0
    assert result.redis_errors >= 1 and result.progress_recorded


def test_range_not_on_the_broker_fails_and_progress_stays(lane):
    rng = lane.publish(payments(5, lane.namespace))
    with pytest.raises(IngestionError, match="Kafka"):
        lane.ingestor().ingest(OffsetRange(lane.topic, 0, rng.start, rng.end + 10))
    assert lane.postgres().read_progress(lane.topic) == {}


def test_range_past_recorded_progress_is_refused_as_a_gap(lane):
    lane.publish(payments(10, lane.namespace))
    ingestor = lane.ingestor()
    with pytest.raises(IngestionError, match="gap"):
        ingestor.ingest(OffsetRange(lane.topic, 0, 5, 10))
    assert ingestor.postgres.count_payments() == 0 and ingestor.postgres.read_progress(lane.topic) == {}


def test_postgres_unreachable_fails_before_writing_anything(lane):
    from payment_platform.stores.postgres import PostgresLedger
    rng = lane.publish(payments(10, lane.namespace))
    dead = PostgresLedger(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", connect_timeout_s=2)
    ingestor = lane.ingestor(postgres=dead)
    with pytest.raises(IngestionError, match="progress"):
        ingestor.ingest(rng)
    assert ingestor.hbase.count_index() == 0 and ingestor.backup.size() == 0


def test_a_nul_character_postgres_cannot_store_is_quarantined_alone(lane):
    doc = payment_doc(3, lane.namespace)
    doc["originator"]["name"] = "Acme\u0000 LLC"
    rng = lane.publish(payments(3, lane.namespace) + [raw(doc)] + payments(3, lane.namespace, start=4))
    result = lane.ingestor().ingest(rng)
    assert result.quarantined == 1 and result.written["postgres"] == result.written["hbase"] == 6
    assert result.backed_up == {"hbase": 0, "postgres": 0}
    [entry] = lane.postgres().quarantined()
    assert "NUL" in entry["reason"] and entry["kafka_offset"] == rng.start + 3


def test_stale_redis_keys_never_lose_a_payment(lane):
    rng = lane.publish(payments(40, lane.namespace))
    ingestor = lane.ingestor()
    # Redis remembers these payments as landed, but the stores were wiped (or never had them)
    ingestor.redis.mark_landed([payment_doc(i, lane.namespace)["payment_id"] for i in range(40)])
    result = ingestor.ingest(rng, chunk_size=16)
    assert result.written["hbase"] == result.written["postgres"] == 40
    assert (result.redis_stale, result.duplicates_skipped) == (40, 0)
    assert ingestor.postgres.count_payments() == 40 and ingestor.hbase.count_index() == 40
