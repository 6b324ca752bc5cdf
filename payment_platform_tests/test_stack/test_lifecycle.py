"""The stack manager through its CLI, each test with a stack of its own: start, health, stop, data that
survives down/up, a dead child, signals to a foreground `stack up`, a failed start."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import happybase
import psutil
import psycopg2
import pymongo
import pytest
import redis

from devstack.stack.manager import free_ports
from devstack.stack.services import SERVICES
from payment_platform_tests.test_stack.conftest import (
    clean_env, cli, processes_under, read_state, wait_until_gone)

SERVICE_NAMES = list(SERVICES)
pytestmark = pytest.mark.slow


def port_args() -> list[str]:
    """Explicit free ports: the defaults may be taken by a developer's own `make up`."""
    args = []
    for name, port in zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES))):
        args += ["--port", f"{name}={port}"]
    return args


def service_pids(data_dir) -> dict[str, int]:
    return {name: rec["pid"] for name, rec in read_state(data_dir)["services"].items() if rec["pid"]}


def test_up_status_down_and_data_survives_a_restart(data_dir):
    ports = port_args()
    up = cli("stack", "up", "--data-dir", str(data_dir), *ports)
    assert up.returncode == 0, up.stderr
    for name in SERVICE_NAMES:
        assert name in up.stdout
    assert up.stdout.count("healthy") == len(SERVICE_NAMES)

    status = cli("stack", "status", "--data-dir", str(data_dir), "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    services = json.loads(status.stdout)["services"]
    assert sorted(services) == sorted(SERVICE_NAMES)
    assert all(s["healthy"] and s["running"] for s in services.values())

    env = read_state(data_dir)["endpoints"]
    with psycopg2.connect(env["postgres"]) as conn, conn.cursor() as cur:
        cur.execute("create table kept (id int primary key)")
        cur.execute("insert into kept values (7)")
    conn.close()
    redis.Redis.from_url(env["redis"]).set("kept", "yes")
    mongo = pymongo.MongoClient(env["mongo"])
    mongo.demo.kept.insert_one({"_id": "kept"})
    mongo.close()
    hbase = happybase.Connection(env["hbase_host"], env["hbase_port"])
    hbase.create_table("kept", {"cf": {}})
    hbase.table("kept").put(b"row", {b"cf:q": b"yes"})
    hbase.close()

    pids = service_pids(data_dir)
    down = cli("stack", "down", "--data-dir", str(data_dir))
    assert down.returncode == 0, down.stderr
    assert wait_until_gone(pids.values()) == []
    assert processes_under(data_dir) == []
    assert not (data_dir / "stack.json").exists()

    again = cli("stack", "up", "--data-dir", str(data_dir), *ports)
    assert again.returncode == 0, again.stderr
    try:
        with psycopg2.connect(env["postgres"]) as conn, conn.cursor() as cur:
            cur.execute("select id from kept")
            assert cur.fetchall() == [(7,)]
        conn.close()
        assert redis.Redis.from_url(env["redis"]).get("kept") == b"yes"
        mongo = pymongo.MongoClient(env["mongo"])
        assert mongo.demo.kept.find_one({"_id": "kept"}) == {"_id": "kept"}
        mongo.close()
        hbase = happybase.Connection(env["hbase_host"], env["hbase_port"])
        assert hbase.table("kept").row(b"row") == {b"cf:q": b"yes"}
        hbase.close()
    finally:
        assert cli("stack", "down", "--data-dir", str(data_dir)).returncode == 0


def test_status_reports_a_child_that_died(data_dir):
    assert cli("stack", "up", "--data-dir", str(data_dir), *port_args()).returncode == 0
    pids = service_pids(data_dir)
    try:
        os.kill(pids["redis"], signal.SIGKILL)
        assert wait_until_gone([pids["redis"]]) == []

        status = cli("stack", "status", "--data-dir", str(data_dir), "--json")
        assert status.returncode == 1
        services = json.loads(status.stdout)["services"]
        assert services["redis"]["running"] is False and services["redis"]["healthy"] is False
        assert "not running" in services["redis"]["error"]
        assert all(services[name]["healthy"] for name in SERVICE_NAMES if name != "redis")

        text = cli("stack", "status", "--data-dir", str(data_dir))
        assert text.returncode == 1
        assert any(line.split()[0] == "redis" and "DOWN" in line for line in text.stdout.splitlines()[1:])

        # `stack up` on the half-dead stack starts what is missing (and says so), leaving the rest alone.
        reuse = cli("stack", "up", "--data-dir", str(data_dir))
        assert reuse.returncode == 0, reuse.stderr
        assert reuse.stdout.startswith("stack brought back up")
        assert "started (pid" in reuse.stdout and "on port" in reuse.stdout
        after = service_pids(data_dir)
        assert after["redis"] != pids["redis"] and psutil.pid_exists(after["redis"])
        assert {name: pid for name, pid in after.items() if name != "redis"} == {
            name: pid for name, pid in pids.items() if name != "redis"}
        assert cli("stack", "status", "--data-dir", str(data_dir)).returncode == 0
        pids = after
    finally:
        assert cli("stack", "down", "--data-dir", str(data_dir)).returncode == 0
    assert wait_until_gone(pids.values()) == []


def start_foreground(data_dir) -> tuple[subprocess.Popen, dict[str, int]]:
    parent = subprocess.Popen(
        [sys.executable, "-m", "payment_platform.cli", "stack", "up", "--foreground", "--data-dir", str(data_dir),
         *port_args()], env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in parent.stdout:
        lines.append(line)
        if "running in the foreground" in line:
            break
    else:
        parent.wait(30)
        pytest.fail("foreground stack up did not come up: " + "".join(lines))
    return parent, service_pids(data_dir)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_a_foreground_up_stops_every_service(data_dir, sig):
    parent, pids = start_foreground(data_dir)
    children = [p.pid for p in psutil.Process(parent.pid).children(recursive=True)]
    assert len(pids) == len(SERVICE_NAMES)
    parent.send_signal(sig)
    assert parent.wait(30) == 0
    assert "stack stopped" in parent.stdout.read()
    assert wait_until_gone(list(pids.values()) + children) == []
    assert not (data_dir / "stack.json").exists()


def test_killed_foreground_up_takes_its_services_along(data_dir):
    """Even SIGKILL, which the launcher cannot handle, leaves no orphan: the kernel signals the children."""
    parent, pids = start_foreground(data_dir)
    children = [p.pid for p in psutil.Process(parent.pid).children(recursive=True)]
    parent.kill()
    parent.wait(10)
    assert wait_until_gone(list(pids.values()) + children) == []


def test_a_failed_start_leaves_nothing_running(data_dir):
    # A broken Postgres data folder (PG_VERSION but no cluster): the server refuses to start, after the
    # other services were already launched.
    (data_dir / "postgres").mkdir(parents=True)
    (data_dir / "postgres" / "PG_VERSION").write_text("18\n")
    began = time.monotonic()
    up = cli("stack", "up", "--data-dir", str(data_dir), *port_args())
    assert up.returncode == 1
    # "exited with status ..." where Postgres can reach the folder; as root under this private (0700) tmp
    # folder, the refusal to run an unreachable existing cluster (postgres_as_root) comes first.
    assert up.stderr.startswith("payment-platform stack up: error: postgres did not start: ")
    assert "exited with status" in up.stderr or "cannot reach" in up.stderr
    assert (data_dir / "logs" / "kafka.log").exists() and (data_dir / "logs" / "mongo.log").exists()
    assert len(up.stderr.strip().splitlines()) == 1
    assert time.monotonic() - began < 60
    assert processes_under(data_dir) == []
    assert not (data_dir / "stack.json").exists()
