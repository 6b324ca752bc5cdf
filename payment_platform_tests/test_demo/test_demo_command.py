"""`payment-platform demo`: brings a stack up, shows health, tears it down, prints a summary."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from devstack.demo.run import STEPS
from payment_platform_tests.test_stack.conftest import cli, clusters_owned_by, processes_under, wait_until_gone

HOST_PORT = re.compile(r"^[\w.-]+:\d+$")
pytestmark = pytest.mark.slow
DEMO_TIMEOUT_S = 300  # the whole flow (stack, dagster-daemon, publish, sensor runs); ~30 s on an idle 2-core machine


def assert_endpoint_formats(endpoints: dict) -> None:
    assert HOST_PORT.match(endpoints["kafka"]), endpoints
    assert HOST_PORT.match(endpoints["hbase"]), endpoints
    assert endpoints["postgres"].startswith("postgresql://")
    assert endpoints["mongo"].startswith("mongodb://")
    assert endpoints["redis"].startswith("redis://")


def test_demo_json_summary_and_nothing_left_behind():
    result = cli("demo", "--json", "--count", "5", "--seed", "7", timeout=DEMO_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["ok"] is True and summary["count"] == 5 and summary["seed"] == 7
    assert_endpoint_formats(summary["endpoints"])
    assert set(summary["health"].values()) == {"healthy"}
    assert [step["name"] for step in summary["steps"]] == [name for name, _ in STEPS]
    data_dir = Path(summary["data_dir"])
    assert summary["data_dir_removed"] and not data_dir.exists()
    assert clusters_owned_by(data_dir) == []  # its Postgres cluster too, wherever it lived
    assert processes_under(data_dir) == []


def test_demo_keep_stack_leaves_it_for_stack_down(data_dir):
    result = cli("demo", "--json", "--keep-stack", "--count", "5", "--data-dir", str(data_dir), timeout=DEMO_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["stack_left_running"] is True
    assert summary["stop_with"] == f"payment-platform stack down --data-dir {data_dir}"
    status = cli("stack", "status", "--data-dir", str(data_dir), "--json")
    assert status.returncode == 0, status.stdout
    pids = [s["pid"] for s in json.loads(status.stdout)["services"].values()]
    assert cli("stack", "down", "--data-dir", str(data_dir)).returncode == 0
    assert wait_until_gone(pids) == []


def test_demo_bad_count_is_a_usage_error():
    bad = cli("demo", "--count", "many")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "payment-platform demo: error: --count: not an integer: 'many'"
