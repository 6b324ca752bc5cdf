"""Cells: timestamps, versions, deletes, TTL, counters, as HBase's region server applies them."""
from __future__ import annotations

import struct
import time

import pytest
from Hbase_thrift import BatchMutation, IllegalArgument, IOError, Mutation


def test_put_and_get_with_server_timestamps(table):
    before = int(time.time() * 1000)
    table.put(b"r1", {b"cf:a": b"1", b"cf2:b": b"2"})
    after = int(time.time() * 1000)
    row = table.row(b"r1", include_timestamp=True)
    assert {k: v for k, (v, _ts) in row.items()} == {b"cf:a": b"1", b"cf2:b": b"2"}
    assert all(before <= ts <= after for _v, ts in row.values())


def test_missing_rows_are_left_out(table):
    table.put(b"r1", {b"cf:a": b"1"})
    assert table.row(b"missing") == {}
    assert table.rows([b"missing", b"r1", b"also-missing"]) == [(b"r1", {b"cf:a": b"1"})]


def test_multi_get_answers_in_the_order_asked(table):
    """getRows is answered a few hundred rows per query; HBase's order (the order asked, repeats included) holds."""
    with table.batch() as batch:
        for i in range(1200):
            batch.put(b"k%05d" % i, {b"cf:a": b"%d" % i, b"cf2:b": b"x"})
    asked = [b"k%05d" % i for i in (1199, 3, 700, 3, 5000, 0, 512)] + [b"k%05d" % i for i in range(1199, -1, -1)]
    got = table.rows(asked, columns=[b"cf:a"])
    expected = [k for k in asked if k != b"k05000"]
    assert [k for k, _ in got] == expected
    assert all(cells == {b"cf:a": str(int(k[1:])).encode()} for k, cells in got)
    assert table.connection.client.getRows(table.name, [], {}) == []


def test_multi_get_errors_are_answered_not_dropped(table, conn):
    with pytest.raises(IOError, match="TableNotFoundException"):
        conn.client.getRows(b"no-such-table", [b"r"], {})
    with pytest.raises(IOError, match="[Ff]amily"):
        table.rows([b"r"], columns=[b"nofamily:a"])
    table.put(b"r", {b"cf:a": b"still served"})
    assert table.row(b"r") == {b"cf:a": b"still served"}


def test_column_selection(table):
    table.put(b"r", {b"cf:a": b"1", b"cf:b": b"2", b"cf2:c": b"3"})
    assert table.row(b"r", columns=[b"cf:a"]) == {b"cf:a": b"1"}
    assert table.row(b"r", columns=[b"cf"]) == {b"cf:a": b"1", b"cf:b": b"2"}  # a family alone: all of it
    assert table.row(b"r", columns=[b"cf:"]) == {b"cf:a": b"1", b"cf:b": b"2"}
    assert table.row(b"r", columns=[b"cf:b", b"cf2"]) == {b"cf:b": b"2", b"cf2:c": b"3"}
    assert table.row(b"r", columns=[b"cf:zz"]) == {}


def test_versions_newest_first_and_capped_by_max_versions(table):
    for ts in (10, 20, 30, 40):
        table.put(b"r", {b"cf:a": b"v%d" % ts}, timestamp=ts)
    assert table.cells(b"r", b"cf:a", include_timestamp=True) == [(b"v40", 40), (b"v30", 30), (b"v20", 20)]
    assert table.cells(b"r", b"cf:a", versions=2) == [b"v40", b"v30"]
    assert table.row(b"r") == {b"cf:a": b"v40"}


def test_read_timestamps_are_exclusive(table):
    for ts in (10, 20, 30):
        table.put(b"r", {b"cf:a": b"v%d" % ts}, timestamp=ts)
    assert table.row(b"r", timestamp=30, include_timestamp=True) == {b"cf:a": (b"v20", 20)}
    assert table.row(b"r", timestamp=10) == {}
    assert table.cells(b"r", b"cf:a", timestamp=30) == [b"v20", b"v10"]
    assert table.rows([b"r"], timestamp=21) == [(b"r", {b"cf:a": b"v20"})]
    assert [r for r in table.scan(timestamp=11)] == [(b"r", {b"cf:a": b"v10"})]


def test_later_write_at_equal_timestamp_wins(table):
    table.put(b"r", {b"cf:a": b"first"}, timestamp=100)
    table.put(b"r", {b"cf:a": b"second"}, timestamp=100)
    assert table.cells(b"r", b"cf:a", include_timestamp=True) == [(b"second", 100)]


