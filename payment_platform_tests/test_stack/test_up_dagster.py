"""`payment-platform up` (what `make up` runs): stack + dagster dev with the code location loaded;
Ctrl+C stops everything and leaves no process behind."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest

from devstack.stack.manager import free_ports
from devstack.stack.services import SERVICES
from payment_platform_tests.test_stack.conftest import clean_env, processes_under, wait_until_gone
from payment_platform_tests.waiting import wait_for_location, wait_until

pytestmark = pytest.mark.slow


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_up_serves_dagster_and_ctrl_c_leaves_nothing(data_dir):
    *service_ports, ui_port, api_port = free_ports(len(SERVICES) + 2)
    ports = [arg for name, port in zip(SERVICES, service_ports) for arg in ("--port", f"{name}={port}")]
    parent = subprocess.Popen(
        [sys.executable, "-m", "payment_platform.cli", "up", "--data-dir", str(data_dir),
         "--dagster-port", str(ui_port), "--api-port", str(api_port), *ports],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        locations = wait_for_location(lambda query: graphql(ui_port, query)["data"], parent, 180)
        assert locations["payment_platform"]["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        # Dagster's instance is the stack's Postgres (dagster.yaml + DAGSTER_POSTGRES_URL)
        instance = graphql(ui_port, "{ instance { info } }")["data"]["instance"]["info"]
        assert "PostgresRunStorage" in instance
        # the REST API runs beside Dagster, over the same stack
        def api_health() -> dict:
            with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=30) as response:
                return json.loads(response.read())

        health = wait_until(api_health, 30, "the REST API answering /health", every_s=0.5, retry_on=(OSError,))
        assert health["services"]["hbase"]["up"]
        everything = [p.pid for p in psutil.Process(parent.pid).children(recursive=True)]
        assert len(everything) > len(SERVICES)  # the services, dagster dev, its webserver, daemon, code server
    finally:
        parent.send_signal(signal.SIGINT)  # what Ctrl+C in the terminal delivers
        output = parent.communicate(timeout=90)[0]
    assert parent.returncode == 0, output
    assert "stopped" in output.splitlines()[-1]
    assert f"REST API: http://127.0.0.1:{api_port}" in output
    assert wait_until_gone(everything) == []
    assert processes_under(data_dir) == []


def test_up_killed_outright_leaves_nothing_not_even_code_servers(data_dir):
    """SIGKILL (or a closed terminal) gives `up` no chance to clean up: the kernel and the reaper do."""
    *service_ports, ui_port, api_port = free_ports(len(SERVICES) + 2)
    ports = [arg for name, port in zip(SERVICES, service_ports) for arg in ("--port", f"{name}={port}")]
    parent = subprocess.Popen(
        [sys.executable, "-m", "payment_platform.cli", "up", "--data-dir", str(data_dir),
         "--dagster-port", str(ui_port), "--api-port", str(api_port), *ports],
        env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_for_location(lambda query: graphql(ui_port, query)["data"], parent, 180)
        tree = psutil.Process(parent.pid).children(recursive=True)
        commands = [" ".join(p.cmdline()) for p in tree if p.is_running()]
        assert any("code-server start" in c for c in commands) and any("api grpc" in c for c in commands), commands
    finally:
        parent.kill()
        parent.wait(timeout=10)
    assert wait_until_gone([p.pid for p in tree], timeout=60) == []
    assert processes_under(data_dir) == []
