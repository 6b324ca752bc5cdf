"""The health probe of each service: one real request over a real socket through the store's own client, bounded
by a timeout. A probe returns a one-line detail when the service answers and raises, with the reason, when it
does not. `payment-platform status`, the monitoring sensor and the embedded stack (devstack) judge a service by
these same probes.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from payment_platform.config import Endpoints

if TYPE_CHECKING:
    from payment_platform.stores.backup import FailedPaymentBackup
    from payment_platform.stores.hbase import HBaseStore
    from payment_platform.stores.postgres import PostgresLedger
    from payment_platform.stores.redis_state import RedisState

SERVICES = ("kafka", "postgres", "hbase", "mongo", "redis")
SETTINGS = {"kafka": "KAFKA_BOOTSTRAP_SERVERS", "postgres": "POSTGRES_DSN", "hbase": "HBASE_HOST",
            "mongo": "MONGO_URI", "redis": "REDIS_URL"}
DEFAULT_TIMEOUT_S = 3.0


class NotConfigured(RuntimeError):
    """The service's setting is not set."""


class ProbeFailed(RuntimeError):
    """A probe answered with a failure (the message is already readable)."""


def endpoint(name: str, endpoints: Endpoints) -> str | None:
    """Where the service is (None: not configured)."""
    return {"kafka": endpoints.kafka, "postgres": endpoints.postgres, "hbase": endpoints.hbase,
            "mongo": endpoints.mongo, "redis": endpoints.redis}[name]


# ---------------------------------------------------------------- the probes, one per service
def kafka_health(end_offsets: Callable[[], dict], topic: str) -> str:
    """The broker answers for the topic (its end offsets; a topic not created yet is a healthy broker)."""
    from payment_platform.stores import kafka as kafka_store

    try:
        return f"{len(end_offsets())} partitions of {topic}"
    except kafka_store.UnknownTopic:  # the broker answered: healthy, nothing published yet
        return f"broker up, topic {topic} not created yet"


def postgres_health(ledger: PostgresLedger) -> str:
    return f"PostgreSQL {ledger.health()['server_version']}"


def hbase_health(store: HBaseStore) -> str:
    return f"{len(store.health()['tables'])} tables at {store.address}"


def mongo_health(backup: FailedPaymentBackup) -> str:
    report = backup.health()
    if report.get("mongo") != "ok":
        raise ProbeFailed(f"{report.get('mongo')} (fallback folder "
                          f"{'writable' if report.get('fallback_writable') else 'NOT writable'})")
    return f"ok, fallback folder {report['fallback_dir']}"


def redis_health(redis_state: RedisState) -> str:
    report = redis_state.health()
    version = report.get("redis_version") if isinstance(report, dict) else None
    return f"Redis {version}" if version else f"Redis {report}"


CHECKS: dict[str, Callable[[object], str]] = {
    "kafka": lambda client: kafka_health(client.end_offsets, client.topic),
    "postgres": postgres_health,
    "hbase": hbase_health,
    "mongo": mongo_health,
    "redis": redis_health,
}


# ---------------------------------------------------------------- the clients the probes talk through
def client(name: str, endpoints: Endpoints, timeout_s: float = DEFAULT_TIMEOUT_S,
           backup_dir: str | Path = "failed_payments"):
    """The store client that probes `name` (None when its setting is not set; the backup always has its folder)."""
    ms = int(timeout_s * 1000)
    if name == "mongo":
        from payment_platform.stores.backup import FailedPaymentBackup

        return FailedPaymentBackup(endpoints.mongo, backup_dir, timeout_ms=ms)
    if endpoint(name, endpoints) is None:
        return None
    if name == "kafka":
        from payment_platform.stores.kafka import KafkaClient

        return KafkaClient(endpoints.kafka, endpoints.topic, timeout_s)
    if name == "postgres":
        from payment_platform.stores.postgres import PostgresLedger

        return PostgresLedger(endpoints.postgres, connect_timeout_s=max(1, round(timeout_s)), statement_timeout_ms=ms)
    if name == "hbase":
        from payment_platform.stores.hbase import HBaseStore

        return HBaseStore(endpoints.hbase_host, endpoints.hbase_port, endpoints.hbase_transport,
                          endpoints.hbase_protocol, timeout_ms=ms, health_timeout_ms=ms)
    if name == "redis":
        from payment_platform.stores.redis_state import RedisState

        return RedisState(endpoints.redis, timeout_s=timeout_s)
    raise ValueError(f"unknown service {name!r} (expected one of {', '.join(SERVICES)})")


def check(name: str, store_client) -> str:
    """Runs `name`'s probe through an open client; NotConfigured when there is none."""
    if store_client is None:
        raise NotConfigured(f"not configured ({SETTINGS[name]})")
    return CHECKS[name](store_client)


def probe(name: str, endpoints: Endpoints, timeout_s: float = DEFAULT_TIMEOUT_S,
          backup_dir: str | Path = "failed_payments") -> str:
    """One probe of one service at `endpoints`, through a client of its own (closed again)."""
    store_client = client(name, endpoints, timeout_s, backup_dir)
    try:
        return check(name, store_client)
    finally:
        if store_client is not None:
            store_client.close()
