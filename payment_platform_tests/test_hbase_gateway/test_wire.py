"""Unit tests of the request check that runs before decoding (no server)."""
from __future__ import annotations

import struct

import pytest
from Hbase_thrift import BatchMutation, Hbase, Mutation, TScan
from thriftpy2.protocol import TBinaryProtocol
from thriftpy2.transport import TMemoryBuffer

from devstack.hbase_gateway.wire import Malformed, MessageWalk, message_end


def encode(name, args) -> bytes:
    buf = TMemoryBuffer()
    proto = TBinaryProtocol(buf)
    proto.write_message_begin(name, 1, 1)
    args.write(proto)
    proto.write_message_end()
    return buf.getvalue()


MUTATE = encode("mutateRows", Hbase.mutateRows_args(
    tableName=b"t", attributes={b"k": b"v"},
    rowBatches=[BatchMutation(b"row%d" % i, [Mutation(column=b"cf:c%d" % c, value=b"x" * 10) for c in range(3)])
                for i in range(20)]))
SCAN = encode("scannerOpenWithScan", Hbase.scannerOpenWithScan_args(
    tableName=b"t", attributes={},
    scan=TScan(startRow=b"a", stopRow=b"b", columns=[b"cf"], timestamp=5, caching=10, filterString=b"f",
               batchSize=2, sortColumns=True, reversed=True)))


@pytest.mark.parametrize("message", [MUTATE, SCAN], ids=["mutateRows", "scannerOpenWithScan"])
def test_finds_the_end_of_whole_messages_only(message):
    assert message_end(message) == len(message)
    assert message_end(message + b"next message") == len(message)
    for cut in range(len(message)):
        assert message_end(message[:cut]) is None


@pytest.mark.parametrize("piece", [1, 7, 100])
def test_resumes_where_it_stopped(piece):
    walk, buf, result = MessageWalk(), bytearray(), None
    for i in range(0, len(MUTATE), piece):
        buf += MUTATE[i : i + piece]
        result = walk.advance(buf)
        if i + piece < len(MUTATE):
            assert result is None
    assert result == len(MUTATE)


def header(method: bytes = b"mutateRows") -> bytes:
    return struct.pack(">I", 0x80010001) + struct.pack(">i", len(method)) + method + struct.pack(">i", 1)


@pytest.mark.parametrize(
    "message, problem",
    [
        (b"GET / HTTP/1.1\r\n", "not a Thrift binary message"),
        (header() + b"\x0f\x00\x02\x01" + struct.pack(">i", 2**31 - 1), "unknown element type"),
        (header() + b"\x0d\x00\x03\x0b\x00" + struct.pack(">i", 5), "unknown element type"),
        (header() + b"\x0f\x00\x02\x0c" + struct.pack(">i", -1), "container of -1"),
        (header() + b"\x0b\x00\x01" + struct.pack(">i", -5), "string of -5"),
        (header() + b"\x07\x00\x01", "unknown field type 7"),
        (header() + b"\x0c\x00\x01" * 100, "nested too deeply"),
    ],
)
def test_refuses_malformed_requests(message, problem):
    with pytest.raises(Malformed, match=problem):
        message_end(message)


@pytest.mark.parametrize("sort_columns", [False, True])
def test_direct_scanner_reply_matches_thriftpy2(sort_columns):
    from Hbase_thrift import TCell, TColumn, TRowResult
    from thriftpy2.protocol import TCyBinaryProtocol
    from thriftpy2.thrift import TMessageType
    from thriftpy2.transport import TCyMemoryBuffer

    from devstack.hbase_gateway.wire import ColumnNameCache, encode_row_results

    rows = [
        (b"r1", [(b"cf", b"", 1, b""), (b"cf", b"a", 2**62, b"\x00\xff" * 40)]),
        (b"\x00\xffbinary-row", [(b"cf2", b"q:with:colons", 1_700_000_000_000, b"v" * 70000)]),
    ]
    expected_rows = []
    for row, cells in rows:
        if sort_columns:
            expected_rows.append(TRowResult(row=row, sortedColumns=[
                TColumn(columnName=f + b":" + q, cell=TCell(value=v, timestamp=ts)) for f, q, ts, v in cells]))
        else:
            expected_rows.append(TRowResult(row=row, columns={
                f + b":" + q: TCell(value=v, timestamp=ts) for f, q, ts, v in cells}))
    reply = TCyMemoryBuffer()
    proto = TCyBinaryProtocol(reply, decode_response=False)
    proto.write_message_begin("scannerGetList", TMessageType.REPLY, 42)
    Hbase.scannerGetList_result(success=expected_rows).write(proto)
    proto.write_message_end()
    assert encode_row_results("scannerGetList", 42, rows, sort_columns, ColumnNameCache()) == reply.getvalue()
