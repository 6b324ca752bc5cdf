"""Unit tests of the filter-language parser and evaluator (no server)."""
from __future__ import annotations

import pytest

from devstack.hbase_gateway.filters import (
    AndFilter,
    FilterError,
    OrFilter,
    PrefixFilter,
    SkipFilter,
    WhileMatchFilter,
)
from devstack.hbase_gateway.filter_language import parse_filter

CELLS = [(b"cf", b"a", 2, b"x"), (b"cf", b"b", 2, b"y"), (b"cf2", b"a", 1, b"z")]


def test_precedence_and_parentheses():
    f = parse_filter(b"PrefixFilter('a') OR PrefixFilter('b') AND KeyOnlyFilter()")
    assert isinstance(f, OrFilter) and isinstance(f.filters[1], AndFilter)
    f = parse_filter(b"(PrefixFilter('a') OR PrefixFilter('b')) AND KeyOnlyFilter()")
    assert isinstance(f, AndFilter) and isinstance(f.filters[0], OrFilter)
    f = parse_filter(b"SKIP WHILE PrefixFilter('a')")
    assert isinstance(f, SkipFilter) and isinstance(f.inner, WhileMatchFilter)


def test_whitespace_and_quotes():
    f = parse_filter(b"  PrefixFilter  (  'it''s'  )  ")
    assert isinstance(f, PrefixFilter) and f.prefix == b"it's"
    assert parse_filter("PrefixFilter('caf\u00e9')").prefix == "caf\u00e9".encode()


def test_cell_level_evaluation():
    assert parse_filter(b"QualifierFilter(=, 'binary:a')").apply(b"r", CELLS) == [CELLS[0], CELLS[2]]
    assert parse_filter(b"FamilyFilter(!=, 'binary:cf')").apply(b"r", CELLS) == [CELLS[2]]
    assert parse_filter(b"ValueFilter(>, 'binary:x')").apply(b"r", CELLS) == CELLS[1:]
    assert parse_filter(b"ColumnCountGetFilter(1)").apply(b"r", CELLS) == CELLS[:1]
    assert parse_filter(b"ColumnPaginationFilter(1, 1)").apply(b"r", CELLS) == [CELLS[1]]
    assert parse_filter(b"MultipleColumnPrefixFilter('b', 'zz')").apply(b"r", CELLS) == [CELLS[1]]
    assert parse_filter(b"KeyOnlyFilter(true)").apply(b"r", CELLS)[0][3] == b"\x00\x00\x00\x01"
    assert parse_filter(b"InclusiveStopFilter('m')").apply(b"m", CELLS) == CELLS
    stop = parse_filter(b"InclusiveStopFilter('m')")
    assert stop.apply(b"n", CELLS) == [] and stop.done


def test_page_filter_counts_rows():
    page = parse_filter(b"PageFilter(2)")
    assert page.apply(b"r1", CELLS) and page.apply(b"r2", CELLS) and page.done
    assert page.apply(b"r3", CELLS) == []


@pytest.mark.parametrize(
    "text, message",
    [
        (b"", "empty"),
        (b"Nope()", "Filter Name Nope not supported"),
        (b"PrefixFilter('a'", "unexpected end"),
        (b"PrefixFilter('a') XOR PrefixFilter('b')", "trailing"),
        (b"PrefixFilter(1)", "quoted string"),
        (b"PageFilter()", "expects 1"),
        (b"RowFilter(~, 'binary:a')", "Incorrect filter string"),
        (b"RowFilter(=, 'unknown:a')", "comparator"),
        (b"ValueFilter(<, 'regexstring:a')", "EQUAL"),
        (b"ValueFilter(=, 'regexstring:(')", "regular expression"),
        (b"ColumnRangeFilter('a', yes, 'b', false)", "true or false"),
    ],
)
def test_refusals_name_the_problem(text, message):
    with pytest.raises(FilterError, match=message):
        parse_filter(text)
