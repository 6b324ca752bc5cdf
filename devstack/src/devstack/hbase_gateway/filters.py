"""HBase's filters, evaluated one row at a time (`filter_language` parses a scan's `filterString` into them).

Comparators are `binary:`, `binaryprefix:`, `substring:` (case-insensitive) and `regexstring:`.
A filter maps (row key, cells of that row) to the cells it lets through; an empty result leaves the row
out. Cells are (family, qualifier, timestamp, value) in HBase's order. `done` turns true when the
filter will accept nothing more (PageFilter, WHILE, InclusiveStopFilter), which ends the scan.
"""
from __future__ import annotations

import re


class FilterError(ValueError):
    """An unsupported or malformed filter string (the handler answers IllegalArgument)."""


# ---------------------------------------------------------------- comparison
_OPS = {
    b"<": lambda c: c < 0,
    b"<=": lambda c: c <= 0,
    b"=": lambda c: c == 0,
    b"!=": lambda c: c != 0,
    b">": lambda c: c > 0,
    b">=": lambda c: c >= 0,
}


def _cmp(a: bytes, b: bytes) -> int:
    return (a > b) - (a < b)


class Comparison:
    """`data OP comparator`, e.g. RowFilter(<=, 'binary:abc') keeps rows whose key is <= abc."""

    def __init__(self, op: bytes, comparator: bytes):
        if op not in _OPS:
            raise FilterError(f"Invalid compare operator {op.decode('latin-1')!r}")
        kind, sep, value = comparator.partition(b":")
        if not sep:
            raise FilterError(f"Invalid comparator {comparator.decode('latin-1')!r}: expected type:value")
        kind = kind.lower()
        self.test = _OPS[op]
        if kind in (b"substring", b"regexstring") and op not in (b"=", b"!="):
            raise FilterError(
                "Only EQUAL or NOT_EQUAL comparisons are valid with this comparator: "
                + kind.decode("latin-1")
            )
        if kind == b"binary":
            self.compare = lambda data: _cmp(data, value)
        elif kind == b"binaryprefix":
            self.compare = lambda data: _cmp(data[: len(value)], value)
        elif kind == b"substring":
            needle = value.lower()
            self.compare = lambda data: 0 if needle in data.lower() else 1
        elif kind == b"regexstring":
            try:
                pattern = re.compile(value, re.DOTALL)
            except re.error as error:
                raise FilterError(f"Invalid regular expression {value!r}: {error}") from None
            self.compare = lambda data: 0 if pattern.search(data) else 1
        else:
            raise FilterError(f"Unsupported comparator type {kind.decode('latin-1')!r}")

    def __call__(self, data: bytes) -> bool:
        return self.test(self.compare(data))


# ---------------------------------------------------------------- filters
class Filter:
    done = False

    def apply(self, row: bytes, cells: list) -> list:
        raise NotImplementedError


class PrefixFilter(Filter):
    reverse = False  # set by the scanner: a forward scan is over once past the prefix

    def __init__(self, prefix: bytes):
        self.prefix = prefix

    def apply(self, row, cells):
        if row.startswith(self.prefix):
            return cells
        if not self.reverse and row > self.prefix:
            self.done = True
        return []


class KeyOnlyFilter(Filter):
    def __init__(self, length_as_value: bool = False):
        self.length_as_value = length_as_value

    def apply(self, row, cells):
        if self.length_as_value:
            return [(f, q, ts, len(v).to_bytes(4, "big")) for f, q, ts, v in cells]
        return [(f, q, ts, b"") for f, q, ts, _v in cells]


class FirstKeyOnlyFilter(Filter):
    def apply(self, row, cells):
        return cells[:1]


class PageFilter(Filter):
    def __init__(self, size: int):
        if size < 0:
            raise FilterError("PageFilter: page size must be >= 0")
        self.size = size
        self.accepted = 0
        self.done = size == 0

    def apply(self, row, cells):
        if not cells or self.accepted >= self.size:
            return []
        self.accepted += 1
        if self.accepted >= self.size:
            self.done = True
        return cells


class ColumnPrefixFilter(Filter):
    def __init__(self, prefix: bytes):
        self.prefix = prefix

    def apply(self, row, cells):
        return [c for c in cells if c[1].startswith(self.prefix)]


class MultipleColumnPrefixFilter(Filter):
    def __init__(self, *prefixes: bytes):
        self.prefixes = tuple(prefixes)

    def apply(self, row, cells):
        return [c for c in cells if c[1].startswith(self.prefixes)]


class ColumnRangeFilter(Filter):
    def __init__(self, low: bytes, low_inclusive: bool, high: bytes, high_inclusive: bool):
        self.low, self.low_inclusive, self.high, self.high_inclusive = low, low_inclusive, high, high_inclusive

    def _keep(self, q: bytes) -> bool:
        if self.low:
            if q < self.low or (q == self.low and not self.low_inclusive):
                return False
        if self.high:
            if q > self.high or (q == self.high and not self.high_inclusive):
                return False
        return True

    def apply(self, row, cells):
        return [c for c in cells if self._keep(c[1])]


