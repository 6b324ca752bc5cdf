"""Listings are exactly newest first (created_at to the microsecond, ties by payment id), across pages, whatever the
keys order only to the second: many payments inside the same seconds, walked page by page with cursors, against
Postgres' `ORDER BY created_at DESC, payment_id`, from HBase, from Postgres, and switching store in the middle."""
from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest

from payment_platform.stores import kafka

from ..test_loader.conftest import free_port
from ..test_stores.payments import payment_doc, raw
from .conftest import Served

pytestmark = pytest.mark.stack

ANCHOR = datetime(2024, 2, 29, 3, 17, 0, tzinfo=timezone.utc)
SECONDS = 3
PER_SECOND = 70


@pytest.fixture(scope="module")
def crowded(stack, tmp_path_factory):
    """210 payments of one originator in 3 seconds, some sharing their exact created_at (ties), ingested."""
    namespace = f"o{uuid.uuid4().hex[:10]}"
    topic = f"test-serving-{namespace}"
    kafka.ensure_topic(stack.endpoints.kafka, topic, partitions=1)
    served = Served(stack, namespace, topic, [], 0, tmp_path_factory.mktemp("order") / "failed_payments")
    rng = random.Random(22)
    party = f"PTY-ORDER-{namespace}"
    docs = []
    for i in range(SECONDS * PER_SECOND):
        doc = payment_doc(i, namespace, payment_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        # few distinct microseconds per second: many exact ties, and ids in no relation to time
        created = ANCHOR + timedelta(seconds=i % SECONDS, microseconds=rng.choice([0, 5, 17, 250_000, 999_999]))
        doc["created_at"], doc["value_date"] = created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), created.date().isoformat()
        doc["originator"]["party_id"] = party
        docs.append(doc)
    rng.shuffle(docs)  # ingested in no particular order
    result = served.ingest([raw(d) for d in docs])
    assert result.written["hbase"] == len(docs) and result.written["postgres"] == len(docs)
    served.docs = docs
    return served, party


def postgres_order(served: Served, where: str, params: tuple) -> list[str]:
    """The reference: Postgres itself, ORDER BY created_at DESC, payment_id."""
    with psycopg2.connect(served.stack.endpoints.postgres) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT payment_id::text FROM {served.namespace}.payments WHERE {where} "
                    "ORDER BY created_at DESC, payment_id", params)
        return [r[0] for r in cur.fetchall()]


def walk(queries_for_page, limit: int, **query) -> tuple[list[str], set[str]]:
    """Every payment id of a paged listing; queries_for_page(n) gives the PaymentQueries for page n."""
    ids, sources, cursor, page_number = [], set(), None, 0
    while True:
        page = queries_for_page(page_number).list_payments(limit=limit, cursor=cursor, **query)
        assert len(page.items) <= limit
        ids += [item.payment_id for item in page.items]
        sources.add(page.source)
        cursor, page_number = page.next_cursor, page_number + 1
        if cursor is None:
            return ids, sources


def dead_hbase_queries(served: Served):
    """Queries whose HBase is a port nobody listens on: every answer comes from Postgres, marked degraded."""
    return served.queries(hbase=served.hbase(port=free_port(), timeout_ms=1000))


@pytest.mark.parametrize("limit", [5, PER_SECOND, 1000])
def test_one_party_walked_exactly_newest_first(crowded, limit):
    served, party = crowded
    expected = postgres_order(served, "originator_id = %s", (party,))
    assert len(expected) == SECONDS * PER_SECOND
    queries = served.queries()
    ids, sources = walk(lambda n: queries, limit, originator_id=party)
    assert sources == {"hbase"} and ids == expected


def test_a_window_of_every_party_walked_exactly_newest_first(crowded):
    served, _ = crowded
    start, end = ANCHOR, ANCHOR + timedelta(seconds=SECONDS)
    expected = postgres_order(served, "created_at >= %s AND created_at < %s", (start, end))
    queries = served.queries()
    ids, sources = walk(lambda n: queries, 9, created_from=start, created_to=end)
    assert sources == {"hbase"} and ids == expected
    # a window edge inside a second, to the microsecond
    edge = ANCHOR + timedelta(seconds=1, microseconds=17)
    inner = postgres_order(served, "created_at >= %s AND created_at < %s", (edge, end))
    assert walk(lambda n: queries, 11, created_from=edge, created_to=end)[0] == inner


def test_postgres_serves_the_same_order_and_continues_hbase_cursors(crowded):
    served, party = crowded
    expected = postgres_order(served, "originator_id = %s", (party,))
    healthy, degraded = served.queries(), dead_hbase_queries(served)
    ids, sources = walk(lambda n: degraded, 8, originator_id=party)
    assert sources == {"postgres"} and ids == expected
    # HBase for the odd pages, Postgres for the even ones: one walk, no repeat, no gap, same order
    ids, sources = walk(lambda n: healthy if n % 2 else degraded, 8, originator_id=party)
    assert sources == {"hbase", "postgres"} and ids == expected
    start, end = ANCHOR, ANCHOR + timedelta(seconds=SECONDS)
    window = postgres_order(served, "created_at >= %s AND created_at < %s", (start, end))
    ids, sources = walk(lambda n: degraded if n % 3 == 1 else healthy, 13, created_from=start, created_to=end)
    assert sources == {"hbase", "postgres"} and ids == window


def test_a_filter_that_matches_little_still_walks_in_order(crowded):
    served, party = crowded
    expected = postgres_order(served, "originator_id = %s AND payment_type = 'ACH'", (party,))
    assert 0 < len(expected) < SECONDS * PER_SECOND
    queries = served.queries()
    assert walk(lambda n: queries, 5, originator_id=party, payment_type="ACH")[0] == expected
