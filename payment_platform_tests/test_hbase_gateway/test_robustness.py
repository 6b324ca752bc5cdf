"""Bad input and bad clients: HBase's exception types, and the gateway keeps serving everyone else."""
from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

import happybase
import pytest
import thriftpy2
from Hbase_thrift import IllegalArgument, IOError
from thriftpy2.protocol import TBinaryProtocolFactory
from thriftpy2.rpc import make_client
from thriftpy2.transport import TBufferedTransportFactory


def still_serving(gateway):
    c = gateway.connect()
    try:
        return isinstance(c.tables(), list)
    finally:
        c.close()


@pytest.mark.parametrize("junk", [b"\x00" * 3, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes(range(256)) * 4,
                                  struct.pack(">i", -2147418111) + b"\x00\x00\x00\x07getRow" + b"\xff" * 50])
def test_garbage_bytes_close_only_that_connection(gateway, table, junk):
    other = gateway.connect()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as s:
        s.sendall(junk)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass  # reset by the gateway: fine, that connection was garbage
    table.put(b"after-junk", {b"cf:a": b"1"})
    assert other.table(table.name).row(b"after-junk") == {b"cf:a": b"1"}
    other.close()
    assert still_serving(gateway)


def test_huge_length_prefix_does_not_take_the_gateway_down(gateway):
    # A binary-protocol message announcing a 2 GB method name, then the client vanishes.
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as s:
        s.sendall(struct.pack(">I", 0x80010001) + struct.pack(">i", 0x7FFFFFF0) + b"getRow")
    assert still_serving(gateway)


def test_client_vanishing_mid_call(gateway, table):
    with table.batch() as batch:
        for i in range(300):
            batch.put(b"r%03d" % i, {b"cf:a": b"x" * 100})
    # Half a request, then gone.
    c = gateway.connect()
    c.transport.write(struct.pack(">I", 0x80010001) + struct.pack(">i", 10) + b"mutateRow")
    c.transport.flush()
    c.transport.close()
    # A whole scan request whose answer nobody reads.
    c = gateway.connect()
    sid = c.client.scannerOpenWithScan(table.name, happybase.table.TScan(caching=300), {})
    c.client._oprot.write_message_begin("scannerGetList", 1, 99)
    args = c.client._service.scannerGetList_args(id=sid, nbRows=300)
    args.write(c.client._oprot)
    c.client._oprot.write_message_end()
    c.client._oprot.trans.flush()
    c.transport.close()
    assert len(list(table.scan())) == 300
    assert still_serving(gateway)


def test_wrong_argument_types_on_the_wire(gateway, tmp_path):
    # A client whose IDL sends getRow's table name as an i32 and getTableNames-like calls intact.
    idl = Path(happybase.__file__).with_name("Hbase.thrift").read_text()
    bad = idl.replace("list<TRowResult> getRow(\n    /** name of table */\n    1:Text tableName",
                      "list<TRowResult> getRow(\n    /** name of table */\n    1:i32 tableName")
    assert bad != idl, "IDL layout changed: adjust the replacement"
    path = tmp_path / "Bad.thrift"
    path.write_text(bad)
    bad_module = thriftpy2.load(str(path), module_name="BadHbase_thrift")
    client = make_client(bad_module.Hbase, "127.0.0.1", gateway.port, proto_factory=TBinaryProtocolFactory(),
                         trans_factory=TBufferedTransportFactory(), timeout=5000)
    try:
        with pytest.raises(bad_module.IOError) as raised:
            client.getRow(42, b"row", {})
        assert "tableName" in raised.value.message
        assert isinstance(client.getTableNames(), list)  # the same connection keeps working
    finally:
        client.close()


def test_missing_arguments_get_hbase_exceptions(conn, table):
    with pytest.raises(IOError, match="tableName"):
        conn.client.getRow(None, b"r", {})
    with pytest.raises(IllegalArgument):
        conn.client.mutateRows(table.name, None, {})
    with pytest.raises(IllegalArgument, match="scanner ID"):
        conn.client.scannerGetList(123456789, 10)
    assert conn.tables()