class ColumnCountGetFilter(Filter):
    def __init__(self, limit: int):
        self.limit = limit

    def apply(self, row, cells):
        return _first_columns(cells, 0, self.limit)


class ColumnPaginationFilter(Filter):
    def __init__(self, limit: int, offset: int):
        self.limit, self.offset = limit, offset

    def apply(self, row, cells):
        return _first_columns(cells, self.offset, self.limit)


def _first_columns(cells: list, offset: int, limit: int) -> list:
    out, index, last = [], -1, None
    for cell in cells:
        if cell[:2] != last:
            last = cell[:2]
            index += 1
        if offset <= index < offset + limit:
            out.append(cell)
    return out


class InclusiveStopFilter(Filter):
    def __init__(self, stop: bytes):
        self.stop = stop

    def apply(self, row, cells):
        if row > self.stop:
            self.done = True
            return []
        return cells


class RowFilter(Filter):
    def __init__(self, op, comparator):
        self.test = Comparison(op, comparator)

    def apply(self, row, cells):
        return cells if self.test(row) else []


class _CellCompareFilter(Filter):
    part = 0

    def __init__(self, op, comparator):
        self.test = Comparison(op, comparator)

    def apply(self, row, cells):
        part, test = self.part, self.test
        return [c for c in cells if test(c[part])]


class FamilyFilter(_CellCompareFilter):
    part = 0


class QualifierFilter(_CellCompareFilter):
    part = 1


class ValueFilter(_CellCompareFilter):
    part = 3


class SingleColumnValueFilter(Filter):
    """Keeps a row whose (newest) family:qualifier value matches; a row without the column is kept unless
    filterIfMissing is true (HBase's default is false)."""

    exclude_column = False

    def __init__(self, family, qualifier, op, comparator, filter_if_missing=False, latest_version_only=True):
        self.family, self.qualifier = family, qualifier
        self.test = Comparison(op, comparator)
        self.filter_if_missing = filter_if_missing
        self.latest_version_only = latest_version_only

    def apply(self, row, cells):
        values = [c[3] for c in cells if c[0] == self.family and c[1] == self.qualifier]
        if not values:
            return [] if self.filter_if_missing else cells
        matched = self.test(values[0]) if self.latest_version_only else any(self.test(v) for v in values)
        if not matched:
            return []
        if self.exclude_column:
            return [c for c in cells if not (c[0] == self.family and c[1] == self.qualifier)]
        return cells


class SingleColumnValueExcludeFilter(SingleColumnValueFilter):
    exclude_column = True


class DependentColumnFilter(Filter):
    """Keeps only cells whose timestamp equals that of the reference column (optionally dropping it)."""

    def __init__(self, family, qualifier, drop_dependent=False, op=None, comparator=None):
        self.family, self.qualifier, self.drop = family, qualifier, drop_dependent
        self.test = Comparison(op, comparator) if op is not None else None

    def apply(self, row, cells):
        stamps = {c[2] for c in cells if c[0] == self.family and c[1] == self.qualifier
                  and (self.test is None or self.test(c[3]))}
        out = [c for c in cells if c[2] in stamps]
        if self.drop:
            out = [c for c in out if not (c[0] == self.family and c[1] == self.qualifier)]
        return out


class TimestampsFilter(Filter):
    def __init__(self, *stamps: int):
        self.stamps = frozenset(stamps)

    def apply(self, row, cells):
        return [c for c in cells if c[2] in self.stamps]


class AndFilter(Filter):
    """FilterList MUST_PASS_ALL: each filter sees what the previous ones let through."""

    def __init__(self, filters):
        self.filters = filters

    @property
    def done(self):
        return any(f.done for f in self.filters)

    def apply(self, row, cells):
        for f in self.filters:
            if not cells:
                return []
            cells = f.apply(row, cells)
        return cells


class OrFilter(Filter):
    """FilterList MUST_PASS_ONE: a cell is kept when any filter keeps it."""

    def __init__(self, filters):
        self.filters = filters

    @property
    def done(self):
        return all(f.done for f in self.filters)

    def apply(self, row, cells):
        kept = {}
        for f in self.filters:
            if f.done:
                continue
            for cell in f.apply(row, cells):
                kept.setdefault(cell[:3], cell)
        if not kept:
            return []
        return [kept[c[:3]] for c in cells if c[:3] in kept]


class SkipFilter(Filter):
    """SKIP: the row is left out as soon as the wrapped filter drops any of its cells."""

    def __init__(self, inner):
        self.inner = inner

    def apply(self, row, cells):
        out = self.inner.apply(row, cells)
        return out if len(out) == len(cells) else []


class WhileMatchFilter(Filter):
    """WHILE: the scan ends at the first row where the wrapped filter drops anything."""

    def __init__(self, inner):
        self.inner = inner
        self.done = False

    def apply(self, row, cells):
        if self.done:
            return []
        out = self.inner.apply(row, cells)
        if len(out) != len(cells) or self.inner.done:
            self.done = True
            return [] if len(out) != len(cells) else out
        return out
