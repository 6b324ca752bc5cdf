"""The gateway under test: the real `payment-platform hbase-gateway` process, on a free port, in a tmp dir.

    def test_x(gateway):   # a running gateway (buffered transport, binary protocol), shared by the module
    def test_y(conn):      # a happybase Connection to it
    def test_z(table):     # a fresh table {'cf': max_versions=3, 'cf2': {}} dropped after the test
"""
from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import happybase
import pytest

from payment_platform_tests.waiting import accepts_connections, wait_until

START_TIMEOUT_S = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningGateway:
    proc: subprocess.Popen
    port: int
    data_dir: str
    transport: str
    protocol: str
    log_path: str

    def connect(self, **kwargs) -> happybase.Connection:
        kwargs.setdefault("transport", self.transport)
        kwargs.setdefault("protocol", self.protocol)
        kwargs.setdefault("timeout", 20000)
        conn = happybase.Connection("127.0.0.1", self.port, autoconnect=False, **kwargs)
        conn.open()
        return conn

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = START_TIMEOUT_S) -> float:
    """Seconds until the port accepts connections."""
    started = time.monotonic()
    wait_until(lambda: accepts_connections(port), timeout, f"the gateway listening on {port}", every_s=0.02,
               give_up=lambda: proc.poll() is not None and f"it exited with {proc.returncode}")
    return time.monotonic() - started


def start_gateway(data_dir, framed: bool = False, compact: bool = False, port: int | None = None) -> RunningGateway:
    port = port or free_port()
    cmd = [sys.executable, "-m", "payment_platform.cli", "hbase-gateway", "--host", "127.0.0.1",
           "--port", str(port), "--data-dir", str(data_dir)]
    if framed:
        cmd.append("--framed")
    if compact:
        cmd.append("--compact")
    # Output goes to a file, never to an unread pipe that could fill up and block the gateway.
    log_path = os.path.join(str(data_dir), "..", f"gateway-{port}.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc)
    except Exception:
        proc.kill()
        proc.wait()
        raise
    return RunningGateway(proc, port, str(data_dir), "framed" if framed else "buffered",
                          "compact" if compact else "binary", os.path.abspath(log_path))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    running = start_gateway(tmp_path_factory.mktemp("hbase"))
    yield running
    assert running.stop() == 0


@pytest.fixture
def conn(gateway):
    connection = gateway.connect()
    yield connection
    connection.close()


_table_names = itertools.count(1)


@pytest.fixture
def table(conn):
    name = f"t{os.getpid()}_{next(_table_names)}"
    conn.create_table(name, {"cf": dict(max_versions=3), "cf2": dict()})
    yield conn.table(name)
    conn.delete_table(name, disable=True)
