"""The party indexes: written by ingestion and by replay under the payment row's exactly-once rules, walked while
new payments arrive, and backfilled for payments stored before they existed."""
from __future__ import annotations

import uuid

import pytest

from payment_platform.domain.rowkeys import PAYMENTS_BY_BENEFICIARY_TABLE, PAYMENTS_BY_ORIGINATOR_TABLE, PAYMENTS_TABLE
from payment_platform.replay.replayer import replayer_for
from payment_platform.serving.backfill import backfill_party_index
from payment_platform.stores import kafka
from payment_platform.stores.hbase import FAMILY_SPEC, HBaseStore

from payment_platform.domain.validation import parse_and_validate
from payment_platform.stores.records import PaymentRecord

from ..test_loader.conftest import free_port
from ..test_stores.payments import payment_doc, raw
from .conftest import Served, in_listing_order, newest_first

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture
def fresh(stack, tmp_path):
    namespace = f"i{uuid.uuid4().hex[:10]}"
    topic = f"test-serving-{namespace}"
    kafka.ensure_topic(stack.endpoints.kafka, topic, partitions=1)
    return Served(stack, namespace, topic, [], 0, tmp_path / "failed_payments")


def docs_of(namespace: str, numbers, party: str) -> list[dict]:
    docs = [payment_doc(i, namespace) for i in numbers]
    for doc in docs:
        doc["originator"]["party_id"] = party
    return docs


class PaymentRowsThenFails:
    """HBase that stores a chunk's payment rows and then fails (the connection dies before the index rows)."""

    def __init__(self, store: HBaseStore):
        self.store = store

    def write_payments(self, records, **options):
        rows = self.store.prepare(records)
        self.store.connection().client.mutateRows(self.store.table(PAYMENTS_TABLE).name,
                                                  [rows[r.payment_id][0] for r in records], {})
        raise ConnectionError("connection reset by peer (injected after the payment rows)")

    def __getattr__(self, name):
        return getattr(self.store, name)


def ids(items) -> list[str]:
    return [i.payment_id for i in items]


def test_a_chunk_failing_after_its_payment_rows_is_indexed_by_replay(fresh):
    party = "PTY-REPLAY-1"
    landed = docs_of(fresh.namespace, range(0, 10), party)
    failed = docs_of(fresh.namespace, range(10, 20), party)
    assert fresh.ingest([raw(d) for d in landed]).written["hbase"] == 10
    result = fresh.ingest([raw(d) for d in failed], hbase=PaymentRowsThenFails(fresh.hbase()))
    assert result.backed_up["hbase"] == 10 and result.written["postgres"] == 10
    queries = fresh.queries()

    # waiting in the backup: found (Postgres has it) and marked; not yet in the HBase index
    view = queries.payment(failed[0]["payment_id"])
    assert view.source == "postgres" and view.pending_in_backup == ["hbase"] and view.degraded is None
    page = queries.list_payments(originator_id=party, limit=100)
    assert page.source == "hbase" and set(ids(page.items)) == {d["payment_id"] for d in landed}
    assert queries.backup_report().as_dict()["size"] == 10

    replay = replayer_for(fresh.backup(), fresh.hbase(), fresh.postgres()).drain()
    assert replay.stores["hbase"].landed == 10

    page = queries.list_payments(originator_id=party, limit=100)
    assert ids(page.items) == [d["payment_id"] for d in newest_first(landed + failed)]
    beneficiary = failed[3]["beneficiary"]["party_id"]
    assert failed[3]["payment_id"] in ids(queries.list_payments(beneficiary_id=beneficiary, limit=1000).items)
    view = queries.payment(failed[0]["payment_id"])
    assert view.source == "hbase" and view.pending_in_backup == []
    # writing the same payments again (a replay killed before it emptied the backup) changes nothing
    fresh.hbase().write_payments([PaymentRecord(parse_and_validate(raw(d)), raw(d)) for d in failed])
    assert sum(1 for _ in fresh.hbase().table(PAYMENTS_BY_ORIGINATOR_TABLE).scan()) == 20


