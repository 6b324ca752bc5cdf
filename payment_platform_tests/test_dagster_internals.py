"""What each private Dagster API we use does, pinned: a Dagster upgrade that changes one fails here, by name.
(Product: payment_platform/defs/dagster_internals.py; tests: payment_platform_tests/dagster_internals.py.)"""
from __future__ import annotations

import inspect
import uuid

import dagster as dg
import pytest

from payment_platform.defs.dagster_internals import WORKER_LOST_REASONS, worker_lost_failure
from payment_platform_tests import dagster_internals as internals


@dg.op
def _noop() -> None:
    pass


@dg.job
def _a_job() -> None:
    _noop()


def test_a_run_reported_failed_with_worker_lost_failure_is_tagged_as_a_lost_worker():
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(_a_job, run_config={}, status=dg.DagsterRunStatus.STARTED,
                                          run_id=str(uuid.uuid4()))
        instance.report_run_failed(run, "worker gone", worker_lost_failure())
        failed = instance.get_run_by_id(run.run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    assert failed.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION"
    assert failed.tags["dagster/failure_reason"] in WORKER_LOST_REASONS


def test_the_worker_lost_reasons_are_the_three_run_failure_reasons_we_mean():
    assert WORKER_LOST_REASONS == {"START_TIMEOUT", "UNEXPECTED_TERMINATION", "RUN_WORKER_RESTART"}


def test_validate_config_checks_a_run_coordinators_config_against_its_schema():
    schema = dg.QueuedRunCoordinator.config_type()
    assert internals.validate_config(schema, {"max_concurrent_runs": 4}).success
    assert not internals.validate_config(schema, {"no_such_key": 4}).success


def test_dagster_instance_config_reads_a_dagster_yaml_and_refuses_a_bad_key(tmp_path):
    (tmp_path / "dagster.yaml").write_text("run_coordinator:\n  module: dagster\n  class: QueuedRunCoordinator\n")
    config, _ = internals.dagster_instance_config(str(tmp_path))
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    (tmp_path / "dagster.yaml").write_text("no_such_setting: 1\n")
    with pytest.raises(dg.DagsterInvalidConfigError):
        internals.dagster_instance_config(str(tmp_path))


def test_the_tag_limits_counter_blocks_a_run_over_a_tag_limit():
    limits = [{"key": "p", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
    running = dg.DagsterRun(job_name="j", run_id="a", tags={"p": "0"})
    counter = internals.TagConcurrencyLimitsCounter(limits, [running])
    assert counter.is_blocked(dg.DagsterRun(job_name="j", run_id="b", tags={"p": "0"}))
    assert not counter.is_blocked(dg.DagsterRun(job_name="j", run_id="c", tags={"p": "1"}))


def test_the_code_server_client_and_origin_take_what_the_tests_pass():
    assert {"host", "port"} <= set(inspect.signature(internals.DagsterGrpcClient).parameters)
    assert callable(internals.DagsterGrpcClient.ping)
    origin = internals.GrpcServerCodeLocationOrigin(host="127.0.0.1", port=1, location_name="x")
    assert (origin.host, origin.port, origin.location_name) == ("127.0.0.1", 1, "x")
    assert {"origin", "instance"} <= set(inspect.signature(internals.GrpcServerCodeLocation).parameters)


def test_the_clis_are_click_groups_with_the_subcommands_the_docs_use():
    assert {"dev", "asset", "job"} <= set(internals.dagster_cli.commands)
    assert "run" in internals.dagster_daemon_cli.commands


def test_purge_sensor_ticks_deletes_old_ticks_of_every_sensor_failed_ones_by_their_own_window():
    import time

    from dagster._core.remote_origin import (
        GrpcServerCodeLocationOrigin,
        RemoteInstigatorOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorType,
        TickData,
        TickStatus,
    )
    from dagster._utils.error import SerializableErrorInfo

    from payment_platform.defs.dagster_internals import purge_sensor_ticks

    location = GrpcServerCodeLocationOrigin(host="localhost", port=4000, location_name="payment_platform")
    now = time.time()
    with dg.instance_for_test() as instance:
        states = [InstigatorState(RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), name),
                                  InstigatorType.SENSOR, InstigatorStatus.RUNNING) for name in ("a", "b")]
        for state in states:
            instance.add_instigator_state(state)
            for age_h, status in ((3, TickStatus.SKIPPED), (3, TickStatus.SUCCESS), (3, TickStatus.FAILURE),
                                  (30, TickStatus.FAILURE), (0, TickStatus.SKIPPED)):
                instance.create_tick(TickData(
                    instigator_origin_id=state.instigator_origin_id, instigator_name=state.name,
                    instigator_type=InstigatorType.SENSOR, status=status, timestamp=now - age_h * 3600,
                    selector_id=state.selector_id, run_ids=[],
                    error=SerializableErrorInfo("boom", [], "RuntimeError") if status == TickStatus.FAILURE else None))
        assert purge_sensor_ticks(instance, before=now - 3600, failed_before=now - 24 * 3600) == 2
        for state in states:
            left = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=100)
            assert sorted((round((now - t.timestamp) / 3600), t.status.value) for t in left) == [
                (0, "SKIPPED"), (3, "FAILURE")]
