"""Store clients against the session's embedded stack, each isolated from other tests: its own HBase table prefix,
Postgres schema, Redis key prefix, Mongo database and fallback folder."""
from __future__ import annotations

import uuid

import pytest

from payment_platform.stores.backup import FailedPaymentBackup
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger
from payment_platform.stores.redis_state import RedisState


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def namespace():
    return unique("t")


@pytest.fixture
def hbase_store(stack, namespace):
    store = HBaseStore(stack.endpoints.hbase_host, stack.endpoints.hbase_port, stack.endpoints.hbase_transport,
                       stack.endpoints.hbase_protocol, table_prefix=namespace)
    store.ensure_schema()
    yield store
    store.close()


@pytest.fixture
def ledger(stack, namespace):
    store = PostgresLedger(stack.endpoints.postgres, schema=namespace)
    store.ensure_schema()
    yield store
    store.close()


@pytest.fixture
def redis_state(stack, namespace):
    store = RedisState(stack.endpoints.redis, key_prefix=namespace)
    yield store
    store.close()


@pytest.fixture
def backup(stack, namespace, tmp_path):
    store = FailedPaymentBackup(stack.endpoints.mongo, tmp_path / "failed_payments", database=namespace)
    store.ensure_schema()
    yield store
    store.close()


@pytest.fixture
def unused_port():
    """A TCP port on 127.0.0.1 where nothing listens."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
