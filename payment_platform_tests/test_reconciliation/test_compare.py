"""Pure reconciliation logic against in-memory sources."""
import uuid
from decimal import Decimal

import pytest

from payment_platform.reconciliation.compare import (
    AllPayments,
    PaymentIds,
    choose_depth,
    reconcile,
)
from payment_platform.reconciliation.digest import (
    PaymentRecord,
    canonical_amount,
    make_record,
    record_hash,
    summarize,
)


class ListSource:
    """A store made of a list of records; counts which segments were fetched record by record."""

    def __init__(self, name, records):
        self.name = name
        self._records = list(records)
        self.fetched_segments = []

    def _in_scope(self, scope):
        if isinstance(scope, PaymentIds):
            return [r for r in self._records if r.payment_id in scope.ids]
        return self._records

    def summarize(self, scope, depth):
        return summarize(self._in_scope(scope), depth)

    def records(self, scope, segments, depth):
        self.fetched_segments.extend(segments)
        return [r for r in self._in_scope(scope) if r.payment_id[:depth] in set(segments)]


def payments(n, seed=1):
    rails = [("WIRE", "USD", "12500.00"), ("SEPA", "EUR", "99.10"), ("ACH", "USD", "5.00"), ("CARD", "JPY", "700")]
    out = []
    for i in range(n):
        rail, cur, amt = rails[i % len(rails)]
        out.append(make_record(str(uuid.UUID(int=(i * 2654435761 + seed) % (1 << 128) << 64 | i)), rail, cur, amt))
    return out


def test_canonical_amount_matches_postgres_trim_scale():
    assert canonical_amount("12500.00") == "12500"
    assert canonical_amount(Decimal("12500.000")) == "12500"
    assert canonical_amount(b"0.50") == "0.5"
    assert canonical_amount("100") == "100"
    assert canonical_amount("0.00") == "0"
    assert canonical_amount("garbage").startswith("not-a-number")


def test_record_hash_is_the_sql_formula():
    # ('x' || substr(md5('a|WIRE|USD|1'), 1, 16))::bit(64)::bigint, computed independently here
    import hashlib
    line = "a|WIRE|USD|1"
    expected = int(hashlib.md5(line.encode()).hexdigest()[:16], 16)
    expected = expected - (1 << 64) if expected >= 1 << 63 else expected
    assert record_hash(PaymentRecord("a", "WIRE", "USD", "1")) == expected


def test_identical_stores_are_consistent_and_fetch_no_record():
    records = payments(2000)
    hbase, postgres = ListSource("hbase", records), ListSource("postgres", reversed(records))
    report = reconcile(hbase, postgres, AllPayments(), depth=2)
    assert report.consistent, report.describe()
    assert report.rows == {"hbase": 2000, "postgres": 2000}
    assert hbase.fetched_segments == [] and postgres.fetched_segments == []
    assert report.as_metadata()["mismatch_count"] == 0


def test_missing_altered_and_duplicated_rows_are_named_and_only_their_segments_fetched():
    records = payments(3000)
    deleted, changed = records[10], records[20]
    extra = make_record(str(uuid.uuid4()), "RTP", "USD", "1.00")
    postgres_rows = [r for r in records if r is not deleted and r is not changed]
    postgres_rows.append(changed._replace(amount="12500.01"))
    postgres_rows.append(extra)
    hbase_rows = records + [records[30]]  # the same payment twice in HBase
    hbase, postgres = ListSource("hbase", hbase_rows), ListSource("postgres", postgres_rows)

    report = reconcile(hbase, postgres, AllPayments(), depth=2)

    assert not report.consistent
    assert report.only_in["hbase"] == [deleted.payment_id]
    assert report.only_in["postgres"] == [extra.payment_id]
    assert report.altered == [changed.payment_id]
    assert report.duplicates["hbase"] == [records[30].payment_id]
    expected_segments = sorted({r.payment_id[:2] for r in (deleted, changed, extra, records[30])})
    assert report.segments_differing == expected_segments
    assert sorted(set(hbase.fetched_segments)) == expected_segments
    meta = report.as_metadata()
    assert meta["mismatch_count"] == 4
    assert set(meta["mismatch_sample"]) == {deleted.payment_id, extra.payment_id, changed.payment_id,
                                            records[30].payment_id}
    assert meta["missing_in_postgres"] == 1 and meta["missing_in_hbase"] == 1 and meta["altered"] == 1
    assert meta["mismatch_detail"][changed.payment_id]["postgres"]["amount"] == "12500.01"
    assert report.total_differences, "sums per rail and currency differ too"
    assert "only in hbase" in report.describe()


