"""Payments really ingested (Kafka -> Ingestor -> HBase + Postgres) into a private slice of the session stack,
and the REST API served by a real uvicorn on a free port over those stores."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from payment_platform.domain.validation import parse_and_validate
from payment_platform.generation.generator import generate
from payment_platform.ingestion.loader import Ingestor, OffsetRange
from payment_platform.serving.api import create_app
from payment_platform.serving.queries import PaymentQueries
from payment_platform.stores import kafka
from payment_platform.stores.backup import FailedPaymentBackup
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger
from payment_platform.stores.redis_state import RedisState

from payment_platform_tests.waiting import wait_until

from ..test_loader.conftest import Outgoing, free_port
from ..test_stores.payments import bad_messages, payment_doc, raw

# Parties whose names carry unicode and quote characters (and one id with non-ASCII letters).
SPECIAL_PARTIES = [
    {"party_id": "PTY-ÜNÏ-001", "name": "Zoë \"The Quote\" O'Brien & Søn — 株式会社"},
    {"party_id": "PTY-QUOTE-002", "name": "L'Atelier \"Bob\" <Müller> ; DROP TABLE payments;--"},
]


def special_doc(i: int, namespace: str, party: dict, role: str = "originator") -> dict:
    doc = payment_doc(i, namespace)
    doc[role] = {**doc[role], **party}
    return doc


@dataclass
class Served:
    """One module's ingested payments and the stores they landed in."""

    stack: object
    namespace: str
    topic: str
    docs: list[dict]  # every valid payment ingested, as sent
    quarantined: int
    fallback_dir: object

    def hbase(self, port: int | None = None, **options) -> HBaseStore:
        e = self.stack.endpoints
        return HBaseStore(e.hbase_host, port or e.hbase_port, e.hbase_transport, e.hbase_protocol,
                          table_prefix=self.namespace, **options)

    def postgres(self) -> PostgresLedger:
        return PostgresLedger(self.stack.endpoints.postgres, schema=self.namespace)

    def backup(self) -> FailedPaymentBackup:
        return FailedPaymentBackup(self.stack.endpoints.mongo, self.fallback_dir, database=self.namespace)

    def queries(self, **stores) -> PaymentQueries:
        return PaymentQueries(stores.get("hbase") or self.hbase(timeout_ms=5000),
                              stores.get("postgres") or self.postgres(), stores.get("backup") or self.backup())

    def probes(self):
        """The monitoring probes of this slice (behind /health, /metrics, /status)."""
        from payment_platform.monitoring.snapshot import Probes
        from payment_platform.stores.kafka import KafkaClient

        endpoints = self.stack.endpoints
        return Probes(KafkaClient(endpoints.kafka, self.topic), self.postgres(), self.hbase(), self.backup(),
                      RedisState(endpoints.redis, key_prefix=self.namespace))

    def ingestor(self, **stores) -> Ingestor:
        return Ingestor(self.stack.endpoints.kafka, stores.get("hbase") or self.hbase(),
                        stores.get("postgres") or self.postgres(), stores.get("backup") or self.backup(),
                        RedisState(self.stack.endpoints.redis, key_prefix=self.namespace))

    def ingest(self, messages: list, **stores):
        """Publish (bytes or Outgoing) and ingest them; returns the RangeResult."""
        with kafka.Publisher(self.stack.endpoints.kafka, self.topic) as publisher:
            for m in messages:
                publisher.send(m if isinstance(m, Outgoing) else Outgoing(m))
            sent = publisher.flush()
        first, end = sent.offsets[0]
        ingestor = self.ingestor(**stores)
        try:
            return ingestor.ingest(OffsetRange(self.topic, 0, first, end), chunk_size=100)
        finally:
            ingestor.close()

    def of(self, role: str, party_id: str) -> list[dict]:
        """The docs of one party, exactly newest first (created_at, ties by payment id ascending)."""
        return newest_first([d for d in self.docs if d[role]["party_id"] == party_id])


def created_at_of(doc: dict) -> datetime:
    return datetime.fromisoformat(doc["created_at"].replace("Z", "+00:00")).astimezone(timezone.utc)


def newest_first(docs: list[dict]) -> list[dict]:
    """Postgres' `ORDER BY created_at DESC, payment_id`: the order every listing must serve."""
    by_id = sorted(docs, key=lambda d: d["payment_id"])
    return sorted(by_id, key=created_at_of, reverse=True)


def in_listing_order(items: list) -> bool:
    """Items (API dicts or PaymentViews) exactly newest first, ties by payment id ascending."""
    keys = [(i["created_at"], i["payment_id"]) if isinstance(i, dict) else (i.created_at, i.payment_id) for i in items]
    return all(a[0] > b[0] or (a[0] == b[0] and a[1] < b[1]) for a, b in zip(keys, keys[1:]))


def build_docs(namespace: str) -> list[dict]:
    docs = [payment_doc(i, namespace) for i in range(120)]
    for n in range(12):  # special parties as originators and as beneficiaries
        docs.append(special_doc(500 + n, namespace, SPECIAL_PARTIES[n % 2], "originator"))
        docs.append(special_doc(600 + n, namespace, SPECIAL_PARTIES[n % 2], "beneficiary"))
    return docs


@pytest.fixture(scope="session")
def served(stack, tmp_path_factory):
    namespace = f"s{uuid.uuid4().hex[:10]}"
    topic = f"test-serving-{namespace}"
    kafka.ensure_topic(stack.endpoints.kafka, topic, partitions=1)
    docs = build_docs(namespace)
    generated = [m for m in generate(150, seed=11)]  # every rail (CARD with token/BIN/last 4) and some defects
    s = Served(stack, namespace, topic, [], 0, tmp_path_factory.mktemp("serving") / "failed_payments")
    messages = [raw(d) for d in docs] + [Outgoing(m.value, m.key, m.headers) for m in generated] + \
               [bad for bad, _ in bad_messages(namespace)]
    result = s.ingest(messages)
    valid = []
    for m in messages:
        value = m.value if isinstance(m, Outgoing) else m
        try:
            valid.append(parse_and_validate(value).doc)
        except Exception:  # noqa: BLE001 - quarantined
            continue
    unique = {d["payment_id"]: d for d in valid}  # the generator repeats some ids on purpose (duplicates)
    s.docs = list(unique.values())
    s.quarantined = result.quarantined
    assert result.written["hbase"] == len(s.docs) and result.written["postgres"] == len(s.docs), result
    assert not any(result.backed_up.values())
    return s


class ApiServer:
    """A real uvicorn serving an app on a free port, in a thread of the test process."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, name="api-under-test", daemon=True)

    def __enter__(self) -> "ApiServer":
        self.thread.start()
        wait_until(lambda: self.server.started, 20, "the API server starting", every_s=0.02,
                   give_up=lambda: not self.thread.is_alive() and "its thread ended")
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def get(self, path: str, params: dict | None = None, token: str | None = None):
        """(status, headers, JSON body) of a GET."""
        query = ("?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})) if params else ""
        request = urllib.request.Request(self.url + path + query)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers, json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read()
            return error.code, error.headers, json.loads(body) if body else None


@pytest.fixture(scope="module")
def api(served):
    with ApiServer(create_app(served.queries)) as server:
        yield server


def amount_of(doc: dict) -> Decimal:
    return Decimal(doc["amount"]["value"])
