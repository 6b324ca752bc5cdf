"""The checks schedule skips a tick while the previous checks run has not finished: slow runs never pile up in the
queue (each run is incremental, the next one covers what landed meanwhile)."""
import uuid

import dagster as dg

from payment_platform.defs.checks.checks import CHECKS_JOB, consistency_checks_schedule


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