def test_many_concurrent_connections(gateway, table):
    errors = []

    def work(n):
        try:
            c = gateway.connect()
            t = c.table(table.name)
            for batch_no in range(5):
                with t.batch() as batch:
                    for i in range(40):
                        batch.put(b"w%02d-%d-%02d" % (n, batch_no, i), {b"cf:a": b"%d" % i, b"cf2:b": b"y"})
                assert len(list(t.scan(row_prefix=b"w%02d-" % n))) == (batch_no + 1) * 40
                t.counter_inc(b"counter", b"cf:n")
            c.close()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    assert len(list(table.scan(row_prefix=b"w"))) == 12 * 5 * 40
    assert table.counter_get(b"counter", b"cf:n") == 60


def test_fuzzed_requests_never_take_the_gateway_down(gateway, table):
    import random

    rng = random.Random(7)
    methods = [b"mutateRows", b"getRow", b"scannerOpenWithScan", b"createTable", b"getRowsWithColumns",
               b"atomicIncrement", b"scannerGetList", b"noSuchMethod"]
    for seqid in range(80):
        method = rng.choice(methods)
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 120)))
        if rng.random() < 0.5:  # a plausible field header announcing an absurd size
            body = (bytes([rng.choice([8, 10, 11, 12, 13, 15])]) + struct.pack(">h", rng.randint(1, 4))
                    + bytes([rng.choice([0, 1, 2, 12, 15])])
                    + struct.pack(">i", rng.choice([-1, -(2**31), 2**31 - 1, 5, 100_000])) + body)
        message = struct.pack(">I", 0x80010001) + struct.pack(">i", len(method)) + method + struct.pack(">i", seqid)
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as s:
            s.sendall(message + body)
            try:
                s.shutdown(socket.SHUT_WR)
                s.recv(100)
            except OSError:
                pass
    table.put(b"after-fuzz", {b"cf:a": b"ok"})
    assert table.row(b"after-fuzz") == {b"cf:a": b"ok"}
    assert gateway.proc.poll() is None


def _closed_by_peer(port: int, payload: bytes) -> bool:
    """Sends payload and keeps the connection open: True when the gateway hangs up on it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        try:
            return s.recv(100) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


@pytest.mark.parametrize("element_type", [0, 1, 18])
def test_container_of_empty_elements_is_refused_at_once(gateway, element_type):
    # mutateRows whose rowBatches announce 2**31-1 elements of a type that takes no bytes: decoding it
    # would spin for seconds with the GIL held. The gateway hangs up instead, and keeps serving.
    method = b"mutateRows"
    payload = (struct.pack(">I", 0x80010001) + struct.pack(">i", len(method)) + method + struct.pack(">i", 1)
               + b"\x0b\x00\x01" + struct.pack(">i", 1) + b"t"
               + b"\x0f\x00\x02" + bytes([element_type]) + struct.pack(">i", 2**31 - 1))
    assert _closed_by_peer(gateway.port, payload)
    assert still_serving(gateway)


def test_a_large_batch_arriving_in_many_pieces(table):
    value = b"v" * 1000
    with table.batch() as batch:  # one mutateRows of about 8 MB
        for i in range(2000):
            batch.put(b"big%05d" % i, {b"cf:a": value, b"cf:b": value, b"cf:c": value, b"cf2:d": value})
    assert sum(len(cols) for _k, cols in table.scan(row_prefix=b"big")) == 8000


def test_connection_pool_with_broken_connections(gateway):
    import random

    from thriftpy2.thrift import TException

    pool = happybase.ConnectionPool(size=3, host="127.0.0.1", port=gateway.port, timeout=20000)
    rng = random.Random(3)
    errors = []

    def run():
        try:
            for _ in range(20):
                with pool.connection() as conn:
                    conn.tables()
                    try:
                        with pool.connection() as again:
                            assert again is conn
                            if rng.random() < 0.25:  # the pool must replace a connection that broke
                                conn.transport.close()
                                raise TException("simulated transport failure")
                    except TException:
                        pass
                    conn.tables()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
