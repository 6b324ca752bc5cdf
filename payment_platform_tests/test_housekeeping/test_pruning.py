"""The housekeeping job keeps Dagster's storage bounded: finished runs older than the window go, with their events
and compute logs; failed runs stay longer; what is inside the window (materializations, check evaluations) stays
queryable."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from payment_platform.defs.housekeeping.pruning import prune_dagster_runs_job, prune_runs

pytestmark = pytest.mark.stack

LANDING_JOB, FAILING_JOB = "soak_landing_job", "soak_failing_job"
CHECK_KEY = dg.AssetCheckKey(dg.AssetKey("soak_payments"), "soak_rows_match")


@dg.asset(key="soak_payments")
def soak_payments() -> dg.MaterializeResult:
    print("landed a range")  # noqa: T201 - a compute log for pruning to delete
    return dg.MaterializeResult(metadata={"rows": 10})


@dg.asset_check(asset="soak_payments", name="soak_rows_match")
def soak_rows_match() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset(key="soak_broken")
def soak_broken() -> None:
    raise RuntimeError("store down")


@dg.op
def observe_in_a_run(context) -> None:
    context.log_event(dg.AssetObservation("soak_lag", metadata={"in_run": True}))


@dg.job(name="soak_observing_job")
def soak_observing_job():
    observe_in_a_run()


DEFS = dg.Definitions(assets=[soak_payments, soak_broken], asset_checks=[soak_rows_match],
                      jobs=[dg.define_asset_job(LANDING_JOB, selection=["soak_payments"]),
                            dg.define_asset_job(FAILING_JOB, selection=["soak_broken"]), soak_observing_job])


def _run(instance: dg.DagsterInstance, job: str) -> str:
    result = DEFS.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)
    return result.run_id


def _checked_runs(instance: dg.DagsterInstance) -> set[str]:
    history = instance.event_log_storage.get_asset_check_execution_history(CHECK_KEY, limit=1000)
    return {execution.run_id for execution in history}


def test_storage_stops_growing_and_the_window_stays_queryable(private_dagster):
    instance = private_dagster.instance
    round_starts, runs_per_round, counts, deleted = [], [], [], []
    for round_number in range(6):
        round_starts.append(datetime.now(timezone.utc))
        time.sleep(0.05)
        runs_per_round.append([_run(instance, LANDING_JOB) for _ in range(3)])
        if round_number >= 1:  # the window is "since the previous round began": the last two rounds stay
            report = prune_runs(instance, keep=timedelta(0), keep_failed=timedelta(days=7), jobs=(LANDING_JOB,),
                                now=round_starts[round_number - 1])
            deleted.append(report.runs_deleted)
        counts.append(private_dagster.row_counts())

    assert deleted == [0, 3, 3, 3, 3]
    # From the third round on, every round adds what pruning removes: runs, tags, events stop growing.
    assert counts[2] == counts[3] == counts[4] == counts[5]
    assert counts[5]["runs"] == 6 and counts[5]["event_logs"] > 0

    window = set(runs_per_round[-2]) | set(runs_per_round[-1])
    gone = {run_id for ids in runs_per_round[:-2] for run_id in ids}
    materializations = instance.fetch_materializations(dg.AssetKey("soak_payments"), limit=100).records
    assert {record.run_id for record in materializations} == window
    assert window <= _checked_runs(instance)
    for run_id in window:
        assert instance.get_run_by_id(run_id).is_success
        assert (private_dagster.home / "storage" / run_id).is_dir()  # its compute logs
    for run_id in gone:
        assert instance.get_run_by_id(run_id) is None
        assert not (private_dagster.home / "storage" / run_id).exists()


def test_failed_runs_are_kept_longer_and_runs_in_the_window_stay(private_dagster):
    instance = private_dagster.instance
    failed, landed = _run(instance, FAILING_JOB), _run(instance, LANDING_JOB)
    assert instance.get_run_by_id(failed).status == dg.DagsterRunStatus.FAILURE
    later = datetime.now(timezone.utc) + timedelta(hours=2)

    # Two hours on, with a one-hour window for finished runs and a day for failed ones: only the landed run goes.
    report = prune_runs(instance, timedelta(hours=1), timedelta(days=1), jobs=(LANDING_JOB, FAILING_JOB), now=later)
    assert report.runs_deleted == 1 and dict(report.deleted) == {(LANDING_JOB, "SUCCESS"): 1}
    assert instance.get_run_by_id(landed) is None and instance.get_run_by_id(failed) is not None

    # Inside both windows nothing goes; past the failed window the failed run goes too.
    assert prune_runs(instance, timedelta(hours=3), timedelta(hours=3), jobs=(FAILING_JOB,), now=later).runs_deleted == 0
    report = prune_runs(instance, timedelta(hours=1), timedelta(hours=1), jobs=(FAILING_JOB,), now=later)
    assert dict(report.deleted) == {(FAILING_JOB, "FAILURE"): 1}
    assert instance.get_run_by_id(failed) is None


def test_a_run_in_flight_is_never_pruned(private_dagster):
    instance = private_dagster.instance
    started = instance.create_run_for_job(DEFS.resolve_job_def(LANDING_JOB), status=dg.DagsterRunStatus.STARTED)
    later = datetime.now(timezone.utc) + timedelta(days=30)
    assert prune_runs(instance, timedelta(0), timedelta(0), jobs=(LANDING_JOB,), now=later).runs_deleted == 0
    assert instance.get_run_by_id(started.run_id) is not None


def test_the_job_says_what_it_removed(private_dagster):
    instance = private_dagster.instance
    old = [_run(instance, LANDING_JOB) for _ in range(3)]
    for run_id in old[:2]:  # the housekeeping job prunes the platform's jobs: give these runs an ingestion job's name
        _rename_job(private_dagster, run_id, "ingest_payments_range_job")
    _rename_job(private_dagster, old[2], "consistency_checks_job")  # 96 a day: pruned too
    time.sleep(0.05)
    result = prune_dagster_runs_job.execute_in_process(
        instance=instance, run_config={"ops": {"prune_dagster_runs": {"config": {"keep_runs_hours": 0.0}}}})
    assert result.success
    metadata = _output_metadata(result)
    assert metadata["runs_deleted"].value == 3
    assert metadata["compute_logs_deleted"].value == 3
    assert metadata["deleted_by_job_and_status"].value == {"ingest_payments_range_job SUCCESS": 2,
                                                           "consistency_checks_job SUCCESS": 1}
    assert metadata["sensors_purged"].value == 0  # no sensor ever ticked on this instance
    assert metadata["sensor_ticks_purged_before"].value <= time.time()
    assert all(instance.get_run_by_id(run_id) is None for run_id in old)
    assert instance.get_run_by_id(result.run_id) is not None  # it never deletes itself


def test_runless_observations_older_than_the_window_go_each_assets_latest_stays(private_dagster):
    """The sensors' observations belong to no run, so deleting runs never reaches them (most of event_logs' growth
    in the hour soak): the housekeeping job deletes those older than the window, keeping each asset's latest."""
    import psycopg2

    from payment_platform.defs.dagster_internals import purge_runless_events

    instance = private_dagster.instance
    for i in range(5):
        instance.report_runless_asset_event(dg.AssetObservation("soak_lag", metadata={"i": i},
                                                                tags={"dagster/data_version": f"v{i}"}))
    for i in range(2):
        instance.report_runless_asset_event(dg.AssetObservation("soak_health", metadata={"i": i}))
    in_run = soak_observing_job.execute_in_process(instance=instance).run_id
    assert purge_runless_events(instance, before=time.time() - 3600) == 0  # all inside the window
    time.sleep(0.05)
    result = prune_dagster_runs_job.execute_in_process(
        instance=instance, run_config={"ops": {"prune_dagster_runs": {"config": {"keep_runs_hours": 0.0}}}})
    assert _output_metadata(result)["runless_events_deleted"].value == 4 + 1

    def observations(key: str) -> list:
        return instance.fetch_observations(dg.AssetKey(key), limit=100).records

    assert [r.asset_observation.metadata["i"].value for r in observations("soak_health")] == [1]
    lag = observations("soak_lag")
    assert sorted((r.run_id, r.asset_observation.metadata.get("i", None) is not None) for r in lag) == \
        sorted([("", True), (in_run, False)])  # the latest run-less one, and the run's own (its run prunes it)
    assert [r.asset_observation.metadata["i"].value for r in lag if not r.run_id] == [4]
    with psycopg2.connect(private_dagster.dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT value FROM asset_event_tags WHERE asset_key = %s", ('["soak_lag"]',))
        assert [row[0] for row in cur.fetchall()] == ["v4"]
    conn.close()


def _rename_job(private_dagster, run_id: str, job_name: str) -> None:
    import psycopg2

    with psycopg2.connect(private_dagster.dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE runs SET pipeline_name = %s WHERE run_id = %s", (job_name, run_id))
    conn.close()


def _output_metadata(result: dg.ExecuteInProcessResult) -> dict:
    outputs = [event for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_OUTPUT]
    return outputs[0].event_specific_data.metadata
