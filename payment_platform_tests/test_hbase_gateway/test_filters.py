"""HBase filter strings on scans, and their refusal when unsupported."""
from __future__ import annotations

import pytest
from Hbase_thrift import IllegalArgument


@pytest.fixture
def people(table):
    data = {
        b"user1": {b"cf:name": b"Alice", b"cf:city": b"Paris", b"cf2:age": b"31"},
        b"user2": {b"cf:name": b"Bob", b"cf:city": b"Berlin"},
        b"user3": {b"cf:name": b"carol", b"cf2:age": b"25"},
        b"admin1": {b"cf:name": b"Root", b"cf:city": b"Paris"},
    }
    with table.batch(timestamp=1000) as batch:
        for key, cols in data.items():
            batch.put(key, cols)
    table.put(b"user4", {b"cf:name": b"Dave"}, timestamp=2000)
    return table


def rows(table, flt, **kw):
    return dict(table.scan(filter=flt, **kw))


def test_prefix_filter(people):
    assert list(rows(people, "PrefixFilter('user')")) == [b"user1", b"user2", b"user3", b"user4"]


def test_key_only_and_first_key_only(people):
    assert rows(people, "KeyOnlyFilter()")[b"user1"] == {b"cf:name": b"", b"cf:city": b"", b"cf2:age": b""}
    assert rows(people, "FirstKeyOnlyFilter()")[b"user1"] == {b"cf:city": b"Paris"}
    assert rows(people, "FirstKeyOnlyFilter() AND KeyOnlyFilter()")[b"user2"] == {b"cf:city": b""}


def test_page_filter(people):
    assert list(rows(people, "PageFilter(2)")) == [b"admin1", b"user1"]
    assert list(rows(people, "PrefixFilter('user') AND PageFilter(2)")) == [b"user1", b"user2"]


def test_column_prefix_and_range(people):
    assert rows(people, "ColumnPrefixFilter('ci')") == {
        b"admin1": {b"cf:city": b"Paris"}, b"user1": {b"cf:city": b"Paris"}, b"user2": {b"cf:city": b"Berlin"}}
    ranged = rows(people, "ColumnRangeFilter('age', true, 'city', false)")
    assert ranged == {b"user1": {b"cf2:age": b"31"}, b"user3": {b"cf2:age": b"25"}}
    assert rows(people, "ColumnRangeFilter('age', false, 'city', true)")[b"user1"] == {b"cf:city": b"Paris"}


@pytest.mark.parametrize(
    "flt, expected",
    [
        ("RowFilter(=, 'binary:user2')", [b"user2"]),
        ("RowFilter(<, 'binary:user2')", [b"admin1", b"user1"]),
        ("RowFilter(>=, 'binary:user3')", [b"user3", b"user4"]),
        ("RowFilter(!=, 'binaryprefix:user')", [b"admin1"]),
        ("RowFilter(=, 'substring:MIN')", [b"admin1"]),
        ("RowFilter(=, 'regexstring:^user[13]$')", [b"user1", b"user3"]),
    ],
)
def test_row_filter_comparators(people, flt, expected):
    assert list(rows(people, flt)) == expected


def test_qualifier_family_value_filters(people):
    assert rows(people, "QualifierFilter(=, 'binary:age')") == {
        b"user1": {b"cf2:age": b"31"}, b"user3": {b"cf2:age": b"25"}}
    assert set(rows(people, "FamilyFilter(=, 'binary:cf2')")) == {b"user1", b"user3"}
    assert rows(people, "ValueFilter(=, 'regexstring:^[A-Z]o')") == {
        b"user2": {b"cf:name": b"Bob"}, b"admin1": {b"cf:name": b"Root"}}
    assert rows(people, "ValueFilter(=, 'substring:PAR')") == {
        b"user1": {b"cf:city": b"Paris"}, b"admin1": {b"cf:city": b"Paris"}}


