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


class Malformed(TProtocolException):
    pass


_STRUCT, _LIST, _MAP = 0, 1, 2
_STRUCT_FRAME = (_STRUCT,)  # struct frames carry no state: one shared object


class MessageWalk:
    """Resumable check of one binary-protocol message arriving in pieces.

    advance(buf) walks as far as the bytes received allow and returns the message's length once it is
    complete (None until then). Each step (one field or element) is taken whole or not at all, so the
    walk resumes where it stopped: a large message costs one pass, however it is split.
    """

    __slots__ = ("pos", "stack")

    def __init__(self):
        self.pos = 0
        self.stack = None

    def advance(self, buf) -> int | None:
        end = len(buf)
        if self.stack is None:
            if end < 8:
                return None
            header = _i32.unpack_from(buf, 0)[0]
            if header >= 0 or (header & _VERSION_MASK) != _VERSION_1:
                raise Malformed(TProtocolException.BAD_VERSION, f"not a Thrift binary message (header {header:#x})")
            name_size = _i32.unpack_from(buf, 4)[0]
            if name_size < 0 or name_size > 1024:
                raise Malformed(TProtocolException.INVALID_DATA, f"method name of {name_size} bytes")
            if end < 12 + name_size:
                return None
            self.pos = 12 + name_size  # header, name, seqid; then the arguments struct
            self.stack = [_STRUCT_FRAME]
        pos, stack = self.pos, self.stack
        unpack_i32 = _i32.unpack_from
        fixed_width = _FIXED_WIDTH
        while stack:
            frame = stack[-1]
            kind = frame[0]
            if kind == _STRUCT:
                # Fast lane for the fields happybase sends most (strings, bools): no frame work per field.
                while pos < end:
                    vtype = buf[pos]
                    if vtype == 11:
                        if pos + 7 > end:
                            break
                        size = unpack_i32(buf, pos + 3)[0]
                        if size < 0 or size > MAX_MESSAGE_BYTES:
                            raise Malformed(TProtocolException.NEGATIVE_SIZE, f"string of {size} bytes")
                        if pos + 7 + size > end:
                            break
                        pos += 7 + size
                    elif vtype == 2:
                        if pos + 4 > end:
                            break
                        pos += 4
                    else:
                        break
                if pos >= end:
                    break
                vtype = buf[pos]
                if vtype == 0:  # STOP
                    pos += 1
                    stack.pop()
                    continue
                vpos = pos + 3  # type byte and i16 field id
            elif kind == _LIST:
                if frame[2] == 0:
                    stack.pop()
                    continue
                vtype, vpos = frame[1], pos
            else:
                if frame[3] == 0:
                    stack.pop()
                    continue
                vtype, vpos = (frame[1] if frame[3] % 2 == 0 else frame[2]), pos
            push = None
            if vtype == 11:  # STRING: most of what happybase sends
                if vpos + 4 > end:
                    break
                size = unpack_i32(buf, vpos)[0]
                if size < 0 or size > MAX_MESSAGE_BYTES:
                    raise Malformed(TProtocolException.NEGATIVE_SIZE, f"string of {size} bytes")
                new_pos = vpos + 4 + size
                if new_pos > end:
                    break
            elif vtype in fixed_width:
                new_pos = vpos + fixed_width[vtype]
                if new_pos > end:
                    break
            elif vtype == 12:  # STRUCT
                new_pos = vpos
                push = _STRUCT_FRAME
            elif vtype == 15 or vtype == 14:  # LIST, SET
                if vpos + 5 > end:
                    break
                etype = buf[vpos]
                size = unpack_i32(buf, vpos + 1)[0]
                _check_container(etype, etype, size)
                width = fixed_width.get(etype)
                if width is not None:
                    new_pos = vpos + 5 + width * size
                    if new_pos > end:
                        break
                else:
                    new_pos = vpos + 5
                    push = [_LIST, etype, size]
            elif vtype == 13:  # MAP
                if vpos + 6 > end:
                    break
                ktype, vvtype = buf[vpos], buf[vpos + 1]
                size = unpack_i32(buf, vpos + 2)[0]
                _check_container(ktype, vvtype, size)
                new_pos = vpos + 6
                push = [_MAP, ktype, vvtype, 2 * size]
            else:
                raise Malformed(TProtocolException.INVALID_DATA, f"unknown field type {vtype}")
            # The step is complete: commit it.
            if kind == _LIST:
                frame[2] -= 1
            elif kind == _MAP:
                frame[3] -= 1
            pos = new_pos
            if push is not None:
                if len(stack) >= MAX_DEPTH:
                    raise Malformed(TProtocolException.INVALID_DATA, "structures nested too deeply")
                stack.append(push)
        self.pos = pos
        return None if stack else pos


