"""Scanners: ranges, prefixes, reversed, columns, batching, sorted columns, lifetimes."""
from __future__ import annotations

import pytest
from Hbase_thrift import IllegalArgument, TScan


@pytest.fixture
def filled(table):
    with table.batch() as batch:
        for i in range(20):
            batch.put(b"row%02d" % i, {b"cf:a": b"a%d" % i, b"cf:b": b"b%d" % i, b"cf2:c": b"c%d" % i})
    return table


def keys(results):
    return [k for k, _ in results]


def test_full_scan_in_row_order(filled):
    assert keys(filled.scan()) == [b"row%02d" % i for i in range(20)]


def test_start_inclusive_stop_exclusive(filled):
    assert keys(filled.scan(row_start=b"row05", row_stop=b"row08")) == [b"row05", b"row06", b"row07"]
    assert keys(filled.scan(row_start=b"row055")) [0] == b"row06"
    assert keys(filled.scan(row_stop=b"row02")) == [b"row00", b"row01"]


def test_prefix(filled):
    filled.put(b"other", {b"cf:a": b"x"})
    assert keys(filled.scan(row_prefix=b"row1")) == [b"row%02d" % i for i in range(10, 20)]
    assert keys(filled.scan(row_prefix=b"zzz")) == []


def test_reversed(filled):
    assert keys(filled.scan(reverse=True)) == [b"row%02d" % i for i in reversed(range(20))]
    assert keys(filled.scan(reverse=True, row_start=b"row07", row_stop=b"row04")) == [b"row07", b"row06", b"row05"]
    assert keys(filled.scan(reverse=True, row_prefix=b"row1"))[:2] == [b"row19", b"row18"]
    row = dict(filled.scan(reverse=True, limit=1, sorted_columns=True))[b"row19"]
    assert list(row) == [b"cf:a", b"cf:b", b"cf2:c"]  # columns stay in HBase's order


def test_columns_and_empty_rows_left_out(filled):
    filled.put(b"only-cf2", {b"cf2:c": b"x"})
    results = list(filled.scan(columns=[b"cf:a"]))
    assert len(results) == 20 and all(cols == {b"cf:a": b"a%d" % int(k[3:])} for k, cols in results)
    assert b"only-cf2" not in keys(filled.scan(columns=[b"cf"]))
    assert keys(filled.scan(columns=[b"cf2"]))[0] == b"only-cf2"


def test_limit_and_batch_size(filled):
    assert len(list(filled.scan(limit=7, batch_size=2))) == 7
    assert len(list(filled.scan(batch_size=1))) == 20
    assert len(list(filled.scan(batch_size=3))) == 20


def test_scan_batching_splits_rows(filled):
    parts = list(filled.scan(row_prefix=b"row00", scan_batching=2, sorted_columns=True))
    assert [list(cols) for _k, cols in parts] == [[b"cf:a", b"cf:b"], [b"cf2:c"]]


def test_sorted_columns(table):
    table.put(b"r", {b"cf:z": b"1", b"cf:a": b"2", b"cf2:m": b"3", b"cf:m": b"4"})
    (_, cols), = list(table.scan(sorted_columns=True))
    assert list(cols) == [b"cf:a", b"cf:m", b"cf:z", b"cf2:m"]


def test_include_timestamp(table):
    table.put(b"r", {b"cf:a": b"1"}, timestamp=123)
    assert list(table.scan(include_timestamp=True)) == [(b"r", {b"cf:a": (b"1", 123)})]


def test_binary_row_keys_sort_bytewise(table):
    for key in (b"\xff\x00", b"\x00\x01", b"\x7f", b"a", b"\x00"):
        table.put(key, {b"cf:a": key})
    assert keys(table.scan()) == [b"\x00", b"\x00\x01", b"a", b"\x7f", b"\xff\x00"]
    assert keys(table.scan(row_prefix=b"\xff")) == [b"\xff\x00"]


def test_scanner_stays_valid_until_closed_and_sees_resume_point(filled):
    client = filled.connection.client
    scanner_id = client.scannerOpenWithScan(filled.name, TScan(startRow=b"row10", caching=2), {})
    first = client.scannerGetList(scanner_id, 3)
    assert [r.row for r in first] == [b"row10", b"row11", b"row12"]
    # Other traffic between calls does not disturb the scanner.
    filled.put(b"row11x", {b"cf:a": b"new"})
    list(filled.scan(row_prefix=b"row0"))
    nxt = client.scannerGet(scanner_id)
    assert [r.row for r in nxt] == [b"row13"]
    rest = client.scannerGetList(scanner_id, 100)
    assert [r.row for r in rest][-1] == b"row19"
    assert client.scannerGetList(scanner_id, 10) == []
    client.scannerClose(scanner_id)
    with pytest.raises(IllegalArgument, match="scanner ID is invalid"):
        client.scannerGetList(scanner_id, 1)
    with pytest.raises(IllegalArgument):
        client.scannerClose(scanner_id)


def test_old_scanner_rpcs(filled):
    client = filled.connection.client
    sid = client.scannerOpenWithStop(filled.name, b"row03", b"row05", [b"cf:a"], {})
    rows = client.scannerGetList(sid, 10)
    client.scannerClose(sid)
    assert [(r.row, sorted(r.columns)) for r in rows] == [(b"row03", [b"cf:a"]), (b"row04", [b"cf:a"])]
    sid = client.scannerOpenWithPrefix(filled.name, b"row1", None, {})
    assert len(client.scannerGetList(sid, 100)) == 10
    client.scannerClose(sid)
    sid = client.scannerOpen(filled.name, b"row18", None, {})
    assert [r.row for r in client.scannerGetList(sid, 100)] == [b"row18", b"row19"]
    client.scannerClose(sid)


@pytest.mark.parametrize("compat", ["0.90", "0.92", "0.94", "0.96", "0.98"])
def test_compat_modes(gateway, filled, compat):
    c = gateway.connect(compat=compat)
    try:
        t = c.table(filled.name)
        assert keys(t.scan(row_start=b"row03", row_stop=b"row06")) == [b"row03", b"row04", b"row05"]
        assert keys(t.scan(row_start=b"row18")) == [b"row18", b"row19"]
        assert list(t.scan(row_start=b"row01", row_stop=b"row02", columns=[b"cf2:c"])) == [(b"row01", {b"cf2:c": b"c1"})]
        assert t.row(b"row01", columns=[b"cf:a"]) == {b"cf:a": b"a1"}
        t.put(b"row01", {b"cf:a": b"later"}, timestamp=2**50)
        assert dict(t.scan(row_start=b"row01", row_stop=b"row02", timestamp=2**50))[b"row01"][b"cf:a"] == b"a1"
        assert dict(t.scan(row_start=b"row01", timestamp=2**50 + 1, limit=1))[b"row01"][b"cf:a"] == b"later"
        t.delete(b"row01", columns=[b"cf:a"], timestamp=2**50)
        if compat >= "0.96":
            assert keys(t.scan(sorted_columns=True, limit=2)) == [b"row00", b"row01"]
        if compat >= "0.98":
            assert keys(t.scan(reverse=True, limit=1)) == [b"row19"]
    finally:
        c.close()
