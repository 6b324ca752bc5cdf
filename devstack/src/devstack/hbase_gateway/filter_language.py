"""HBase's filter language (the `filterString` of a Thrift scan), parsed into the filters of `filters`.

Grammar as in the HBase reference guide ("Thrift API and Filter Language"): `Name(arg, ...)`, combined with
AND / OR (AND binds tighter), the unary SKIP and WHILE, and parentheses. Arguments are quoted strings
('' escapes a quote), integers, booleans and comparison operators; comparators are quoted.
A filter name not listed in FILTERS is refused with FilterError naming it, never ignored.
"""
from __future__ import annotations

import re

from devstack.hbase_gateway.filters import (
    AndFilter,
    ColumnCountGetFilter,
    ColumnPaginationFilter,
    ColumnPrefixFilter,
    ColumnRangeFilter,
    DependentColumnFilter,
    FamilyFilter,
    Filter,
    FilterError,
    FirstKeyOnlyFilter,
    InclusiveStopFilter,
    KeyOnlyFilter,
    MultipleColumnPrefixFilter,
    OrFilter,
    PageFilter,
    PrefixFilter,
    QualifierFilter,
    RowFilter,
    SingleColumnValueExcludeFilter,
    SingleColumnValueFilter,
    SkipFilter,
    TimestampsFilter,
    ValueFilter,
    WhileMatchFilter,
)


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
        return self._joined(b"OR", self.and_expr, OrFilter)

    def and_expr(self) -> Filter:
        return self._joined(b"AND", self.unary, AndFilter)

    def _joined(self, word: bytes, operand, combine) -> Filter:
        """operand (word operand)*: one operand as it is, several combined."""
        parts = [operand()]
        while self._is_word(word):
            self.take()
            parts.append(operand())
        return parts[0] if len(parts) == 1 else combine(parts)

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
