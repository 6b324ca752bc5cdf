"""The per-range consistency check (evaluate.range_report) against a range really ingested into the stores."""
import pytest

from payment_platform.reconciliation.evaluate import IngestedRange, range_report
from payment_platform.reconciliation.readers import HBaseReader, PostgresReader
from payment_platform.stores.kafka import KafkaClient

from ..test_stores.payments import bad_messages, payment_doc, raw

pytestmark = pytest.mark.stack


@pytest.fixture
def ingested(lane):
    """300 payments, the quarantined messages, and a later message reusing payment 7's id with other content,
    ingested; the range check reads Kafka back 64 messages at a time, so payment 7 and its twin fall in
    different chunks."""
    twin = payment_doc(7, lane.namespace)
    twin["amount"]["value"] = "1.00"
    bad = [b for b, _ in bad_messages(lane.namespace)]
    values = [raw(payment_doc(i, lane.namespace)) for i in range(300)]
    values = values[:100] + bad + values[100:] + [raw(twin)]
    rng = lane.publish(values)
    ingestor = lane.ingestor()
    result = ingestor.ingest(rng, chunk_size=64)
    assert (result.written["hbase"], result.quarantined, result.duplicates_skipped) == (300, len(bad), 1)
    hbase = lane.hbase()
    return lane, hbase, IngestedRange(1, rng.topic, rng.partition, rng.start, rng.end)


def check(lane, hbase, ingested_range):
    return range_report(ingested_range, HBaseReader.from_store(hbase), PostgresReader.from_ledger(lane.postgres()),
                        lane.backup(), KafkaClient(lane.bootstrap, ingested_range.topic), chunk_size=64)


def test_a_settled_range_checks_clean(ingested):
    lane, hbase, rng = ingested
    outcome = check(lane, hbase, rng)
    assert outcome["source"] == "kafka" and outcome["expected"] == 300
    report = outcome["report"]
    assert report.consistent, report.describe()
    assert report.rows == {"hbase": 300, "postgres": 300}
    assert outcome["lost"] == {"hbase": [], "postgres": []} and outcome["pending"] == {"hbase": 0, "postgres": 0}


def test_rows_lost_or_altered_behind_the_platform_are_named(ingested):
    lane, hbase, rng = ingested
    gone, altered = payment_doc(150, lane.namespace)["payment_id"], payment_doc(7, lane.namespace)["payment_id"]
    key = hbase.row_key_for(gone)
    hbase.table("payments").delete(key)
    ledger = lane.postgres()
    ledger._run(lambda cur: cur.execute(f'UPDATE "{lane.namespace}".payments SET amount = amount + 1 '
                                        "WHERE payment_id = %s", (altered,)))
    outcome = check(lane, hbase, rng)
    report = outcome["report"]
    assert not report.consistent
    assert report.only_in.get("postgres") == [gone] and not report.only_in.get("hbase")
    assert report.altered == [altered]
    assert outcome["lost"] == {"hbase": [gone], "postgres": []}


def test_a_range_kafka_no_longer_holds_is_checked_from_the_ledger(ingested):
    lane, hbase, rng = ingested
    lost_range = IngestedRange(rng.id, rng.topic, rng.partition, rng.start, rng.end, reset_since=True)
    outcome = check(lane, hbase, lost_range)
    assert outcome["source"].startswith("ledger (kafka range unavailable")
    assert outcome["expected"] == 300 and outcome["report"].consistent
    gone_topic = IngestedRange(rng.id, f"{rng.topic}-deleted", rng.partition, rng.start, rng.end)
    outcome = check(lane, hbase, gone_topic)
    assert outcome["source"].startswith("ledger (kafka range unavailable")


@pytest.mark.stack
def test_readers_of_several_lease_runs_create_their_tables_at_the_same_moment(stack):
    """Three partitions' lease runs check their first batches together, each reader creating the check tables:
    CREATE TABLE IF NOT EXISTS alone lets two twins collide on a duplicate type name (found by CI)."""
    import threading
    import uuid

    from payment_platform.stores.postgres import PostgresLedger

    for _ in range(4):
        schema = f"l{uuid.uuid4().hex[:10]}"
        PostgresLedger(stack.endpoints.postgres, schema=schema).ensure_schema()
        readers = [PostgresReader.from_dsn(stack.endpoints.postgres, schema) for _ in range(8)]
        start, errors = threading.Barrier(len(readers)), []

        def create(reader: PostgresReader, start: threading.Barrier = start, errors: list = errors) -> None:
            start.wait()
            try:
                reader.ensure_range_checks()
                reader.ensure_cuts()
            except Exception as error:  # noqa: BLE001 - collected and asserted below
                errors.append(error)

        threads = [threading.Thread(target=create, args=(reader,)) for reader in readers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert readers[0].ranges_to_check(10) == ([], 0)
