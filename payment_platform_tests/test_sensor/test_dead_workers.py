"""A run whose worker process died is found by the sensors that wait on it and marked failed at once (pid, host and
process start time recorded in the run's tags), instead of holding its range or replay until max_runtime."""
from __future__ import annotations

import os
import socket
import subprocess
import uuid

import dagster as dg
import psutil
import pytest

from payment_platform.defs.ingestion.runs import RANGE_TAG
from payment_platform.defs.ingestion.sensors import run_infos
from payment_platform.defs.replay.replay import _after_lost_run, backup_replay_sensor, replay_failed_payments_job
from payment_platform.defs.run_workers import (
    UNRECORDED_WORKER_SECONDS,
    WORKER_HOST_TAG,
    WORKER_PID_TAG,
    WORKER_RUN_TAG,
    WORKER_STARTED_TAG,
    dead_worker,
)
from payment_platform.ingestion import planner

from ..test_replay.test_replay_sensor import RESOURCES


def gone_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def worker_tags(pid: int, started: float | None = None, host: str | None = None) -> dict:
    return {WORKER_PID_TAG: str(pid), WORKER_HOST_TAG: host or socket.gethostname(),
            WORKER_STARTED_TAG: f"{started if started is not None else 1.0:.3f}"}


def me() -> dict:
    return worker_tags(os.getpid(), psutil.Process().create_time())


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def started_run(instance, tags: dict, job=replay_failed_payments_job, recorded_by: str | None = None) -> dg.DagsterRun:
    """A STARTED run whose worker tags were recorded by itself (or, `recorded_by`, copied from another run)."""
    run_id = str(uuid.uuid4())
    if WORKER_PID_TAG in tags:
        tags = {**tags, WORKER_RUN_TAG: recorded_by or run_id}
    return instance.create_run_for_job(job, run_config={}, status=dg.DagsterRunStatus.STARTED, tags=tags,
                                       run_id=run_id)


def test_which_workers_count_as_dead(instance):
    assert "is gone" in dead_worker(started_run(instance, worker_tags(gone_pid())))
    reused = worker_tags(os.getpid(), psutil.Process().create_time() - 100)  # our pid, an older process's record
    assert "another process" in dead_worker(started_run(instance, reused))
    assert dead_worker(started_run(instance, me())) is None
    assert dead_worker(started_run(instance, worker_tags(gone_pid(), host="another-host"))) is None  # not ours to judge
    assert dead_worker(started_run(instance, {})) is None  # no pid recorded (yet): run monitoring's timeouts apply
    # a Dagster run retry copies its parent's tags: until it records its own worker, the parent's pid is not its
    assert dead_worker(started_run(instance, worker_tags(gone_pid()), recorded_by=str(uuid.uuid4()))) is None


def test_a_run_killed_before_it_recorded_its_worker_is_judged_dead_once_it_had_time_to_record_it(instance):
    # killed while starting (STARTED, no worker tags yet): judgeable from its start time, not left to max_runtime
    run = started_run(instance, {})
    assert dead_worker(run, started_at=1000.0, now=1000.0 + UNRECORDED_WORKER_SECONDS - 1) is None
    assert "never recorded its worker" in dead_worker(run, started_at=1000.0,
                                                      now=1000.0 + UNRECORDED_WORKER_SECONDS + 1)
    # a retry carrying its parent's record, but none of its own, is judged the same way
    retry = started_run(instance, worker_tags(os.getpid(), psutil.Process().create_time()),
                        recorded_by=str(uuid.uuid4()))
    assert "never recorded" in dead_worker(retry, started_at=1000.0, now=1000.0 + UNRECORDED_WORKER_SECONDS + 1)
    # a run that recorded itself is judged by its process only, however long it has been running
    assert dead_worker(started_run(instance, me()), started_at=1000.0, now=10**10) is None


def test_the_ingestion_sensor_fails_a_lease_run_whose_worker_died(instance):
    key = planner.lease_run_key("payments", 0, 1000.0)
    dead = started_run(instance, {RANGE_TAG: key, **worker_tags(gone_pid())})
    assert run_infos(instance, [key])[key].state == planner.RunState.FAILED
    failed = instance.get_run_by_id(dead.run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    assert failed.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION"
    alive = planner.lease_run_key("payments", 1, 1000.0)
    started_run(instance, {RANGE_TAG: alive, **me()})
    assert run_infos(instance, [alive])[alive].state == planner.RunState.ACTIVE


def test_the_replay_sensor_fails_a_dead_replay_run_and_asks_again_under_a_new_key(instance):
    living = started_run(instance, me())
    result = backup_replay_sensor(dg.build_sensor_context(instance=instance, resources=RESOURCES))
    assert isinstance(result, dg.SkipReason) and living.run_id in result.skip_message  # a live one holds replay
    instance.report_run_failed(living)

    dead = started_run(instance, worker_tags(gone_pid()))
    result = backup_replay_sensor(dg.build_sensor_context(instance=instance, resources=RESOURCES))
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert "in flight" not in result.skip_message  # it went on to plan (the test's stores are unreachable)
    assert _after_lost_run(instance) == f":after-{dead.run_id[:8]}"
    instance.report_run_failed(started_run(instance, me()), "the replay itself failed")
    assert _after_lost_run(instance) == ""  # an ordinary failure keeps the 5-minute retry bucket
