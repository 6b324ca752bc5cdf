"""The code location loads the way the deployments serve it: `dagster code-server start` (the image's
command) on a free port, asked for its definitions over gRPC by Dagster's own client."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from payment_platform_tests.dagster_internals import (
    DagsterGrpcClient,
    GrpcServerCodeLocation,
    GrpcServerCodeLocationOrigin,
)

from payment_platform_tests.test_infra import infra_files as infra
from payment_platform_tests.waiting import wait_until

START_TIMEOUT_S = 120  # a cold import of the code location takes ~5-25 s on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def code_server(tmp_path_factory):
    """The image's CMD, run from the virtualenv on a free port, with an empty DAGSTER_HOME."""
    dagster_cli = Path(sys.executable).with_name("dagster")
    command = [str(dagster_cli), *infra.load_yaml(infra.COMPOSE_FILE)["services"]["dagster-code"]["command"][1:]]
    port = _free_port()
    command[command.index("-p") + 1] = str(port)
    command[command.index("-h") + 1] = "127.0.0.1"
    log = tmp_path_factory.mktemp("code_server") / "server.log"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path_factory.mktemp("dagster_home"))}
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=infra.REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    try:
        wait_until(lambda: client.ping("ready?") or True, START_TIMEOUT_S, "the code server answering a ping",
                   every_s=0.5, retry_on=(Exception,), detail=lambda: log.read_text()[-3000:],
                   give_up=lambda: server.poll() is not None and f"it exited {server.returncode}")
        yield port, client
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _expected_repository() -> dg.RepositoryDefinition:
    from payment_platform.definitions import defs

    return defs.get_repository_def()


@pytest.mark.slow
def test_code_server_lists_the_code_location_module(code_server):
    from dagster_shared.serdes import deserialize_value

    _, client = code_server
    response = deserialize_value(client.list_repositories())  # the wire format is serialized JSON
    pointers = response.repository_code_pointer_dict
    assert [p.module for p in pointers.values()] == [infra.load_yaml(infra.COMPOSE_FILE)["services"][
        "dagster-code"]["command"][-1]]


@pytest.mark.slow
def test_code_server_serves_every_asset_job_sensor_and_schedule(code_server):
    port, _ = code_server
    expected = _expected_repository()
    origin = GrpcServerCodeLocationOrigin(host="127.0.0.1", port=port, location_name="payment_platform")
    with dg.instance_for_test() as instance:
        location = GrpcServerCodeLocation(origin=origin, instance=instance)
        try:
            (repository,) = location.get_repositories().values()
            jobs = {job.name for job in repository.get_all_jobs()}
            sensors = {sensor.name for sensor in repository.get_sensors()}
            schedules = {schedule.name for schedule in repository.get_schedules()}
            assets = {node.asset_key for node in repository.get_asset_node_snaps()}
            checks = {node.key for node in repository.get_asset_check_node_snaps()}
        finally:
            location.cleanup()

    assert {"ingest_payments_range_job", "replay_failed_payments_job"} <= jobs
    assert "payments_ingestion_sensor" in sensors
    assert jobs == {job.name for job in expected.get_all_jobs()}
    assert sensors == {sensor.name for sensor in expected.sensor_defs}
    assert schedules == {schedule.name for schedule in expected.schedule_defs}
    assert assets == set(expected.asset_graph.get_all_asset_keys())
    assert checks == set(expected.asset_graph.asset_check_keys)
    assert checks, "the consistency checks are part of the code location"
