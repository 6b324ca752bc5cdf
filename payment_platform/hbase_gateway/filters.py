"""HBase's filter language (the `filterString` of a Thrift scan), parsed and evaluated one row at a time.

Grammar as in the HBase reference guide ("Thrift API and Filter Language"): `Name(arg, ...)`, combined with
AND / OR (AND binds tighter), the unary SKIP and WHILE, and parentheses. Arguments are quoted strings
('' escapes a quote), integers, booleans and comparison operators; comparators are quoted
`binary:`, `binaryprefix:`, `substring:` (case-insensitive) and `regexstring:`.

A filter maps (row key, cells of that row) to the cells it lets through; an empty result leaves the row
out. Cells are (family, qualifier, timestamp, value) in HBase's order. `done` turns true when the
filter will accept nothing more (PageFilter, WHILE, InclusiveStopFilter), which ends the scan.
A filter name not listed in FILTERS is refused with FilterError naming it, never ignored.
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


# name -> (class, argument kinds); kinds: s=string, i=int, b=bool, o=compare operator, c=comparator.
# A trailing '?' group is optional (all or nothing), '*' repeats the last kind.
FILTERS = {
    b"PrefixFilter": (PrefixFilter, ["s"], []),
    b"KeyOnlyFilter": (KeyOnlyFilter, [], ["b"]),
    b"FirstKeyOnlyFilter": (FirstKeyOnlyFilter, [], []),
    b"PageFilter": (PageFilter, ["i"], []),
    b"ColumnPrefixFilter": (ColumnPrefixFilter, ["s"], []),
    b"MultipleColumnPrefixFilter": (MultipleColumnPrefixFilter, ["s*"], []),
    b"ColumnRangeFilter": (ColumnRangeFilter, ["s", "b", "s", "b"], []),
    b"ColumnCountGetFilter": (ColumnCountGetFilter, ["i"], []),
    b"ColumnPaginationFilter": (ColumnPaginationFilter, ["i", "i"], []),
    b"InclusiveStopFilter": (InclusiveStopFilter, ["s"], []),
    b"RowFilter": (RowFilter, ["o", "c"], []),
    b"FamilyFilter": (FamilyFilter, ["o", "c"], []),
    b"QualifierFilter": (QualifierFilter, ["o", "c"], []),
    b"ValueFilter": (ValueFilter, ["o", "c"], []),
    b"SingleColumnValueFilter": (SingleColumnValueFilter, ["s", "s", "o", "c"], ["b", "b"]),
    b"SingleColumnValueExcludeFilter": (SingleColumnValueExcludeFilter, ["s", "s", "o", "c"], ["b", "b"]),
    b"DependentColumnFilter": (DependentColumnFilter, ["s", "s"], ["b", "o", "c"]),
    b"TimestampsFilter": (TimestampsFilter, ["i*"], []),
}


# ---------------------------------------------------------------- parser
_TOKEN = re.compile(
    rb"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op><=|>=|!=|<|>|=)|(?P<punct>[(),])"
    rb"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>-?\d+))"
)


def _tokens(text: bytes) -> list:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"Incorrect filter string {text.decode('latin-1')!r} near position {pos}")
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "str":
            value = value[1:-1].replace(b"''", b"'")
        out.append((kind, value))
        pos = m.end()
        while pos < len(text) and text[pos : pos + 1].isspace():
            pos += 1
    return out


class _Parser:
    def __init__(self, text: bytes):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self):
        tok = self.peek()
        if tok[0] is None:
            raise FilterError(f"Incorrect filter string {self.text.decode('latin-1')!r}: unexpected end")
        self.i += 1
        return tok

    def expect(self, value: bytes):
        kind, got = self.take()
        if got != value:
            raise FilterError(
                f"Incorrect filter string {self.text.decode('latin-1')!r}: expected {value.decode()!r},"
                f" got {got.decode('latin-1') if isinstance(got, bytes) else got!r}"
            )

    def parse(self) -> Filter:
        result = self.or_expr()
        if self.i != len(self.toks):
            raise FilterError(f"Incorrect filter string {self.text.decode('latin-1')!r}: trailing input")
        return result

    def _is_word(self, word: bytes) -> bool:
        kind, value = self.peek()
        return kind == "word" and value.upper() == word

    def or_expr(self) -> Filter:
        parts = [self.and_expr()]
        while self._is_word(b"OR"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else OrFilter(parts)

    def and_expr(self) -> Filter:
        parts = [self.unary()]
        while self._is_word(b"AND"):
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else AndFilter(parts)

    def unary(self) -> Filter:
        if self._is_word(b"SKIP"):
            self.take()
            return SkipFilter(self.unary())
        if self._is_word(b"WHILE"):
            self.take()
            return WhileMatchFilter(self.unary())
        kind, value = self.peek()
        if kind == "punct" and value == b"(":
            self.take()
            inner = self.or_expr()
            self.expect(b")")
            return inner
        if kind == "word":
            return self.simple()
        raise FilterError(f"Incorrect filter string {self.text.decode('latin-1')!r}: expected a filter name")

    def simple(self) -> Filter:
        _, name = self.take()
        if name not in FILTERS:
            raise FilterError(f"Filter Name {name.decode('latin-1')} not supported")
        self.expect(b"(")
        args = []
        if self.peek() != ("punct", b")"):
            while True:
                args.append(self.take())
                kind, value = self.take()
                if value == b")":
                    break
                if value != b",":
                    raise FilterError(f"{name.decode()}: expected ',' or ')' between arguments")
        else:
            self.take()
        cls, required, optional = FILTERS[name]
        return cls(*_convert(name, args, required, optional))


def _convert(name: bytes, args: list, required: list, optional: list) -> list:
    label = name.decode()
    if required and required[-1].endswith("*"):
        kinds = [required[-1][0]] * len(args)
        if not args:
            raise FilterError(f"{label} expects at least one argument")
    elif len(args) == len(required):
        kinds = required
    elif optional and len(args) == len(required) + len(optional):
        kinds = required + optional
    elif name == b"DependentColumnFilter" and len(args) == 3:
        kinds = required + optional[:1]
    else:
        expected = str(len(required)) + (f" or {len(required) + len(optional)}" if optional else "")
        raise FilterError(f"{label} expects {expected} arguments, got {len(args)}")
    out = []
    for (tok_kind, value), kind in zip(args, kinds):
        if kind in ("s", "c"):
            if tok_kind != "str":
                raise FilterError(f"{label}: expected a quoted string, got {value.decode('latin-1')!r}")
            out.append(value)
        elif kind == "i":
            if tok_kind != "num":
                raise FilterError(f"{label}: expected an integer, got {value.decode('latin-1')!r}")
            out.append(int(value))
        elif kind == "b":
            if tok_kind != "word" or value.lower() not in (b"true", b"false"):
                raise FilterError(f"{label}: expected true or false, got {value.decode('latin-1')!r}")
            out.append(value.lower() == b"true")
        elif kind == "o":
            if tok_kind != "op":
                raise FilterError(f"{label}: expected a compare operator, got {value.decode('latin-1')!r}")
            out.append(value)
    return out


def parse_filter(text: bytes, reverse: bool = False) -> Filter:
    """Parses an HBase filter string; raises FilterError for anything unsupported or malformed."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    if not text.strip():
        raise FilterError("Incorrect filter string: empty")
    parsed = _Parser(text).parse()
    if reverse:
        _mark_reverse(parsed)
    return parsed


def _mark_reverse(node) -> None:
    if isinstance(node, PrefixFilter):
        node.reverse = True
    for child in getattr(node, "filters", ()):
        _mark_reverse(child)
    if hasattr(node, "inner"):
        _mark_reverse(node.inner)
