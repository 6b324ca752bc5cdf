"""The Dagster resources: one `ConfigurableResource` per store, each building that store's plain client
(`payment_platform.stores`), and the shared `defs` configuring them from the environment with EnvVar."""
from __future__ import annotations

from typing import Iterator, Optional

import dagster as dg

from payment_platform.stores import kafka
from payment_platform.stores.backup import FailedPaymentBackup, default_fallback_dir
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.kafka import DEFAULT_PARTITIONS, DEFAULT_TIMEOUT_S, KafkaMessage, Publisher
from payment_platform.stores.postgres import PostgresLedger
from payment_platform.stores.redis_state import DEFAULT_PREFIX, RedisState


class BackupResource(dg.ConfigurableResource):
    """Failed-payment backup: MongoDB (MONGO_URI) first, JSON files under `fallback_dir` as a last resort
    (unset: `default_fallback_dir()`, resolved when a run builds the client, never at import)."""

    mongo_uri: str
    fallback_dir: Optional[str] = None

    def client(self) -> FailedPaymentBackup:
        return FailedPaymentBackup(self.mongo_uri, self.fallback_dir or default_fallback_dir())


class HBaseResource(dg.ConfigurableResource):
    """HBase Thrift1 server holding the `payments` tables (HBASE_HOST, HBASE_PORT, HBASE_TRANSPORT, HBASE_PROTOCOL)."""

    host: str
    port: int = 9090
    transport: str = "buffered"
    protocol: str = "binary"
    timeout_ms: int = 10_000

    def client(self) -> HBaseStore:
        return HBaseStore(self.host, int(self.port), self.transport, self.protocol, timeout_ms=self.timeout_ms)


class KafkaResource(dg.ConfigurableResource):
    """The payments topic on a Kafka cluster (KAFKA_BOOTSTRAP_SERVERS, PAYMENTS_TOPIC)."""

    bootstrap_servers: str
    topic: str

    def ensure_topic(self, partitions: int = DEFAULT_PARTITIONS) -> bool:
        return kafka.ensure_topic(self.bootstrap_servers, self.topic, partitions)

    def end_offsets(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[int, int]:
        return kafka.end_offsets(self.bootstrap_servers, self.topic, timeout_s)

    def beginning_offsets(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[int, int]:
        return kafka.beginning_offsets(self.bootstrap_servers, self.topic, timeout_s)

    def topic_id(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> str | None:
        return kafka.topic_id(self.bootstrap_servers, self.topic, timeout_s)

    def read_range(self, partition: int, start: int, end: int, batch: int = 2000) -> Iterator[list[KafkaMessage]]:
        return kafka.read_range(self.bootstrap_servers, self.topic, partition, start, end, batch)

    def publisher(self, **options) -> Publisher:
        return Publisher(self.bootstrap_servers, self.topic, **options)

    def health(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[int, int]:
        """Raises KafkaUnavailable/UnknownTopic unless the broker answers and the topic exists."""
        return self.end_offsets(timeout_s)


class PostgresResource(dg.ConfigurableResource):
    """PostgreSQL holding the payments ledger, quarantine and ingestion progress (POSTGRES_DSN)."""

    dsn: str
    schema_name: str = "public"

    def client(self) -> PostgresLedger:
        return PostgresLedger(self.dsn, schema=self.schema_name)


class RedisResource(dg.ConfigurableResource):
    """Redis for idempotency and live metrics (REDIS_URL)."""

    url: str
    key_prefix: str = DEFAULT_PREFIX

    def client(self) -> RedisState:
        return RedisState(self.url, key_prefix=self.key_prefix)


defs = dg.Definitions(resources={
    "kafka": KafkaResource(bootstrap_servers=dg.EnvVar("KAFKA_BOOTSTRAP_SERVERS"), topic=dg.EnvVar("PAYMENTS_TOPIC")),
    "hbase": HBaseResource(host=dg.EnvVar("HBASE_HOST"), port=dg.EnvVar.int("HBASE_PORT"),
                           transport=dg.EnvVar("HBASE_TRANSPORT"), protocol=dg.EnvVar("HBASE_PROTOCOL")),
    "postgres": PostgresResource(dsn=dg.EnvVar("POSTGRES_DSN")),
    "backup": BackupResource(mongo_uri=dg.EnvVar("MONGO_URI")),
    "redis": RedisResource(url=dg.EnvVar("REDIS_URL")),
})
