"""The Dagster resources: one `ConfigurableResource` per store, each building that store's plain client
(`payment_platform.stores`), and the shared `defs` configuring them from the environment with EnvVar."""
from __future__ import annotations

from typing import Optional

import dagster as dg

from payment_platform.config import retention_from_env
from payment_platform.stores.backup import FailedPaymentBackup, default_fallback_dir
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.kafka import DEFAULT_TIMEOUT_S, KafkaClient
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
    salt_buckets: Optional[int] = None  # row-key layout; None: HBASE_SALT_BUCKETS from the run's environment

    def client(self) -> HBaseStore:
        return HBaseStore(self.host, int(self.port), self.transport, self.protocol, timeout_ms=self.timeout_ms,
                          salt_buckets=self.salt_buckets)


class KafkaResource(dg.ConfigurableResource):
    """The payments topic on a Kafka cluster (KAFKA_BOOTSTRAP_SERVERS, PAYMENTS_TOPIC)."""

    bootstrap_servers: str
    topic: str

    def client(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> KafkaClient:
        """One client per use (a sensor tick, a check, a run): one admin connection, closed with it."""
        return KafkaClient(self.bootstrap_servers, self.topic, timeout_s)


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
    landed_ttl_s: Optional[int] = None  # the idempotency window; None: REDIS_LANDED_TTL_S from the run's environment

    def client(self) -> RedisState:
        ttl = self.landed_ttl_s or retention_from_env().redis_landed_ttl_s
        return RedisState(self.url, key_prefix=self.key_prefix, landed_ttl_s=ttl)


defs = dg.Definitions(resources={
    "kafka": KafkaResource(bootstrap_servers=dg.EnvVar("KAFKA_BOOTSTRAP_SERVERS"), topic=dg.EnvVar("PAYMENTS_TOPIC")),
    "hbase": HBaseResource(host=dg.EnvVar("HBASE_HOST"), port=dg.EnvVar.int("HBASE_PORT"),
                           transport=dg.EnvVar("HBASE_TRANSPORT"), protocol=dg.EnvVar("HBASE_PROTOCOL")),
    "postgres": PostgresResource(dsn=dg.EnvVar("POSTGRES_DSN")),
    "backup": BackupResource(mongo_uri=dg.EnvVar("MONGO_URI")),
    "redis": RedisResource(url=dg.EnvVar("REDIS_URL")),
})
