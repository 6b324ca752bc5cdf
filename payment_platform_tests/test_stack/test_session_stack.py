"""The session `stack` fixture keeps its contract, and an external service is probed, never started."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from payment_platform.config import Endpoints, endpoints_from_env
from devstack.stack.manager import start_stack
from devstack.stack.services import SERVICES
from payment_platform_tests.test_stack.conftest import clean_env, processes_under

pytestmark = pytest.mark.stack


def test_session_stack_contract(stack):
    assert isinstance(stack.endpoints, Endpoints)
    assert isinstance(stack.data_dir, Path) and stack.data_dir.is_dir()
    assert stack.dagster_postgres_url.startswith("postgresql+psycopg2://")
    assert stack.dagster_postgres_url.endswith("/dagster")
    env = stack.env()
    assert env["DAGSTER_POSTGRES_URL"] == stack.dagster_postgres_url
    assert env["PAYMENT_PLATFORM_DATA_DIR"] == str(stack.data_dir)
    assert os.stat(env["XDG_RUNTIME_DIR"]).st_mode & 0o777 == 0o700
    assert endpoints_from_env(env) == stack.endpoints  # the env round-trips through the settings parser
    health = stack.health()
    assert [h.name for h in health] == list(SERVICES)
    assert all(h.healthy for h in health), [(h.name, h.error) for h in health]


def test_stack_env_points_this_process_at_the_stack(stack_env, stack):
    assert os.environ["KAFKA_BOOTSTRAP_SERVERS"] == stack.endpoints.kafka
    assert endpoints_from_env() == stack.endpoints


def test_an_external_service_is_probed_not_started(stack, data_dir):
    """REDIS_URL set: the session stack's Redis is used; the new stack starts the other services only."""
    env = clean_env(REDIS_URL=stack.endpoints.redis)
    second = start_stack(data_dir, use_default_ports=False, owned=True, env=env, timeout=60)
    try:
        assert second.services["redis"].external and second.services["redis"].pid is None
        assert second.endpoints.redis == stack.endpoints.redis
        assert not (data_dir / "redis").exists()
        assert all(h.healthy for h in second.health())
        assert {p.name() for p in processes_under(data_dir)}.isdisjoint({"redis-server"})
    finally:
        second.stop()
    # stopping the second stack left the external (session) Redis alone
    assert {h.name: h.healthy for h in stack.health()}["redis"]
