"""Logic of the stack manager that needs no server: port settings and choice, process identity."""
from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys

import pytest

from payment_platform.config import ConfigError
from devstack.stack import processes
from devstack.stack.manager import choose_ports, parse_port_overrides, port_in_use
from devstack.stack.services import SERVICES, dagster_url_from_dsn


def test_port_overrides_from_a_list_or_a_comma_separated_setting():
    assert parse_port_overrides(["kafka=19092", " Redis = 6380 "], "--port") == {"kafka": 19092, "redis": 6380}
    assert parse_port_overrides("mongo=27018,hbase=9091,", "PAYMENT_PLATFORM_PORTS") == {"mongo": 27018, "hbase": 9091}
    assert parse_port_overrides(None, "--port") == {}


@pytest.mark.parametrize("value, message", [
    ("kafka=x", "--port kafka: not a port number: 'x'"),
    ("kafka=0", "--port kafka: port out of range 1-65535: 0"),
    ("kafka", "--port: expected SERVICE=PORT, got 'kafka'"),
    ("zk=1", "--port: unknown service 'zk' (expected one of kafka, postgres, redis, mongo, hbase)"),
])
def test_port_override_errors_name_the_setting(value, message):
    with pytest.raises(ConfigError) as error:
        parse_port_overrides([value], "--port")
    assert str(error.value) == message


def test_a_taken_default_port_falls_back_to_a_free_one(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setitem(SERVICES, "redis", dataclasses.replace(SERVICES["redis"], default_port=port))
        chosen = choose_ports(["redis"], {}, "--port", use_defaults=True)
        assert port_in_use(port)
    assert chosen["redis"] != port and not port_in_use(chosen["redis"])


def test_free_ports_are_distinct_and_requested_ones_are_kept():
    chosen = choose_ports(list(SERVICES), {}, "--port", use_defaults=False)
    assert len(set(chosen.values())) == len(SERVICES)
    kept = choose_ports(["kafka", "redis"], {"kafka": chosen["kafka"]}, "--port", use_defaults=False)
    assert kept["kafka"] == chosen["kafka"] and kept["redis"] != kept["kafka"]


def test_a_port_for_an_external_service_is_an_error():
    with pytest.raises(ConfigError, match="kafka is external .KAFKA_BOOTSTRAP_SERVERS is set."):
        choose_ports(["redis"], {"kafka": 19092}, "--port", use_defaults=False)


def test_a_recorded_process_is_not_confused_with_a_reused_pid():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        ref = processes.ProcessRef.of(child.pid)
        assert ref.alive()
        assert not processes.ProcessRef(child.pid, ref.create_time - 100).alive()
        processes.stop(ref, timeout=5, popen=child)
        assert not ref.alive() and child.returncode is not None
    finally:
        child.kill()
        child.wait()


def test_dagster_storage_url_beside_an_external_ledger():
    assert dagster_url_from_dsn("postgresql://u:p@db.internal:5433/payments?sslmode=require") == \
        "postgresql+psycopg2://u:p@db.internal:5433/dagster?sslmode=require"
    assert dagster_url_from_dsn("host=db dbname=payments") is None
