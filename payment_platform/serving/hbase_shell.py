"""Looking inside HBase the way the HBase shell does (`list`, `describe`, `count`, `get`, `scan`), over happybase:
works against the embedded gateway and a real HBase Thrift server alike. Used by `payment-platform hbase ...`."""
from __future__ import annotations

from typing import Iterator, Sequence


class UnknownTable(LookupError):
    pass


def show_bytes(value: bytes) -> str:
    """Text when the bytes are UTF-8 without control characters, else the HBase shell's \\xNN escapes."""
    try:
        text = value.decode("utf-8")
        if not any(ord(c) < 32 and c not in "\t" for c in text):
            return text
    except UnicodeDecodeError:
        pass
    return "".join(chr(b) if 32 <= b < 127 and b != 0x5C else f"\\x{b:02X}" for b in value)


def _names(hbase) -> list[str]:
    return sorted(t.decode() if isinstance(t, bytes) else t for t in hbase.connection().tables())


def tables(hbase) -> list[str]:
    return _names(hbase)


def _table(hbase, name: str):
    if name not in _names(hbase):
        raise UnknownTable(f"no table {name!r} (tables: {', '.join(_names(hbase)) or 'none'})")
    return hbase.table(name)


def describe(hbase, name: str) -> dict:
    table = _table(hbase, name)
    families = {(k.decode() if isinstance(k, bytes) else k): {
        (a.decode() if isinstance(a, bytes) else a): (v.decode() if isinstance(v, bytes) else v) for a, v in spec.items()}
        for k, spec in table.families().items()}
    regions = [{k: (show_bytes(v) if isinstance(v, bytes) else v) for k, v in r.items()} for r in table.regions()]
    return {"table": name, "families": families, "regions": regions}


def count(hbase, name: str, batch_size: int = 5000) -> int:
    return sum(1 for _ in _table(hbase, name).scan(filter=b"KeyOnlyFilter()", batch_size=batch_size))


def get(hbase, name: str, row: bytes, columns: Sequence[bytes] | None = None) -> dict[bytes, bytes]:
    return _table(hbase, name).row(row, columns=list(columns) if columns else None)


def scan(hbase, name: str, *, prefix: bytes | None = None, start: bytes | None = None, stop: bytes | None = None,
         columns: Sequence[bytes] | None = None, limit: int | None = None,
         reverse: bool = False) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
    table = _table(hbase, name)
    if prefix is not None and (start is not None or stop is not None):
        raise ValueError("--prefix cannot be combined with --start/--stop")
    options = dict(columns=list(columns) if columns else None, limit=limit, batch_size=min(limit or 1000, 1000))
    if prefix is not None:
        if reverse:  # from the highest key under the prefix down to (not including) the prefix itself
            return (item for item in table.scan(row_start=prefix + b"\xff" * 8, row_stop=prefix, reverse=True,
                                                **options) if item[0].startswith(prefix))
        return table.scan(row_prefix=prefix, **options)
    return table.scan(row_start=start, row_stop=stop, reverse=reverse, **options)