def message_end(buf) -> int | None:
    """Length of the complete binary-protocol message at the start of buf, None if it is incomplete."""
    return MessageWalk().advance(buf)


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
            end = message_end(frame)
            if end is None:
                raise Malformed(TProtocolException.INVALID_DATA, "frame shorter than its message")
            if end != size:
                raise Malformed(TProtocolException.INVALID_DATA, "frame longer than its message")
            return frame
        walk = MessageWalk()
        while True:
            end = walk.advance(self.buffer)
            if end is not None:
                break
            self._fill()
        message = bytes(self.buffer[:end])
        del self.buffer[:end]
        return message


_pack_i32 = _i32.pack
_REPLY_HEADER = _pack_i32(_VERSION_1 | 2)  # strict binary protocol, message type REPLY


class ColumnNameCache(dict):
    """(family, qualifier) -> the length-prefixed b'family:qualifier' of the binary protocol."""

    def __missing__(self, key):
        if len(self) > 100_000:
            self.clear()
        name = key[0] + b":" + key[1]
        encoded = self[key] = _pack_i32(len(name)) + name
        return encoded


def encode_row_results(api: str, seqid: int, rows: list, sort_columns: bool, names: ColumnNameCache) -> bytes:
    """The binary-protocol reply of scannerGetList/scannerGet carrying `rows` ([(row, cells)]), written
    directly: three times faster than building TRowResult objects for thriftpy2 to encode, and the same
    bytes (test_wire checks it against thriftpy2)."""
    name = api.encode()
    out = bytearray(_REPLY_HEADER)
    out += _pack_i32(len(name))
    out += name
    out += _pack_i32(seqid)
    out += b"\x0f\x00\x00\x0c"  # result field 0 "success": list<struct>
    out += _pack_i32(len(rows))
    for row, cells in rows:
        out += b"\x0b\x00\x01"  # TRowResult.row
        out += _pack_i32(len(row))
        out += row
        if sort_columns:
            out += b"\x0f\x00\x03\x0c"  # TRowResult.sortedColumns: list<TColumn>
            out += _pack_i32(len(cells))
            for family, qualifier, ts, value in cells:
                out += b"\x0b\x00\x01"  # TColumn.columnName
                out += names[family, qualifier]
                out += b"\x0c\x00\x02\x0b\x00\x01"  # TColumn.cell, TCell.value
                out += _pack_i32(len(value))
                out += value
                out += b"\x0a\x00\x02"  # TCell.timestamp
                out += ts.to_bytes(8, "big", signed=True)
                out += b"\x00\x00"  # end of TCell, end of TColumn
        else:
            out += b"\x0d\x00\x02\x0b\x0c"  # TRowResult.columns: map<binary, TCell>
            out += _pack_i32(len(cells))
            for family, qualifier, ts, value in cells:
                out += names[family, qualifier]
                out += b"\x0b\x00\x01"  # TCell.value
                out += _pack_i32(len(value))
                out += value
                out += b"\x0a\x00\x02"  # TCell.timestamp
                out += ts.to_bytes(8, "big", signed=True)
                out += b"\x00"  # end of TCell
        out += b"\x00"  # end of TRowResult
    out += b"\x00"  # end of the result struct
    return bytes(out)


def message_name(message: bytes) -> tuple[bytes, int]:
    """(method name, seqid) of a checked binary-protocol message."""
    size = _i32.unpack_from(message, 4)[0]
    return message[8 : 8 + size], _i32.unpack_from(message, 8 + size)[0]


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
