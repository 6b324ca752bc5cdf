"""Table administration through happybase, as HBase's Thrift1 server answers it."""
from __future__ import annotations

import pytest
from Hbase_thrift import AlreadyExists, IllegalArgument, IOError


def test_create_list_describe_and_delete(conn):
    conn.create_table("admin_a", {"cf": dict(max_versions=5, time_to_live=60, in_memory=True), "other": None})
    assert b"admin_a" in conn.tables()
    families = conn.table("admin_a").families()
    assert set(families) == {b"cf", b"other"}
    assert families[b"cf"]["max_versions"] == 5
    assert families[b"cf"]["time_to_live"] == 60
    assert families[b"cf"]["in_memory"] is True
    assert families[b"cf"]["name"] == b"cf:"
    assert families[b"other"]["max_versions"] == 3  # the IDL's default
    assert families[b"other"]["time_to_live"] == 2147483647  # HBase's FOREVER
    conn.delete_table("admin_a", disable=True)
    assert b"admin_a" not in conn.tables()


def test_table_names_are_sorted(conn):
    for name in ("sort_c", "sort_a", "sort_b"):
        conn.create_table(name, {"cf": {}})
    names = [n for n in conn.tables() if n.startswith(b"sort_")]
    assert names == [b"sort_a", b"sort_b", b"sort_c"]
    for name in ("sort_a", "sort_b", "sort_c"):
        conn.delete_table(name, disable=True)


def test_second_create_raises_already_exists(table, conn):
    with pytest.raises(AlreadyExists):
        conn.create_table(table.name, {"cf": {}})


def test_enable_disable(table, conn):
    assert conn.is_table_enabled(table.name)
    conn.disable_table(table.name)
    assert not conn.is_table_enabled(table.name)
    with pytest.raises(IOError, match="TableNotEnabled"):
        table.row(b"r")
    with pytest.raises(IOError, match="TableNotEnabled"):
        table.put(b"r", {b"cf:a": b"1"})
    with pytest.raises(IOError):
        conn.disable_table(table.name)  # already disabled
    conn.enable_table(table.name)
    table.put(b"r", {b"cf:a": b"1"})
    assert table.row(b"r") == {b"cf:a": b"1"}


def test_delete_needs_a_disabled_table(table, conn):
    with pytest.raises(IOError, match="TableNotDisabled"):
        conn.delete_table(table.name)
    assert table.name in conn.tables()


def test_unknown_table_is_an_io_error(conn):
    for call in (lambda: conn.is_table_enabled("nope"), lambda: conn.table("nope").families(),
                 lambda: conn.table("nope").row(b"x"), lambda: conn.table("nope").put(b"x", {b"cf:a": b"1"}),
                 lambda: list(conn.table("nope").scan()), lambda: conn.delete_table("nope")):
        with pytest.raises(IOError, match="nope|not exist|NotFound"):
            call()
    assert conn.table("nope").regions() == []  # as HBase's getTableRegions

def test_regions_and_compaction(table, conn):
    regions = table.regions()
    assert len(regions) == 1
    assert regions[0]["start_key"] == b"" and regions[0]["end_key"] == b""
    assert regions[0]["name"].startswith(table.name + b",")
    for ts in (1, 2, 3, 4, 5):
        table.put(b"r", {b"cf:a": b"v%d" % ts}, timestamp=ts)
    conn.compact_table(table.name)
    conn.compact_table(table.name, major=True)
    assert table.cells(b"r", b"cf:a") == [b"v5", b"v4", b"v3"]


@pytest.mark.parametrize(
    "families, message",
    [
        ({"cf": dict(max_versions=0)}, "versions"),
        ({"cf": dict(compression="NOPE")}, "compression"),
        ({"cf": dict(bloom_filter_type="NOPE")}, "Bloom"),
    ],
)
def test_bad_family_options_are_illegal_arguments(conn, families, message):
    with pytest.raises(IllegalArgument, match=message):
        conn.create_table("bad_options", families)
    assert b"bad_options" not in conn.tables()


def test_bad_table_name_is_an_illegal_argument(conn):
    with pytest.raises(IllegalArgument, match="table name"):
        conn.create_table("bad name!", {"cf": {}})


def test_table_prefix(gateway):
    prefixed = gateway.connect(table_prefix="app")
    try:
        prefixed.create_table("items", {"cf": {}})
        assert b"items" in prefixed.tables()
        plain = gateway.connect()
        assert b"app_items" in plain.tables()
        plain.close()
        prefixed.delete_table("items", disable=True)
    finally:
        prefixed.close()
