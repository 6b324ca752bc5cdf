"""A store that died or was restarted by hand: `stack up` starts what is missing or adopts the healthy server
on its recorded port; `stack restart SERVICE` restarts one service in place. Real servers, real processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import happybase
import psutil
import pytest

from devstack.stack.services import SERVICES
from payment_platform.config import Endpoints
from payment_platform.monitoring import health
from payment_platform_tests.waiting import wait_until
from payment_platform_tests.test_stack.conftest import cli, read_state, wait_until_gone
from payment_platform_tests.test_stack.test_lifecycle import port_args, service_pids

pytestmark = pytest.mark.slow


def hbase_rows(state: dict, table: str) -> list[tuple[bytes, dict]]:
    endpoints = state["endpoints"]
    connection = happybase.Connection(endpoints["hbase_host"], endpoints["hbase_port"])
    try:
        return list(connection.table(table).scan())
    finally:
        connection.close()


def wait_answering(port: int, timeout: float = 30.0) -> None:
    wait_until(lambda: health.probe("hbase", Endpoints(hbase_host="127.0.0.1", hbase_port=port)), timeout,
               f"the HBase gateway answering on port {port}", every_s=0.2, retry_on=(Exception,))


def test_up_restarts_a_killed_gateway_then_adopts_one_restarted_by_hand(data_dir):
    up = cli("stack", "up", "--data-dir", str(data_dir), *port_args())
    assert up.returncode == 0, up.stderr
    state = read_state(data_dir)
    port = state["services"]["hbase"]["port"]
    by_hand = None
    pids = service_pids(data_dir)
    try:
        connection = happybase.Connection(state["endpoints"]["hbase_host"], port)
        connection.create_table("kept", {"cf": {}})
        connection.table("kept").put(b"row", {b"cf:q": b"yes"})
        connection.close()

        # 1. The gateway is killed: `stack up` starts it again on its port and data dir, nothing else.
        os.kill(pids["hbase"], signal.SIGKILL)
        assert wait_until_gone([pids["hbase"]]) == []
        again = cli("stack", "up", "--data-dir", str(data_dir))
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("stack brought back up")
        restarted = service_pids(data_dir)
        assert restarted["hbase"] != pids["hbase"] and psutil.pid_exists(restarted["hbase"])
        assert {n: p for n, p in restarted.items() if n != "hbase"} == {n: p for n, p in pids.items() if n != "hbase"}
        assert f"started (pid {restarted['hbase']}) on port {port}" in again.stdout
        assert hbase_rows(state, "kept") == [(b"row", {b"cf:q": b"yes"})]  # same data dir

        # 2. Killed again and restarted by hand on the same port: `stack up` adopts it and records its pid.
        os.kill(restarted["hbase"], signal.SIGKILL)
        assert wait_until_gone([restarted["hbase"]]) == []
        by_hand = subprocess.Popen(
            [sys.executable, "-m", "payment_platform.cli", "hbase-gateway", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(data_dir / "hbase")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_answering(port)
        adopt = cli("stack", "up", "--data-dir", str(data_dir))
        assert adopt.returncode == 0, adopt.stderr
        assert f"adopted the server answering on port {port} (pid {by_hand.pid})" in adopt.stdout
        assert read_state(data_dir)["services"]["hbase"]["pid"] == by_hand.pid
        assert read_state(data_dir)["services"]["hbase"]["adopted"] is True
        status = cli("stack", "status", "--data-dir", str(data_dir))
        assert status.returncode == 0, status.stdout

        # 3. An adopted server is the stack's now: `stack down` stops it too.
        assert cli("stack", "down", "--data-dir", str(data_dir)).returncode == 0
        assert by_hand.wait(15) is not None
    finally:
        if by_hand is not None and by_hand.poll() is None:
            by_hand.kill()
            by_hand.wait(10)
        cli("stack", "down", "--data-dir", str(data_dir))


def test_restart_one_service_in_place(data_dir):
    assert cli("stack", "up", "--data-dir", str(data_dir), *port_args()).returncode == 0
    before = service_pids(data_dir)
    state = read_state(data_dir)
    try:
        connection = happybase.Connection(state["endpoints"]["hbase_host"], state["endpoints"]["hbase_port"])
        connection.create_table("kept", {"cf": {}})
        connection.table("kept").put(b"row", {b"cf:q": b"yes"})
        connection.close()

        restart = cli("stack", "restart", "hbase", "--data-dir", str(data_dir))
        assert restart.returncode == 0, restart.stderr
        after = service_pids(data_dir)
        assert restart.stdout.startswith(f"hbase: stopped pid {before['hbase']}; started pid {after['hbase']} "
                                         f"on port {state['services']['hbase']['port']}, healthy in ")
        assert wait_until_gone([before["hbase"]]) == []
        assert {n: p for n, p in after.items() if n != "hbase"} == {n: p for n, p in before.items() if n != "hbase"}
        assert hbase_rows(state, "kept") == [(b"row", {b"cf:q": b"yes"})]

        # A service that is not running is simply started.
        os.kill(after["redis"], signal.SIGKILL)
        assert wait_until_gone([after["redis"]]) == []
        redis_restart = cli("stack", "restart", "redis", "--data-dir", str(data_dir))
        assert redis_restart.returncode == 0, redis_restart.stderr
        assert redis_restart.stdout.startswith("redis: was not running; started pid ")
        assert cli("stack", "status", "--data-dir", str(data_dir)).returncode == 0
    finally:
        assert cli("stack", "down", "--data-dir", str(data_dir)).returncode == 0


@pytest.mark.parametrize("service", ["hbasee", "", "zookeeper"])
def test_restart_of_an_unknown_service_is_one_line_and_exit_2(tmp_path, service):
    result = cli("stack", "restart", service, "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"unknown service {service!r}" in result.stderr and ", ".join(SERVICES) in result.stderr


def test_restart_without_a_recorded_stack_says_how_to_start_one(tmp_path):
    result = cli("stack", "restart", "redis", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no stack recorded there" in result.stderr and "stack up" in result.stderr


def test_the_stack_that_started_a_service_stops_the_one_restarted_since(data_dir):
    """`payment-platform up` holds the stack it started; an operator's `stack restart hbase` (another process)
    replaces the gateway; Ctrl+C of `up` (Stack.stop) must stop the gateway running now, not only the one it
    started."""
    from devstack.stack.manager import free_ports, start_stack

    ports = dict(zip(SERVICES, free_ports(len(SERVICES))))
    stack = start_stack(data_dir, ports=ports, use_default_ports=False, owned=True, timeout=60)
    try:
        restart = cli("stack", "restart", "hbase", "--data-dir", str(data_dir))
        assert restart.returncode == 0, restart.stderr
        restarted = service_pids(data_dir)["hbase"]
        assert restarted != stack.services["hbase"].pid
    finally:
        stack.stop()
    assert wait_until_gone([restarted]) == []
