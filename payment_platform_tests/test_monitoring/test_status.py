"""`payment-platform status` against the real stack, and its bad options."""
import json
import os
import subprocess
import sys

import pytest

from payment_platform.cli import main
from devstack.stack.manager import free_ports


def run_cli(args, env):
    return subprocess.run([sys.executable, "-m", "payment_platform.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args,message", [
    (["--watch", "abc"], "--watch: not a number of seconds: 'abc'"),
    (["--watch", "0"], "--watch: refresh interval must be between"),
    (["--timeout", "-1"], "--timeout: must be between"),
    (["--watch", "1", "--count", "0"], "--count: must be >= 1"),
])
def test_bad_options_are_one_line_errors(args, message, capsys):
    assert main(["status", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err


def test_malformed_setting_names_it(monkeypatch, capsys):
    monkeypatch.setenv("HBASE_PORT", "ninety")
    monkeypatch.setenv("HBASE_HOST", "localhost")
    assert main(["status"]) == 2
    assert "HBASE_PORT: not a port number" in capsys.readouterr().err


@pytest.mark.stack
def test_status_json_shows_every_service_healthy_and_the_figures(stack):
    from payment_platform.stores.postgres import PostgresLedger
    PostgresLedger(stack.endpoints.postgres).ensure_schema()  # the ledger's tables, as ingestion creates them
    result = run_cli(["status", "--json"], stack.env())
    assert result.returncode == 0, result.stdout + result.stderr
    snapshot = json.loads(result.stdout)
    assert {name: s["ok"] for name, s in snapshot["services"].items()} == dict.fromkeys(
        ["kafka", "postgres", "hbase", "mongo", "redis"], True) or pytest.fail(str(snapshot["services"]))
    figures = snapshot["figures"]
    for key in ("kafka_lag", "avg_processing_ms", "rate_per_s", "errors", "backup_size", "backup_oldest_age_s",
                "quarantine_count", "services_healthy"):
        assert key in figures
    assert figures["services_healthy"] == 5 and figures["backup_size"] is not None
    assert figures["quarantine_count"] is not None and figures["errors"] is not None


@pytest.mark.stack
def test_status_watch_refreshes_and_reports_a_dead_service(stack):
    env = {**stack.env(), "HBASE_PORT": str(free_ports(1)[0])}
    result = run_cli(["status", "--watch", "0.2", "--count", "2", "--timeout", "1"], env)
    assert result.returncode == 1  # a service is down
    assert result.stdout.count("payment_platform status at") == 2
    assert "hbase     DOWN" in result.stdout and "postgres  OK" in result.stdout
    assert "kafka lag" in result.stdout and "quarantine" in result.stdout