def test_delete_timestamps_are_inclusive(table):
    for ts in (10, 20, 30):
        table.put(b"r", {b"cf:a": b"v%d" % ts, b"cf:b": b"b%d" % ts}, timestamp=ts)
    table.delete(b"r", columns=[b"cf:a"], timestamp=20)
    assert table.cells(b"r", b"cf:a") == [b"v30"]
    assert table.cells(b"r", b"cf:b") == [b"b30", b"b20", b"b10"]
    # The tombstone keeps masking older puts until a major compaction, as in HBase.
    table.put(b"r", {b"cf:a": b"late"}, timestamp=15)
    assert table.cells(b"r", b"cf:a") == [b"v30"]
    table.connection.compact_table(table.name, major=True)
    table.put(b"r", {b"cf:a": b"late"}, timestamp=15)
    assert table.cells(b"r", b"cf:a") == [b"v30", b"late"]


def test_batched_puts_respect_tombstones_and_families(table):
    """mutateRows of puts only takes the gateway's one-pass path: the same tombstones and errors as any put."""
    table.put(b"r", {b"cf:a": b"v30"}, timestamp=30)
    table.delete(b"r", columns=[b"cf:a"], timestamp=20)
    with table.batch(timestamp=15) as batch:  # older than the tombstone: masked
        batch.put(b"r", {b"cf:a": b"masked"})
        batch.put(b"s", {b"cf:a": b"kept", b"cf2:b": b"too"})
    assert table.cells(b"r", b"cf:a") == [b"v30"]
    assert table.row(b"s") == {b"cf:a": b"kept", b"cf2:b": b"too"}
    with pytest.raises(IOError, match="Column family nofamily does not exist"):
        with table.batch() as batch:
            batch.put(b"t", {b"cf:a": b"1"})
            batch.put(b"u", {b"nofamily:x": b"2"})
    assert table.row(b"t") == {}  # the call failed as a whole
    with pytest.raises(IllegalArgument, match="Row length is 0"):
        table.connection.client.mutateRows(table.name, [BatchMutation(b"", [Mutation(False, b"cf:a", b"1", True)])], {})


def test_whole_row_and_family_deletes(table):
    table.put(b"r", {b"cf:a": b"1", b"cf:b": b"2", b"cf2:c": b"3"})
    table.delete(b"r", columns=[b"cf"])
    assert table.row(b"r") == {b"cf2:c": b"3"}
    table.delete(b"r")
    assert table.row(b"r") == {}
    table.put(b"r", {b"cf:a": b"again"})  # a put right after a delete is kept
    assert table.row(b"r") == {b"cf:a": b"again"}


def test_row_delete_with_timestamp(table):
    table.put(b"r", {b"cf:a": b"old", b"cf2:b": b"old"}, timestamp=5)
    table.put(b"r", {b"cf:a": b"new"}, timestamp=50)
    table.connection.client.deleteAllRowTs(table.name, b"r", 10, {})
    assert table.row(b"r", include_timestamp=True) == {b"cf:a": (b"new", 50)}


def test_batch_puts_then_deletes_as_hbase(table):
    # mutateRows applies all puts of the call, then its deletes: a delete in the same batch wins.
    with table.batch() as batch:
        batch.delete(b"r")
        batch.put(b"r", {b"cf:a": b"1"})
        batch.put(b"s", {b"cf:a": b"2"})
    assert table.row(b"r") == {}
    assert table.row(b"s") == {b"cf:a": b"2"}


def test_batch_with_timestamp_and_batch_size(table):
    with table.batch(timestamp=77, batch_size=3) as batch:
        for i in range(10):
            batch.put(b"row%d" % i, {b"cf:a": b"%d" % i})
    rows = dict(table.scan(include_timestamp=True))
    assert len(rows) == 10
    assert all(cells[b"cf:a"][1] == 77 for cells in rows.values())


def test_transaction_batch_sends_nothing_on_error(table):
    with pytest.raises(ValueError):
        with table.batch(transaction=True) as batch:
            batch.put(b"r", {b"cf:a": b"1"})
            raise ValueError("abort")
    assert table.row(b"r") == {}


def test_ttl_hides_expired_cells(conn):
    conn.create_table("ttl_t", {"cf": dict(time_to_live=2)})
    t = conn.table("ttl_t")
    now = int(time.time() * 1000)
    t.put(b"old", {b"cf:a": b"x"}, timestamp=now - 5000)
    t.put(b"new", {b"cf:a": b"y"}, timestamp=now)
    assert t.row(b"old") == {}
    assert dict(t.scan()) == {b"new": {b"cf:a": b"y"}}
    conn.delete_table("ttl_t", disable=True)


