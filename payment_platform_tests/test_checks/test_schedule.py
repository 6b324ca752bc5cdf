"""The checks schedule skips a tick while the previous checks run has not finished: slow runs never pile up in the
queue (each run is incremental, the next one covers what landed meanwhile)."""
import dagster as dg
from dagster._core.test_utils import create_run_for_test

from payment_platform.defs.checks.checks import CHECKS_JOB, consistency_checks_schedule


def evaluate(instance) -> object:
    return consistency_checks_schedule(dg.build_schedule_context(instance=instance))


def test_a_tick_is_skipped_while_the_previous_checks_run_has_not_finished():
    with dg.instance_for_test() as instance:
        assert isinstance(evaluate(instance), dg.RunRequest)  # nothing ran yet
        create_run_for_test(instance, job_name=CHECKS_JOB, status=dg.DagsterRunStatus.SUCCESS)
        create_run_for_test(instance, job_name="ingest_partition_lease_job", status=dg.DagsterRunStatus.STARTED)
        assert isinstance(evaluate(instance), dg.RunRequest)  # a finished checks run, another job running
        running = create_run_for_test(instance, job_name=CHECKS_JOB, status=dg.DagsterRunStatus.STARTED)
        skipped = evaluate(instance)
        assert isinstance(skipped, dg.SkipReason)
        assert running.run_id in skipped.skip_message and "still started" in skipped.skip_message
        starting = create_run_for_test(instance, job_name=CHECKS_JOB, status=dg.DagsterRunStatus.STARTING)
        instance.report_run_failed(running)
        assert starting.run_id in evaluate(instance).skip_message  # one being launched counts too
        instance.report_run_failed(starting)
        assert isinstance(evaluate(instance), dg.RunRequest)
