"""A private topic and isolated stores per test, on the session's embedded stack."""
from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field

import pytest

from payment_platform.ingestion.loader import Ingestor, OffsetRange
from payment_platform.stores import kafka
from payment_platform.stores.backup import FailedPaymentBackup
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger
from payment_platform.stores.redis_state import RedisState


@dataclass
class Outgoing:
    value: bytes
    key: bytes | None = None
    headers: dict[str, bytes] = field(default_factory=dict)


def publish(bootstrap: str, topic: str, values: list[bytes], headers: dict[int, dict] | None = None) -> tuple[int, int]:
    """Publish to partition 0 of a one-partition topic; returns the offsets written [first, end)."""
    headers = headers or {}
    with kafka.Publisher(bootstrap, topic) as publisher:
        for n, value in enumerate(values):
            publisher.send(Outgoing(value, None, headers.get(n, {})))
        result = publisher.flush()
    assert result.acknowledged == len(values), result
    return result.offsets[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lane:
    """Everything one test ingests through: its topic and its own slice of every store."""

    stack: object
    namespace: str
    topic: str
    fallback_dir: object

    @property
    def bootstrap(self) -> str:
        return self.stack.endpoints.kafka

    def hbase(self, port: int | None = None) -> HBaseStore:
        e = self.stack.endpoints
        return HBaseStore(e.hbase_host, port or e.hbase_port, e.hbase_transport, e.hbase_protocol,
                          table_prefix=self.namespace, timeout_ms=10_000)

    def postgres(self) -> PostgresLedger:
        return PostgresLedger(self.stack.endpoints.postgres, schema=self.namespace)

    def backup(self, mongo_uri: str | None = None, fallback_dir=None) -> FailedPaymentBackup:
        return FailedPaymentBackup(mongo_uri or self.stack.endpoints.mongo, fallback_dir or self.fallback_dir,
                                   database=self.namespace, timeout_ms=500 if mongo_uri else 5000)

    def redis(self, url: str | None = None) -> RedisState:
        # a short timeout only for a deliberately dead Redis: on a loaded machine the live one may need more
        return RedisState(url or self.stack.endpoints.redis, key_prefix=self.namespace, timeout_s=0.5 if url else 5.0)

    def ingestor(self, **stores) -> Ingestor:
        return Ingestor(self.bootstrap, stores.get("hbase") or self.hbase(), stores.get("postgres") or self.postgres(),
                        stores.get("backup") or self.backup(), stores.get("redis") or self.redis())

    def publish(self, values: list[bytes], headers: dict[int, dict] | None = None) -> OffsetRange:
        first, end = publish(self.bootstrap, self.topic, values, headers)
        return OffsetRange(self.topic, 0, first, end)


@pytest.fixture
def lane(stack, tmp_path):
    namespace = f"l{uuid.uuid4().hex[:10]}"
    topic = f"test-ingest-{namespace}"
    kafka.ensure_topic(stack.endpoints.kafka, topic, partitions=1)
    return Lane(stack, namespace, topic, tmp_path / "failed_payments")