def test_counters(table):
    assert table.counter_get(b"c", b"cf:n") == 0
    assert table.counter_inc(b"c", b"cf:n") == 1
    assert table.counter_inc(b"c", b"cf:n", 10) == 11
    assert table.counter_dec(b"c", b"cf:n", 3) == 8
    assert table.row(b"c")[b"cf:n"] == struct.pack(">q", 8)
    table.counter_set(b"c", b"cf:n", -5)
    assert table.counter_inc(b"c", b"cf:n") == -4
    table.put(b"c", {b"cf:text": b"abc"})
    with pytest.raises(IOError, match="not a long"):
        table.counter_inc(b"c", b"cf:text")


def test_counters_are_atomic_across_connections(gateway, table):
    import threading

    def bump():
        c = gateway.connect()
        for _ in range(50):
            c.table(table.name).counter_inc(b"c", b"cf:n")
        c.close()

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert table.counter_get(b"c", b"cf:n") == 200


def test_unknown_family_is_an_io_error(table):
    with pytest.raises(IOError, match="NoSuchColumnFamily"):
        table.put(b"r", {b"nope:a": b"1"})
    with pytest.raises(IOError, match="NoSuchColumnFamily"):
        table.row(b"r", columns=[b"nope:a"])
    with pytest.raises(IOError, match="NoSuchColumnFamily"):
        list(table.scan(columns=[b"nope"]))
    with pytest.raises(IOError, match="NoSuchColumnFamily"):
        table.counter_inc(b"r", b"nope:n")


def test_a_bad_batch_writes_nothing(table):
    with pytest.raises(IOError):
        with table.batch() as batch:
            batch.put(b"good", {b"cf:a": b"1"})
            batch.put(b"bad", {b"nope:a": b"1"})
    assert table.row(b"good") == {}


def test_put_without_qualifier_is_an_illegal_argument(table):
    with pytest.raises(IllegalArgument, match="famAndQf"):
        table.put(b"r", {b"cf": b"1"})
    table.put(b"r", {b"cf:": b"empty qualifier"})
    assert table.row(b"r") == {b"cf:": b"empty qualifier"}


def test_mutate_row_and_single_cell_rpcs(table):
    client = table.connection.client
    client.mutateRow(table.name, b"r", [Mutation(column=b"cf:a", value=b"1"), Mutation(column=b"cf:b", value=b"2")], {})
    assert [c.value for c in client.get(table.name, b"r", b"cf:a", {})] == [b"1"]
    client.deleteAll(table.name, b"r", b"cf:a", {})
    assert table.row(b"r") == {b"cf:b": b"2"}
    client.mutateRowTs(table.name, b"r", [Mutation(isDelete=True, column=b"cf:b")], 2**62, {})
    assert table.row(b"r") == {}


def test_negative_timestamp_is_refused(table):
    with pytest.raises(IllegalArgument, match="negative"):
        table.put(b"r", {b"cf:a": b"1"}, timestamp=-1)


def test_row_keys_must_not_be_empty_or_too_long(table):
    with pytest.raises(IllegalArgument, match="Row length is 0"):
        table.put(b"", {b"cf:a": b"1"})
    with pytest.raises(IllegalArgument, match="32767"):
        table.put(b"x" * 40000, {b"cf:a": b"1"})
    table.put(b"x" * 32767, {b"cf:a": b"max"})
    assert table.row(b"x" * 32767) == {b"cf:a": b"max"}


def test_check_and_put_and_append(table):
    client = table.connection.client
    put = Mutation(column=b"cf:a", value=b"first")
    assert client.checkAndPut(table.name, b"r", b"cf:a", None, put, {}) is True  # missing: matches
    assert client.checkAndPut(table.name, b"r", b"cf:a", None, Mutation(column=b"cf:a", value=b"x"), {}) is False
    assert client.checkAndPut(table.name, b"r", b"cf:a", b"first", Mutation(column=b"cf:a", value=b"second"), {})
    assert table.row(b"r") == {b"cf:a": b"second"}
    from Hbase_thrift import TAppend

    cells = client.append(TAppend(table=table.name, row=b"r", columns=[b"cf:a", b"cf:b"], values=[b"+1", b"new"]))
    assert sorted(c.value for c in cells) == [b"new", b"second+1"]
    assert table.row(b"r") == {b"cf:a": b"second+1", b"cf:b": b"new"}