def test_a_payment_only_in_the_backup_is_served_from_it_and_marked(fresh):
    doc = docs_of(fresh.namespace, [77], "PTY-BACKUP-ONLY")[0]
    result = fresh.ingest([raw(doc)], hbase=fresh.hbase(port=free_port(), timeout_ms=1000))
    assert result.backed_up["hbase"] == 1
    # make Postgres lose it too: delete the row, and back it up for Postgres as the loader would
    backup = fresh.backup()
    entry = backup.list_oldest(1, store="hbase")[0]
    backup.record_failures("postgres", [entry.record()], "postgres down (injected)")
    ledger = fresh.postgres()
    ledger._run(lambda cur: cur.execute(f'DELETE FROM "{fresh.namespace}".payments WHERE payment_id = %s',
                                        (doc["payment_id"],)))
    view = fresh.queries().payment(doc["payment_id"])
    assert view.source == "backup" and sorted(view.pending_in_backup) == ["hbase", "postgres"]
    assert view.amount == doc["amount"]["value"] and view.originator.party_id == "PTY-BACKUP-ONLY"


def test_walking_an_originator_while_new_payments_arrive_has_no_duplicate_and_no_gap(fresh):
    party = "PTY-WALK-1"
    before = docs_of(fresh.namespace, range(0, 90), party)
    fresh.ingest([raw(d) for d in before])
    # between pages, payments of the same party are ingested: newer than any listed (ahead of the cursor: not in
    # this walk) and older than all (behind it: the walk must reach them)
    newer = docs_of(fresh.namespace, range(1000, 1024), party)
    older = docs_of(fresh.namespace, range(-300, -276), party)
    for doc in newer + older:
        doc["payment_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{fresh.namespace}/late/{doc['created_at']}"))
    arrivals = [newer[n:n + 2] + older[n:n + 2] for n in range(0, 24, 2)]
    queries = fresh.queries()
    seen, cursor, pages = [], None, 0
    while True:
        page = queries.list_payments(originator_id=party, limit=4, cursor=cursor)
        seen += ids(page.items)
        cursor, pages = page.next_cursor, pages + 1
        if arrivals:
            assert fresh.ingest([raw(d) for d in arrivals.pop(0)]).written["hbase"] == 4
        if cursor is None:
            break
    assert not arrivals and pages >= (90 + 24) // 4
    assert len(seen) == len(set(seen)), "a payment was listed twice"
    assert set(seen) == {d["payment_id"] for d in before + older}, "a gap, or a payment ahead of the cursor"
    assert in_listing_order([queries.payment(i) for i in seen])


def test_backfill_indexes_payments_stored_before_the_index(fresh):
    party = "PTY-BACKFILL-1"
    docs = docs_of(fresh.namespace, range(0, 25), party)
    fresh.ingest([raw(d) for d in docs])
    hbase = fresh.hbase()
    connection = hbase.connection()
    for table in (PAYMENTS_BY_ORIGINATOR_TABLE, PAYMENTS_BY_BENEFICIARY_TABLE):  # as before the index existed
        connection.delete_table(table, disable=True)
        connection.create_table(table, FAMILY_SPEC)
    queries = fresh.queries()
    assert queries.list_payments(originator_id=party).items == []

    result = backfill_party_index(hbase, batch_size=7)
    assert result["payments"] == 25 and result["skipped"] == 0
    expected = [d["payment_id"] for d in newest_first(docs)]
    assert ids(queries.list_payments(originator_id=party, limit=100).items) == expected
    again = backfill_party_index(hbase)  # idempotent: the same rows again
    assert again["payments"] == 25
    assert sum(1 for _ in hbase.table(PAYMENTS_BY_ORIGINATOR_TABLE).scan()) == 25
    assert sum(1 for _ in hbase.table(PAYMENTS_BY_BENEFICIARY_TABLE).scan()) == 25