def test_single_column_value_filter(people):
    # filterIfMissing defaults to false: rows without cf:city pass.
    assert list(rows(people, "SingleColumnValueFilter('cf', 'city', =, 'binary:Paris')")) == [
        b"admin1", b"user1", b"user3", b"user4"]
    assert list(rows(people, "SingleColumnValueFilter('cf', 'city', =, 'binary:Paris', true, true)")) == [
        b"admin1", b"user1"]
    whole = rows(people, "SingleColumnValueFilter('cf', 'city', =, 'binary:Berlin', true, true)")
    assert whole == {b"user2": {b"cf:name": b"Bob", b"cf:city": b"Berlin"}}


def test_timestamps_filter(people):
    assert list(rows(people, "TimestampsFilter(2000)")) == [b"user4"]
    assert len(rows(people, "TimestampsFilter(1000, 2000)")) == 5


def test_and_or_parentheses(people):
    flt = "(PrefixFilter('user') AND ValueFilter(=, 'binary:Paris')) OR RowFilter(=, 'binary:user4')"
    assert rows(people, flt) == {b"user1": {b"cf:city": b"Paris"}, b"user4": {b"cf:name": b"Dave"}}
    # AND binds tighter than OR.
    flt = "RowFilter(=, 'binary:admin1') OR PrefixFilter('user') AND QualifierFilter(=, 'binary:age')"
    assert set(rows(people, flt)) == {b"admin1", b"user1", b"user3"}


def test_skip_and_while(people):
    # SKIP: the row goes as soon as one cell fails.
    assert list(rows(people, "SKIP ValueFilter(!=, 'binary:Paris')")) == [b"user2", b"user3", b"user4"]
    # WHILE: the scan stops at the first row that fails.
    assert list(rows(people, "WHILE RowFilter(<, 'binary:user2')")) == [b"admin1", b"user1"]


def test_filters_with_column_selection_and_reverse(people):
    assert list(rows(people, "PrefixFilter('user')", columns=[b"cf2"])) == [b"user1", b"user3"]
    assert list(rows(people, "PageFilter(2)", reverse=True)) == [b"user4", b"user3"]


def test_quoted_quotes(table):
    table.put(b"it's", {b"cf:a": b"x"})
    table.put(b"its", {b"cf:a": b"y"})
    assert list(rows(table, "RowFilter(=, 'binary:it''s')")) == [b"it's"]


@pytest.mark.parametrize(
    "flt, name",
    [
        ("FuzzyRowFilter('a')", "FuzzyRowFilter"),
        ("PrefixFilter('user') AND RandomRowFilter(0.5)", "RandomRowFilter"),
        ("NotAFilter()", "NotAFilter"),
    ],
)
def test_unsupported_filters_are_refused_by_name(people, flt, name):
    with pytest.raises(IllegalArgument, match=name):
        list(people.scan(filter=flt))


@pytest.mark.parametrize("flt", ["PrefixFilter(", "PrefixFilter('a') AND", "RowFilter(<, 'substring:a')",
                                 "PageFilter('x')", "RowFilter(=, 'nocomparator')"])
def test_malformed_filters_are_illegal_arguments(people, flt):
    with pytest.raises(IllegalArgument):
        list(people.scan(filter=flt))


def test_filters_see_older_versions_as_hbase(table):
    # HBase applies a scan's filter before counting versions: a ValueFilter can surface an older version.
    table.put(b"r", {b"cf:a": b"old"}, timestamp=1)
    table.put(b"r", {b"cf:a": b"new"}, timestamp=2)
    assert rows(table, "ValueFilter(=, 'binary:old')") == {b"r": {b"cf:a": b"old"}}
    assert dict(table.scan(filter="TimestampsFilter(1)", include_timestamp=True)) == {b"r": {b"cf:a": (b"old", 1)}}
    assert rows(table, "ValueFilter(=, 'binaryprefix:')") == {b"r": {b"cf:a": b"new"}}
    # SingleColumnValueFilter looks at the newest version only by default.
    assert rows(table, "SingleColumnValueFilter('cf', 'a', =, 'binary:old')") == {}
    assert rows(table, "SingleColumnValueFilter('cf', 'a', =, 'binary:old', false, false)") == {b"r": {b"cf:a": b"new"}}
