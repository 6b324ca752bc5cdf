"""HBase down: Postgres answers, marked degraded (body and headers), and a page started on HBase continues on
Postgres without a duplicate or a gap. Both stores down: a 503 naming them."""
from __future__ import annotations

import uuid

import pytest

from payment_platform.serving.api import create_app
from payment_platform.serving.queries import PaymentQueries
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger

from ..test_healing.conftest import private_hbase  # noqa: F401 - the fixture: a gateway of our own to kill
from ..test_stores.payments import payment_doc, raw
from .conftest import ApiServer, Served
from ..test_loader.conftest import free_port

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture
def own_hbase_platform(stack, private_hbase, tmp_path):  # noqa: F811
    from payment_platform.stores import kafka

    namespace = f"d{uuid.uuid4().hex[:10]}"
    topic = f"test-serving-{namespace}"
    kafka.ensure_topic(stack.endpoints.kafka, topic, partitions=1)
    served = Served(stack, namespace, topic, [], 0, tmp_path / "failed_payments")
    hbase = lambda: HBaseStore("127.0.0.1", private_hbase.port, timeout_ms=2000, health_timeout_ms=1000,  # noqa: E731
                               table_prefix=namespace)
    docs = [payment_doc(i, namespace) for i in range(40)]
    for i, doc in enumerate(docs):  # three originators, so a party has pages to walk
        doc["originator"]["party_id"] = f"PTY-DEG-{i % 3}"
    result = served.ingest([raw(d) for d in docs], hbase=hbase())
    assert result.written["hbase"] == 40 and result.written["postgres"] == 40
    served.docs = docs
    return served, hbase, private_hbase


def test_hbase_down_postgres_answers_marked_degraded(own_hbase_platform):
    served, hbase, gateway = own_hbase_platform
    party = "PTY-DEG-2"
    expected = [d["payment_id"] for d in served.of("originator", party)]
    assert len(expected) >= 4
    with ApiServer(create_app(lambda: served.queries(hbase=hbase()))) as api:
        status, headers, first = api.get("/payments", {"originator_id": party, "limit": 2})
        assert status == 200 and headers["X-Served-By"] == "hbase" and first["source"] == "hbase"
        doc = served.docs[7]
        from_hbase = api.get(f"/payments/{doc['payment_id']}")[2]

        gateway.kill()

        status, headers, body = api.get(f"/payments/{doc['payment_id']}")
        assert status == 200, body
        assert headers["X-Served-By"] == "postgres" and "HBase" in headers["X-Degraded"]
        assert body["source"] == "postgres" and "HBase" in body["degraded"]
        same = ("payment_id", "payment_type", "amount", "currency", "status", "created_at", "value_date",
                "originator", "beneficiary", "kafka_position", "hbase_row_key")
        assert {k: body[k] for k in same} == {k: from_hbase[k] for k in same}

        # the page HBase started continues on Postgres: same order, no duplicate, no gap
        items, cursor = list(first["items"]), first["next_cursor"]
        while cursor:
            status, headers, page = api.get("/payments", {"originator_id": party, "limit": 2, "cursor": cursor})
            assert status == 200 and headers["X-Served-By"] == "postgres" and page["degraded"], page
            items += page["items"]
            cursor = page["next_cursor"]
        assert [i["payment_id"] for i in items] == expected

        status, headers, window = api.get("/payments", {"created_from": "2026-11-24T14:00:05Z",
                                                        "created_to": "2026-11-24T14:00:09Z", "limit": 1000})
        assert status == 200 and headers["X-Served-By"] == "postgres"
        assert sorted(i["payment_id"] for i in window["items"]) == sorted(
            d["payment_id"] for d in served.docs if "2026-11-24T14:00:05" <= d["created_at"] < "2026-11-24T14:00:09")

        status, _, body = api.get(f"/payments/{uuid.uuid4()}")
        assert status == 404 and "HBase" in body["error"]


def test_both_stores_down_is_a_503_naming_them(own_hbase_platform):
    served, hbase, gateway = own_hbase_platform
    gateway.kill()
    dead_postgres = PostgresLedger(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", connect_timeout_s=1)
    with ApiServer(create_app(lambda: PaymentQueries(hbase(), dead_postgres, served.backup()))) as api:
        status, headers, body = api.get(f"/payments/{served.docs[0]['payment_id']}")
        assert status == 503 and body["stores"] == ["hbase", "postgres"] and headers["Retry-After"]
        status, _, body = api.get("/payments", {"originator_id": "PTY-DEG-2"})
        assert status == 503 and body["stores"] == ["hbase", "postgres"]
        status, _, body = api.get("/stats/daily")
        assert status == 503 and body["stores"] == ["postgres"]
