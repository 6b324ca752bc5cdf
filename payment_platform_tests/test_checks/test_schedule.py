"""The checks schedule skips a tick while the previous checks run has not finished: slow runs never pile up in the
queue (each run is incremental, the next one covers what landed meanwhile)."""
import os
import socket
import subprocess
import sys
import uuid

import dagster as dg

from payment_platform.defs.checks.checks import CHECKS_JOB, consistency_checks_schedule
from payment_platform.defs.run_workers import (
    WORKER_HOST_TAG,
    WORKER_PID_TAG,
    WORKER_RUN_TAG,
    WORKER_STARTED_TAG,
    record_worker,
)


@dg.op
def _noop() -> None:
    pass


@dg.job(name=CHECKS_JOB)
def _checks_job() -> None:  # a stand-in with the checks job's name: the schedule looks runs up by job name
    _noop()


@dg.job(name="ingest_partition_lease_job")
def _lease_job() -> None:
    _noop()


def evaluate(instance) -> object:
    return consistency_checks_schedule(dg.build_schedule_context(instance=instance))


def run_of(instance, job, status: dg.DagsterRunStatus) -> dg.DagsterRun:
    return instance.create_run_for_job(job, run_config={}, status=status, run_id=str(uuid.uuid4()))


def test_a_tick_is_skipped_while_the_previous_checks_run_has_not_finished():
    with dg.instance_for_test() as instance:
        assert isinstance(evaluate(instance), dg.RunRequest)  # nothing ran yet
        run_of(instance, _checks_job, dg.DagsterRunStatus.SUCCESS)
        run_of(instance, _lease_job, dg.DagsterRunStatus.STARTED)
        assert isinstance(evaluate(instance), dg.RunRequest)  # a finished checks run, another job running
        running = run_of(instance, _checks_job, dg.DagsterRunStatus.STARTED)
        skipped = evaluate(instance)
        assert isinstance(skipped, dg.SkipReason)
        assert running.run_id in skipped.skip_message and "still started" in skipped.skip_message
        starting = run_of(instance, _checks_job, dg.DagsterRunStatus.STARTING)
        instance.report_run_failed(running)
        assert starting.run_id in evaluate(instance).skip_message  # one being launched counts too
        instance.report_run_failed(starting)
        assert isinstance(evaluate(instance), dg.RunRequest)


def test_a_checks_run_whose_worker_died_is_marked_failed_and_does_not_hold_the_schedule_back():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs: the worker of a checks run killed with Dagster
    with dg.instance_for_test() as instance:
        run = run_of(instance, _checks_job, dg.DagsterRunStatus.STARTED)
        instance.add_run_tags(run.run_id, {WORKER_PID_TAG: str(gone.pid), WORKER_HOST_TAG: socket.gethostname(),
                                           WORKER_STARTED_TAG: "1", WORKER_RUN_TAG: run.run_id})
        assert isinstance(evaluate(instance), dg.RunRequest)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


@dg.asset
def _an_asset() -> None:
    record_worker(dg.AssetExecutionContext.get())


@dg.asset_check(asset=_an_asset)
def _a_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    record_worker(context)
    return dg.AssetCheckResult(passed=True)


def test_asset_and_check_runs_both_record_their_worker():
    """A checks run (an asset check's context has no run_id of its own) records its worker as an asset's does, so
    the schedule can judge it dead; before, the record failed with a warning and a killed checks run held the
    schedule back until max_runtime."""
    with dg.instance_for_test() as instance:
        for selection in ([_an_asset], [_a_check]):
            defs = dg.Definitions(assets=[_an_asset], asset_checks=[_a_check])
            job = defs.resolve_implicit_global_asset_job_def().get_subset(
                asset_selection={_an_asset.key} if selection == [_an_asset] else set(),
                asset_check_selection=None if selection == [_an_asset] else {_a_check.check_key})
            result = job.execute_in_process(instance=instance, raise_on_error=True)
            tags = instance.get_run_by_id(result.run_id).tags
            assert tags[WORKER_PID_TAG] == str(os.getpid()) and tags[WORKER_RUN_TAG] == result.run_id
            assert tags[WORKER_HOST_TAG] == socket.gethostname()
            warnings = [e for e in instance.all_logs(result.run_id) if "could not record" in (e.user_message or "")]
            assert warnings == []
