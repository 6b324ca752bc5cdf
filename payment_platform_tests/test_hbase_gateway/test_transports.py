"""The same happybase workload over every transport/protocol pair HBase's Thrift server offers."""
from __future__ import annotations

import pytest

from payment_platform_tests.test_hbase_gateway.conftest import start_gateway


@pytest.fixture(scope="module", params=[(True, False), (False, True), (True, True)],
                ids=["framed-binary", "buffered-compact", "framed-compact"])
def variant(request, tmp_path_factory):
    framed, compact = request.param
    running = start_gateway(tmp_path_factory.mktemp("variant"), framed=framed, compact=compact)
    yield running
    assert running.stop() == 0


def test_workload(variant):
    conn = variant.connect()
    try:
        conn.create_table("w", {"cf": dict(max_versions=2), "cf2": {}})
        t = conn.table("w")
        with t.batch(batch_size=50) as batch:
            for i in range(200):
                batch.put(b"k%03d" % i, {b"cf:a": b"%d" % i, b"cf2:b": b"\x00\xff" * 3})
        assert t.row(b"k007") == {b"cf:a": b"7", b"cf2:b": b"\x00\xff" * 3}
        assert [k for k, _ in t.rows([b"k001", b"k199", b"none"])] == [b"k001", b"k199"]
        assert len(list(t.scan(batch_size=17))) == 200
        assert [k for k, _ in t.scan(row_prefix=b"k19", reverse=True)][:2] == [b"k199", b"k198"]
        assert [k for k, _ in t.scan(filter="RowFilter(=, 'regexstring:k1.5')")] == [b"k105", b"k115", b"k125",
            b"k135", b"k145", b"k155", b"k165", b"k175", b"k185", b"k195"]
        assert t.counter_inc(b"c", b"cf:n", 3) == 3
        t.put(b"v", {b"cf:a": b"1"}, timestamp=1)
        t.put(b"v", {b"cf:a": b"2"}, timestamp=2)
        t.put(b"v", {b"cf:a": b"3"}, timestamp=3)
        assert t.cells(b"v", b"cf:a", include_timestamp=True) == [(b"3", 3), (b"2", 2)]
        t.delete(b"k000")
        assert t.row(b"k000") == {}
        assert list(t.scan(row_start=b"k010", row_stop=b"k012", sorted_columns=True))[0][0] == b"k010"
        conn.delete_table("w", disable=True)
    finally:
        conn.close()


def test_compact_refuses_containers_of_empty_elements(tmp_path):
    import socket

    gateway = start_gateway(tmp_path, compact=True)
    try:
        # Compact mutateRows: tableName, then rowBatches announcing 2**31-1 elements of type STOP.
        method = b"mutateRows"
        message = (b"\x82\x21\x01" + bytes([len(method)]) + method + b"\x18\x01t" + b"\x19\xf0"
                   + b"\xff\xff\xff\xff\x07")
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as s:
            s.sendall(message)
            try:
                assert s.recv(100) == b""
            except ConnectionResetError:
                pass
        conn = gateway.connect()
        assert isinstance(conn.tables(), list)
        conn.close()
    finally:
        assert gateway.stop() == 0
    assert "container of unknown element type" in open(gateway.log_path).read()
