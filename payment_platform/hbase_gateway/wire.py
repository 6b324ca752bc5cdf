"""Reading Thrift requests off a socket without letting a malformed one hog the gateway.

thriftpy2's C decoder loops over a container's announced size even when its element type consumes no
bytes (a list of 2**31 "void" elements costs seconds of CPU with the GIL held, stalling every other
client). So each binary-protocol message is first walked here: its structure is checked (known types,
sizes that fit the bytes actually received, bounded nesting) while it is read from the socket, and only
a complete, well-formed message is handed to the fast decoder, from memory. The compact protocol is
decoded in Python; its container headers are checked the same way.
"""
from __future__ import annotations

import socket
import struct

from thriftpy2.protocol import TCompactProtocol
from thriftpy2.protocol.exc import TProtocolException
from thriftpy2.thrift import TType
from thriftpy2.transport import TTransportException

MAX_MESSAGE_BYTES = 256 * 1024 * 1024
MAX_DEPTH = 64
_VALID_TYPES = frozenset({TType.BOOL, TType.BYTE, TType.DOUBLE, TType.I16, TType.I32, TType.I64, TType.STRING,
                          TType.STRUCT, TType.MAP, TType.SET, TType.LIST})
_COMPACT_TYPES = _VALID_TYPES | {TType.BINARY}
_FIXED_WIDTH = {TType.BOOL: 1, TType.BYTE: 1, TType.I16: 2, TType.I32: 4, TType.I64: 8, TType.DOUBLE: 8}
_i32 = struct.Struct(">i")
_VERSION_MASK = -65536  # 0xffff0000 as a signed i32
_VERSION_1 = -2147418112  # 0x80010000 as a signed i32


class Incomplete(Exception):
    """More bytes are needed before the message can be judged."""


class Malformed(TProtocolException):
    pass


def message_end(buf, pos: int = 0) -> int:
    """Offset just after the binary-protocol message starting at pos; raises Incomplete or Malformed."""
    end = len(buf)
    if end - pos < 4:
        raise Incomplete
    header = _i32.unpack_from(buf, pos)[0]
    if header >= 0 or (header & _VERSION_MASK) != _VERSION_1:
        raise Malformed(TProtocolException.BAD_VERSION, f"not a Thrift binary message (header {header:#x})")
    pos += 4
    pos = _skip_string(buf, pos, end)  # method name
    if end - pos < 4:
        raise Incomplete
    return _skip_struct(buf, pos + 4, end, 0)  # seqid, then the arguments


def _skip_string(buf, pos: int, end: int) -> int:
    if end - pos < 4:
        raise Incomplete
    size = _i32.unpack_from(buf, pos)[0]
    if size < 0:
        raise Malformed(TProtocolException.NEGATIVE_SIZE, f"negative string size {size}")
    if size > MAX_MESSAGE_BYTES:
        raise Malformed(TProtocolException.SIZE_LIMIT, f"string of {size} bytes")
    pos += 4 + size
    if pos > end:
        raise Incomplete
    return pos


