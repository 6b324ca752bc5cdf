"""Reconciliation under a cut against really ingested stores: payments at or past the recorded progress (in flight:
in one store only) are never a mismatch; one missing or altered below it always is; the incremental run re-reads what
landed since the last proven cut and its slice of the rotation, and keeps failing segments until they pass."""
import psycopg2
import pytest
from psycopg2 import sql

from payment_platform.reconciliation import scheduled
from payment_platform.reconciliation.compare import AllPayments, reconcile
from payment_platform.reconciliation.cut import Rotation
from payment_platform.reconciliation.readers import HBaseReader, PostgresReader
from payment_platform.stores.hbase import Q_AMOUNT_VALUE

from ..test_stores.payments import payment_doc, raw

pytestmark = pytest.mark.stack

IN_FLIGHT = 40  # the last payments: progress is moved back before them, and HBase loses their rows


@pytest.fixture
def flowing(lane):
    """300 payments ingested; the last IN_FLIGHT are then as a range being written: in Postgres, not yet in HBase,
    and past the recorded progress."""
    rng = lane.publish([raw(payment_doc(i, lane.namespace)) for i in range(300)])
    ingestor = lane.ingestor()
    assert ingestor.ingest(rng).written["hbase"] == 300
    ledger, hbase = lane.postgres(), lane.hbase()
    rows = positions(lane)
    table = hbase.table("payments")
    lane.held_back = {}  # the HBase rows of the range in flight, to land later
    for _, key, offset in rows:
        if offset >= rng.end - IN_FLIGHT:
            lane.held_back[key.encode()] = table.row(key.encode())
            table.delete(key.encode())
    ledger.reset_progress(rng.topic, 0, rng.end - IN_FLIGHT, "test: the last range is still being written")
    return lane, HBaseReader.from_store(hbase), PostgresReader.from_ledger(ledger), rows, rng


def positions(lane) -> list[tuple[str, str, int]]:
    connection = psycopg2.connect(lane.stack.endpoints.postgres)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("SELECT payment_id::text, hbase_row_key, kafka_offset FROM {}.payments "
                                   "ORDER BY kafka_offset").format(sql.Identifier(lane.namespace)))
            return cursor.fetchall()
    finally:
        connection.close()


def alter_in_postgres(lane, payment_id: str) -> None:
    connection = psycopg2.connect(lane.stack.endpoints.postgres)
    with connection, connection.cursor() as cursor:
        cursor.execute(sql.SQL("UPDATE {}.payments SET amount = amount + 1 WHERE payment_id = %s::uuid").format(
            sql.Identifier(lane.namespace)), (payment_id,))
    connection.close()


EVERY_SEGMENT = Rotation(segments_per_run=256, interval_minutes=15)
FEW_SEGMENTS = Rotation(segments_per_run=8, interval_minutes=15)


def test_payments_in_flight_are_no_mismatch_below_the_cut_and_would_be_without_it(flowing):
    lane, hbase_reader, postgres_reader, rows, rng = flowing
    without_cut = reconcile(hbase_reader, postgres_reader, AllPayments())
    assert len(without_cut.only_in["postgres"]) == IN_FLIGHT  # what a check without a cut reports
    outcome = scheduled.full_reconciliation(hbase_reader, postgres_reader)
    assert outcome.report.consistent, outcome.report.describe()
    assert outcome.report.rows == {"hbase": 300 - IN_FLIGHT, "postgres": 300 - IN_FLIGHT}
    assert outcome.metadata["cut_offsets"] == {f"{rng.topic}[0]": rng.end - IN_FLIGHT}


def test_tampering_below_the_cut_is_named_exactly(flowing):
    lane, hbase_reader, postgres_reader, rows, rng = flowing
    (deleted, deleted_key, _), (altered_h, altered_key, _), (altered_p, _, _) = rows[10], rows[20], rows[30]
    table = lane.hbase().table("payments")
    table.delete(deleted_key.encode())
    table.put(altered_key.encode(), {Q_AMOUNT_VALUE: b"12345.67"})
    alter_in_postgres(lane, altered_p)
    outcome = scheduled.incremental_reconciliation(hbase_reader, postgres_reader, FEW_SEGMENTS)
    assert outcome.metadata["first_pass_all_payments"]  # nothing proven yet: every payment below the cut
    assert outcome.report.offending_ids == sorted({deleted, altered_h, altered_p})
    assert outcome.report.only_in["postgres"] == [deleted]


def test_the_incremental_run_reads_what_landed_since_the_proven_cut_and_keeps_failing_segments(flowing):
    lane, hbase_reader, postgres_reader, rows, rng = flowing
    first = scheduled.incremental_reconciliation(hbase_reader, postgres_reader, FEW_SEGMENTS)
    assert first.report.consistent  # proves the cut at rng.end - IN_FLIGHT
    # the range in flight settles: HBase gets its rows back, progress moves to the end
    table = lane.hbase().table("payments")
    for key, cells in lane.held_back.items():
        table.put(key, cells)
    assert lane.postgres().record_progress(rng.topic, 0, rng.end - IN_FLIGHT, rng.end)
    landed_id, landed_key, _ = rows[-5]
    lane.hbase().table("payments").put(landed_key.encode(), {Q_AMOUNT_VALUE: b"1.01"})
    second = scheduled.incremental_reconciliation(hbase_reader, postgres_reader, FEW_SEGMENTS)
    assert second.metadata["landed_since_last_proven_cut"] == IN_FLIGHT
    assert second.report.offending_ids == [landed_id]
    # rotating on, the failing segment stays in every run until it passes
    third = scheduled.incremental_reconciliation(hbase_reader, postgres_reader, FEW_SEGMENTS)
    assert third.report.offending_ids == [landed_id]
    assert second.metadata["segments_still_failing"] == third.metadata["segments_still_failing"] == [landed_id[:2]]
    assert landed_id[:2] in third.increment.segments and third.increment.rotated != second.increment.rotated
