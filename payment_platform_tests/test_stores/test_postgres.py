"""PostgresLedger against the embedded Postgres: payments, quarantine, progress."""
import pytest
from psycopg2 import sql

from payment_platform.stores.postgres import PostgresLedger, PostgresUnavailable, ProgressConflict, QuarantineEntry
from payment_platform.stores.records import KafkaPosition

from .payments import bad_messages, record

pytestmark = pytest.mark.stack


def test_round_trip_typed_columns(ledger):
    records = [record(i) for i in range(30)]
    assert ledger.write_payments(records) == 30
    row = ledger.get_payment(records[5].payment_id)
    p = records[5].payment
    assert str(row["payment_id"]) == p.payment_id and row["payment_type"] == p.payment_type
    assert row["amount"] == p.amount and str(row["amount"]) == p.doc["amount"]["value"]
    assert row["currency"] == p.currency and row["created_at"] == p.created_at
    assert row["originator_id"] == p.originator.party_id and row["beneficiary_name"] == p.beneficiary.name
    assert row["document"] == p.doc and str(row["value_date"]) == p.value_date
    assert (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) == ("t", 0, 5)
    assert row["ingested_at"] is not None
    assert ledger.existing_ids([r.payment_id for r in records[:3]] + [record(999).payment_id, "not-a-uuid"]) == \
        {r.payment_id for r in records[:3]}


def test_upsert_never_changes_a_landed_payment(ledger):
    records = [record(i) for i in range(10)]
    assert ledger.write_payments(records) == 10
    assert ledger.write_payments(records) == 0
    assert ledger.write_payments(records[:3] + [record(10)]) == 1
    assert ledger.count_payments() == 11


def test_quarantine_keeps_raw_bytes_and_is_unique_by_position(ledger):
    entries = [QuarantineEntry(raw, KafkaPosition("t", 1, n), f"reason {n}", field) for n, (raw, field)
               in enumerate(bad_messages())]
    assert ledger.quarantine(entries) == len(entries)
    assert ledger.quarantine(entries) == 0
    assert ledger.count_quarantine() == len(entries)
    stored = {q["kafka_offset"]: q for q in ledger.quarantined()}
    assert stored[0]["raw"] == b"{not json" and stored[1]["field"] == "amount.value"


def test_progress_moves_forward_contiguously(ledger):
    assert ledger.read_progress("topic-a") == {}
    assert ledger.record_progress("topic-a", 0, 0, 100) is True
    assert ledger.record_progress("topic-a", 0, 100, 250) is True
    assert ledger.record_progress("topic-a", 0, 100, 250) is False  # re-run of a recorded range: no-op
    assert ledger.record_progress("topic-a", 0, 0, 100) is False
    with pytest.raises(ProgressConflict, match="gap"):
        ledger.record_progress("topic-a", 0, 300, 400)
    with pytest.raises(ProgressConflict, match="overlap"):
        ledger.record_progress("topic-a", 0, 200, 300)
    with pytest.raises(ProgressConflict):
        ledger.record_progress("topic-a", 1, 10, 20)  # first range of a partition must start at 0 ...
    ledger.reset_progress("topic-a", 1, 10, "topic begins at offset 10")  # ... or be put on record first
    assert ledger.record_progress("topic-a", 1, 10, 20) is True
    assert ledger.read_progress("topic-a") == {0: 250, 1: 20}
    assert ledger.read_progress("other") == {}


def test_reset_progress_is_recorded(ledger):
    ledger.record_progress("topic-b", 2, 0, 500)
    ledger.reset_progress("topic-b", 2, 0, "end offset 40 < recorded 500: broker restarted")
    assert ledger.read_progress("topic-b") == {2: 0}
    [reset] = ledger.resets("topic-b")
    assert (reset["partition"], reset["previous_offset"], reset["next_offset"]) == (2, 500, 0)
    assert "broker restarted" in reset["reason"]
    with pytest.raises(ValueError):
        ledger.reset_progress("topic-b", 2, 0, " ")


def test_ensure_schema_is_idempotent_and_health(ledger):
    ledger.ensure_schema()
    assert ledger.health()["server_version"]


def test_unreachable_server_raises_quickly(unused_port):
    ledger = PostgresLedger(f"postgresql://postgres@127.0.0.1:{unused_port}/postgres")
    with pytest.raises(PostgresUnavailable, match="unreachable"):
        ledger.health()
    with pytest.raises(PostgresUnavailable):
        ledger.write_payments([record(1)])


def test_the_settlement_summary_is_rebuilt_from_the_payments(ledger):
    records = [record(i, namespace="settlement") for i in range(40)]
    assert ledger.write_payments(records) == 40
    settled_statuses, rejected_statuses = ("ACSC", "ACCC"), ("RJCT", "CANC", "BLCK")
    figures = ledger.rebuild_settlement_summary(settled_statuses, rejected_statuses)
    total = ledger.count_payments()
    assert figures["payments"] == total and figures["rows"] >= 2 and figures["days"] >= 1
    assert ledger.rebuild_settlement_summary(settled_statuses, rejected_statuses) == figures  # replaced, not added
    schema = sql.Identifier(ledger.schema)
    with ledger.connection().cursor() as cur:
        cur.execute(sql.SQL("SELECT sum(settled), sum(rejected) FROM {}.daily_settlement_summary").format(schema))
        settled, rejected = cur.fetchone()
        cur.execute(sql.SQL("SELECT count(*) FILTER (WHERE status = ANY(%s)), count(*) FILTER (WHERE status = ANY(%s)) "
                            "FROM {}.payments").format(schema), (list(settled_statuses), list(rejected_statuses)))
        assert (settled, rejected) == cur.fetchone()
    ledger.connection().rollback()