def _skip_struct(buf, pos: int, end: int, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise Malformed(TProtocolException.INVALID_DATA, "structures nested too deeply")
    unpack_i32 = _i32.unpack_from
    while True:
        if pos >= end:
            raise Incomplete
        ftype = buf[pos]
        if ftype == 0:  # STOP
            return pos + 1
        pos += 3  # type byte and i16 field id
        if ftype == 11:  # STRING, inlined: it is most of what happybase sends
            if end - pos < 4:
                raise Incomplete
            size = unpack_i32(buf, pos)[0]
            if size < 0 or size > MAX_MESSAGE_BYTES:
                raise Malformed(TProtocolException.NEGATIVE_SIZE, f"string of {size} bytes")
            pos += 4 + size
        elif ftype == 2:  # BOOL
            pos += 1
        else:
            pos = _skip_value(buf, pos, end, ftype, depth + 1)


def _skip_value(buf, pos: int, end: int, ttype: int, depth: int) -> int:
    width = _FIXED_WIDTH.get(ttype)
    if width is not None:
        pos += width
        if pos > end:
            raise Incomplete
        return pos
    if ttype == TType.STRING:
        return _skip_string(buf, pos, end)
    if ttype == TType.STRUCT:
        return _skip_struct(buf, pos, end, depth)
    if ttype in (TType.LIST, TType.SET):
        if end - pos < 5:
            raise Incomplete
        etype = buf[pos]
        size = _i32.unpack_from(buf, pos + 1)[0]
        pos += 5
        _check_container(etype, etype, size)
        width = _FIXED_WIDTH.get(etype)
        if width is not None:
            pos += width * size
            if pos > end:
                raise Incomplete
            return pos
        if etype == TType.STRUCT:
            for _ in range(size):
                pos = _skip_struct(buf, pos, end, depth + 1)
        else:
            for _ in range(size):
                pos = _skip_value(buf, pos, end, etype, depth + 1)
        return pos
    if ttype == TType.MAP:
        if end - pos < 6:
            raise Incomplete
        ktype, vtype = buf[pos], buf[pos + 1]
        size = _i32.unpack_from(buf, pos + 2)[0]
        pos += 6
        _check_container(ktype, vtype, size)
        for _ in range(size):
            pos = _skip_value(buf, pos, end, ktype, depth + 1)
            pos = _skip_value(buf, pos, end, vtype, depth + 1)
        return pos
    raise Malformed(TProtocolException.INVALID_DATA, f"unknown field type {ttype}")


def _check_container(ktype: int, vtype: int, size: int, valid=_VALID_TYPES) -> None:
    if ktype not in valid or vtype not in valid:
        raise Malformed(TProtocolException.INVALID_DATA, f"container of unknown element type {ktype}/{vtype}")
    if size < 0 or size > MAX_MESSAGE_BYTES:
        raise Malformed(TProtocolException.NEGATIVE_SIZE, f"container of {size} elements")


class MessageReader:
    """Pulls whole, checked binary-protocol messages off a socket (buffered or framed transport)."""

    def __init__(self, sock: socket.socket, framed: bool):
        self.sock = sock
        self.framed = framed
        self.buffer = bytearray()

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 18)
        if not chunk:
            raise TTransportException(TTransportException.END_OF_FILE, "the client closed the connection")
        self.buffer += chunk
        if len(self.buffer) > MAX_MESSAGE_BYTES + 4:
            raise Malformed(TProtocolException.SIZE_LIMIT, "message too large")

    def next_message(self) -> bytes:
        if self.framed:
            while len(self.buffer) < 4:
                self._fill()
            size = _i32.unpack_from(self.buffer, 0)[0]
            if size <= 0 or size > MAX_MESSAGE_BYTES:
                raise Malformed(TProtocolException.SIZE_LIMIT, f"frame of {size} bytes")
            while len(self.buffer) < 4 + size:
                self._fill()
            frame = bytes(self.buffer[4 : 4 + size])
            del self.buffer[: 4 + size]
            try:
                end = message_end(frame)
            except Incomplete:
                raise Malformed(TProtocolException.INVALID_DATA, "frame shorter than its message") from None
            if end != size:
                raise Malformed(TProtocolException.INVALID_DATA, "frame longer than its message")
            return frame
        while True:
            try:
                end = message_end(self.buffer)
                break
            except Incomplete:
                self._fill()
        message = bytes(self.buffer[:end])
        del self.buffer[:end]
        return message


class CheckedCompactProtocol(TCompactProtocol):
    """Compact protocol that refuses containers of unknown element types or absurd sizes, hands binaries
    over undecoded, and method names as text (as the binary protocol does)."""

    def __init__(self, trans):
        super().__init__(trans, decode_response=False)

    def read_message_begin(self):
        name, kind, seqid = super().read_message_begin()
        return (name.decode("utf-8", "replace") if isinstance(name, bytes) else name), kind, seqid

    def _read_collection_begin(self):
        etype, size = super()._read_collection_begin()
        _check_container(etype, etype, size, _COMPACT_TYPES)
        return etype, size

    def _read_map_begin(self):
        ktype, vtype, size = super()._read_map_begin()
        if size:
            _check_container(ktype, vtype, size, _COMPACT_TYPES)
        return ktype, vtype, size