def test_totals_per_rail_and_currency():
    records = payments(8)
    summary = summarize(records)
    assert summary.totals[("WIRE", "USD")].count == 2
    assert summary.totals[("WIRE", "USD")].amount == Decimal("25000")
    assert summary.totals[("CARD", "JPY")].amount == Decimal("1400")


def test_a_payment_moved_to_another_currency_changes_totals_and_is_named():
    records = payments(100)
    moved = records[3]._replace(currency="EUR")
    report = reconcile(ListSource("hbase", records),
                       ListSource("postgres", records[:3] + [moved] + records[4:]), AllPayments())
    assert report.altered == [moved.payment_id]
    assert {(d.rail, d.currency) for d in report.total_differences} == {(moved.rail, records[3].currency), (moved.rail, "EUR")}


def test_payment_ids_scope():
    records = payments(50)
    ids = frozenset(r.payment_id for r in records[:10])
    report = reconcile(ListSource("hbase", records), ListSource("postgres", records[:9]), PaymentIds(ids, "range p0 0-10"))
    assert report.only_in["hbase"] == [records[9].payment_id]
    assert report.rows == {"hbase": 10, "postgres": 9}
    assert report.scope == "range p0 0-10"


@pytest.mark.parametrize("rows,depth", [(0, 1), (60_000, 1), (1_000_000, 2), (100_000_000, 4)])
def test_choose_depth(rows, depth):
    assert choose_depth(rows) == depth


def test_a_difference_that_settles_between_two_passes_is_not_reported():
    from payment_platform.reconciliation.evaluate import settled

    records = payments(200)
    hbase = ListSource("hbase", records)
    postgres = ListSource("postgres", records[:-5])  # the last 5 are being written by a running range
    slept = []

    def compare():
        report = reconcile(hbase, postgres, AllPayments())
        postgres._records = list(records)  # the range finished meanwhile
        return report

    report = settled(compare, settle_s=5, sleep=slept.append)
    assert report.consistent and slept == [5]
    assert report.as_metadata()["first_pass_mismatch_count"] == 5


def test_a_difference_that_persists_is_reported_after_the_second_pass():
    from payment_platform.reconciliation.evaluate import settled

    records = payments(200)
    hbase, postgres = ListSource("hbase", records), ListSource("postgres", records[:-5])
    report = settled(lambda: reconcile(hbase, postgres, AllPayments()), settle_s=5, sleep=lambda s: None)
    assert not report.consistent and len(report.only_in["hbase"]) == 5


def test_segment_prefixes_become_uuid_ranges():
    from payment_platform.reconciliation.readers import uuid_bounds

    assert uuid_bounds("ab") == ("ab000000-0000-0000-0000-000000000000", "ac000000-0000-0000-0000-000000000000")
    assert uuid_bounds("0f") == ("0f000000-0000-0000-0000-000000000000", "10000000-0000-0000-0000-000000000000")
    assert uuid_bounds("ff") == ("ff000000-0000-0000-0000-000000000000", None)
    assert uuid_bounds("abcdef12-3") == ("abcdef12-3000-0000-0000-000000000000", "abcdef12-4000-0000-0000-000000000000")
