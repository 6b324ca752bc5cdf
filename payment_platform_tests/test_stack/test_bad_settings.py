"""A malformed setting: one line naming it and what is wrong, exit 2, nothing started."""
from __future__ import annotations

import socket

import pytest

from devstack.stack.manager import free_ports
from payment_platform_tests.test_stack.conftest import clean_env, cli, processes_under


def closed_port() -> int:
    return free_ports(1)[0]  # nothing listens there once the probe socket is closed


def assert_usage_error(result, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("payment-platform stack: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("args, env, fragments", [
    (["--port", "kafka=abc"], {}, ["--port kafka", "not a port number", "'abc'"]),
    (["--port", "kafka"], {}, ["--port", "SERVICE=PORT"]),
    (["--port", "zookeeper=2181"], {}, ["--port", "unknown service 'zookeeper'"]),
    (["--timeout", "soon"], {}, ["--timeout", "not a number of seconds"]),
    ([], {"PAYMENT_PLATFORM_PORTS": "redis=99999"}, ["PAYMENT_PLATFORM_PORTS redis", "out of range"]),
    ([], {"HBASE_HOST": "127.0.0.1", "HBASE_PORT": "ninety"}, ["HBASE_PORT", "not a port number"]),
    ([], {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:{closed}"}, ["KAFKA_BOOTSTRAP_SERVERS", "unreachable"]),
    ([], {"REDIS_URL": "redis://127.0.0.1:{closed}/0"}, ["REDIS_URL", "unreachable"]),
    ([], {"MONGO_URI": "mongodb://127.0.0.1:{closed}/"}, ["MONGO_URI", "unreachable"]),
    ([], {"POSTGRES_DSN": "postgresql://postgres@127.0.0.1:{closed}/payments"}, ["POSTGRES_DSN", "unreachable"]),
    ([], {"HBASE_HOST": "127.0.0.1", "HBASE_PORT": "{closed}"}, ["HBASE_HOST", "unreachable"]),
], ids=["port-not-a-number", "port-without-value", "unknown-service", "timeout-not-a-number", "env-port-out-of-range", "hbase-port",
        "kafka-unreachable", "redis-unreachable", "mongo-unreachable", "postgres-unreachable", "hbase-unreachable"])
def test_bad_setting_is_one_line_exit_2_and_starts_nothing(data_dir, args, env, fragments):
    closed = closed_port()
    env = {key: value.format(closed=closed) for key, value in env.items()}
    result = cli("stack", "up", "--data-dir", str(data_dir), *args, env=clean_env(**env), timeout=60)
    assert_usage_error(result, *fragments)
    assert processes_under(data_dir) == []
    assert not (data_dir / "stack.json").exists()


def test_a_port_already_taken_is_named(data_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("stack", "up", "--data-dir", str(data_dir), "--port", f"redis={port}")
    assert_usage_error(result, "--port redis", f"port {port}", "already in use")
    assert processes_under(data_dir) == []


def test_an_unwritable_data_dir_is_named(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = cli("stack", "up", "--data-dir", str(blocker / "data"))
    assert_usage_error(result, "--data-dir", "cannot write", str(blocker / "data"))

    result = cli("stack", "up", env=clean_env(PAYMENT_PLATFORM_DATA_DIR=str(blocker / "data")))
    assert_usage_error(result, "PAYMENT_PLATFORM_DATA_DIR", "cannot write")
    assert processes_under(tmp_path) == []
