"""Salted and unsalted layouts give the same answers: the same payments written to a salted store
(HBASE_SALT_BUCKETS=8) and an unsalted one (separate table prefixes on the same embedded gateway), then read
through every reader: by id, time windows in both directions with limits, whole-table scans, reconciliation."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from payment_platform.domain.rowkeys import row_key, salt_bucket, time_key, time_prefix, unsalted
from payment_platform.reconciliation.compare import AllPayments, PaymentIds, TimeWindow
from payment_platform.reconciliation.readers import HBaseReader
from payment_platform.stores.hbase import HBaseStore, scan_time_range

from .payments import record

pytestmark = pytest.mark.stack

COUNT = 90  # 30 seconds of payments, 3 a second (payments.payment_doc)
ANCHOR = datetime(2026, 11, 24, 14, 0, 0, tzinfo=timezone.utc)


def _store(stack, buckets: int) -> HBaseStore:
    ep = stack.endpoints
    store = HBaseStore(ep.hbase_host, ep.hbase_port, ep.hbase_transport, ep.hbase_protocol,
                       table_prefix=f"salt{buckets}{uuid.uuid4().hex[:8]}", salt_buckets=buckets)
    store.ensure_schema()
    return store


@pytest.fixture(scope="module")
def layouts(stack):
    records = [record(i, namespace="salt") for i in range(COUNT)]
    stores = {buckets: _store(stack, buckets) for buckets in (0, 8)}
    for store in stores.values():
        store.write_payments(list(reversed(records)))  # write order must not matter
    yield records, stores
    for store in stores.values():
        store.close()


def _bare(rows, buckets):
    return [(unsalted(key, buckets), cells) for key, cells in rows]


def test_salted_rows_are_spread_over_the_buckets_and_the_index_points_at_them(layouts):
    records, stores = layouts
    salted = stores[8]
    raw_keys = [key for key, _ in salted.table("payments").scan()]
    assert len(raw_keys) == COUNT
    assert {key[:3] for key in raw_keys} == {f"{b:02d}_".encode() for b in range(8)}  # all 8 buckets used
    for r in records[:10]:
        assert salted.row_key_for(r.payment_id) == row_key(r.payment, 8)
        assert salted.row_key_for(r.payment_id)[:2] == f"{salt_bucket(r.payment_id, 8):02d}".encode()
        assert salted.get_payment(r.payment_id) == stores[0].get_payment(r.payment_id)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("window, limit", [
    ((None, None), None),
    ((ANCHOR + timedelta(seconds=5), ANCHOR + timedelta(seconds=17)), None),
    ((ANCHOR + timedelta(seconds=5), ANCHOR + timedelta(seconds=17)), 7),
    ((ANCHOR + timedelta(seconds=29), None), None),
    ((None, ANCHOR + timedelta(seconds=1)), 100),
    ((ANCHOR + timedelta(hours=1), ANCHOR + timedelta(hours=2)), None),
])
def test_time_windows_are_the_same_rows_in_the_same_order(layouts, window, limit, reverse):
    records, stores = layouts
    start, stop = (time_prefix(m) if m else None for m in window)
    plain, salted = (_bare(scan_time_range(stores[b].table("payments"), start, stop, b, limit=limit, reverse=reverse,
                                           batch_size=4), b) for b in (0, 8))
    expected = sorted((time_key(r.payment) for r in records
                       if (start is None or time_key(r.payment) >= start) and (stop is None or time_key(r.payment) < stop)),
                      reverse=reverse)[:limit]
    assert [key for key, _ in plain] == expected
    assert salted == plain  # same keys (unsalted), same cells, same order


def test_scan_payments_prefix_is_a_time_prefix_in_both_layouts(layouts):
    records, stores = layouts
    second = time_prefix(ANCHOR + timedelta(seconds=4))
    answers = [_bare(stores[b].scan_payments(row_prefix=second), b) for b in (0, 8)]
    assert answers[0] == answers[1] and len(answers[0]) == 3
    assert all(key.startswith(second) for key, _ in answers[0])
    whole = [_bare(stores[b].scan_payments(), b) for b in (0, 8)]
    assert whole[0] == whole[1] and [k for k, _ in whole[0]] == sorted(time_key(r.payment) for r in records)


def test_reconciliation_reader_gives_the_same_summaries_and_records(layouts):
    records, stores = layouts
    readers = {b: HBaseReader.from_store(s) for b, s in stores.items()}
    assert readers[8].salt_buckets == 8
    window = TimeWindow(ANCHOR + timedelta(seconds=3), ANCHOR + timedelta(seconds=20))
    ids = PaymentIds(frozenset(r.payment_id for r in records[::4]), "some ids")
    for scope in (AllPayments(), window, ids):
        plain, salted = (readers[b].summarize(scope, depth=1) for b in (0, 8))
        assert (salted.rows, salted.segments, salted.totals) == (plain.rows, plain.segments, plain.totals)
        assert sorted(readers[8].records(scope, ["0", "a", "f"], 1)) == sorted(readers[0].records(scope, ["0", "a", "f"], 1))
    assert plain.rows == len(ids.ids)
    # the range check's key hints are unsalted keys: the reader puts them in its layout (no index lookups needed)
    hints = {r.payment_id: time_key(r.payment) for r in records[:20]}
    assert sorted(readers[8].records_with_key_hints(hints)) == sorted(readers[0].records_with_key_hints(hints))
    assert len(list(readers[8].records_with_key_hints(hints))) == 20
