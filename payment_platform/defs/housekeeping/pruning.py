"""Finished ingestion, replay and checks runs deleted from Dagster's storage once they are older than a window, with
their events and compute logs; failed runs kept longer. What a run did stays where it matters: the payments in
the stores, the ranges in `ingested_ranges` and `ingestion_progress`. Every run of this job says in its metadata
what it removed, so the UI shows the pruning over time.

Deleting a run deletes its event log, so an asset's materializations and check evaluations older than the
window go with it: the window (HOUSEKEEPING_KEEP_RUNS_HOURS) is how far back the UI's history reaches. Sensor
ticks older than the same window go too (failed ones: the failed-runs window): a tick's runs are gone by then,
and the ingestion sensor ticks every few seconds (~0.3 MB an hour in the hour soak). The daemon's own tick
retention (`retention:` in dagster.yaml, a day) stays the backstop when this job does not run. The observations
the sensors record outside any run (platform health, the topic's lag) go too once older than the window, each
asset's latest kept: deleting runs never reaches them.
"""

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Optional

import dagster as dg

from payment_platform.config import retention_from_env
from payment_platform.defs.checks.checks import CHECKS_JOB
from payment_platform.defs.dagster_internals import purge_runless_events, purge_sensor_ticks
from payment_platform.defs.ingestion.runs import INGEST_JOB_NAME, LEASE_JOB_NAME
from payment_platform.defs.replay.replay import REPLAY_JOB

PRUNE_JOB = "prune_dagster_runs_job"
# The jobs that start many runs a day (the checks: 96, each with the events of every check it evaluated). What the
# checks proved stays in Postgres (proven ranges, the last passing cut), not in their runs.
PRUNED_JOBS = (LEASE_JOB_NAME, INGEST_JOB_NAME, REPLAY_JOB, CHECKS_JOB, PRUNE_JOB)
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.CANCELED)
FAILED = (dg.DagsterRunStatus.FAILURE,)
BATCH = 200  # runs read per query


@dataclass
class PruneReport:
    """What one pass removed: runs per job and status, compute-log folders, and what is left."""

    deleted: Counter = field(default_factory=Counter)  # (job, status) -> runs
    compute_logs_deleted: int = 0
    compute_log_errors: int = 0
    stopped_at_limit: bool = False
    seconds: float = 0.0

    @property
    def runs_deleted(self) -> int:
        return sum(self.deleted.values())


def _older_runs(instance: dg.DagsterInstance, job: str, statuses, before: datetime, limit: int) -> list[str]:
    records = instance.get_run_records(dg.RunsFilter(job_name=job, statuses=list(statuses), updated_before=before),
                                       limit=limit, ascending=True)
    return [record.dagster_run.run_id for record in records]


def _delete(instance: dg.DagsterInstance, run_id: str, report: PruneReport) -> None:
    try:
        instance.compute_log_manager.delete_logs(prefix=[run_id])
        report.compute_logs_deleted += 1
    except Exception:  # noqa: BLE001 - a log manager that cannot delete by prefix must not keep the run forever
        report.compute_log_errors += 1
    instance.delete_run(run_id)  # the run, its tags and its whole event log


def prune_runs(instance: dg.DagsterInstance, keep: timedelta, keep_failed: timedelta, *,
               jobs: tuple[str, ...] = PRUNED_JOBS, now: datetime | None = None, limit: int = 20_000,
               skip_run_id: str | None = None) -> PruneReport:
    """Deletes the finished runs of `jobs` last updated more than `keep` ago (failed ones: `keep_failed`), at
    most `limit` in one pass (the next pass goes on). Runs in flight are never touched."""
    began = time.monotonic()
    now = now or datetime.now(timezone.utc)
    report = PruneReport()
    for job in jobs:
        for statuses, window in ((FINISHED, keep), (FAILED, keep_failed)):
            while report.runs_deleted < limit:
                batch = [run_id for run_id in _older_runs(instance, job, statuses, now - window, BATCH)
                         if run_id != skip_run_id]
                if not batch:
                    break
                for run_id in batch[:limit - report.runs_deleted]:
                    status = instance.get_run_by_id(run_id).status.value
                    _delete(instance, run_id, report)
                    report.deleted[(job, status)] += 1
            report.stopped_at_limit = report.stopped_at_limit or report.runs_deleted >= limit
    report.seconds = time.monotonic() - began
    return report


class PruneConfig(dg.Config):
    """Windows in hours; unset: HOUSEKEEPING_KEEP_RUNS_HOURS / HOUSEKEEPING_KEEP_FAILED_RUNS_HOURS."""

    keep_runs_hours: Optional[float] = None
    keep_failed_runs_hours: Optional[float] = None
    max_runs: int = 20_000


@dg.op(name="prune_dagster_runs", description="Delete finished ingestion and replay runs older than the window, "
                                               "with their events and compute logs, and sensor ticks as old.")
def prune_dagster_runs(context: dg.OpExecutionContext, config: PruneConfig) -> dg.Output[int]:
    settings = retention_from_env()
    keep_h = settings.keep_runs_hours if config.keep_runs_hours is None else config.keep_runs_hours
    failed_h = settings.keep_failed_runs_hours if config.keep_failed_runs_hours is None else config.keep_failed_runs_hours
    report = prune_runs(context.instance, timedelta(hours=keep_h), timedelta(hours=failed_h), limit=config.max_runs,
                        skip_run_id=context.run.run_id)
    now = time.time()
    window_start = now - keep_h * 3600
    sensors = purge_sensor_ticks(context.instance, window_start, now - failed_h * 3600)
    runless = purge_runless_events(context.instance, window_start)
    kept = {job: context.instance.get_runs_count(dg.RunsFilter(job_name=job)) for job in PRUNED_JOBS}
    context.log.info(f"deleted {report.runs_deleted} runs older than {keep_h:g} h ({failed_h:g} h if failed) "
                     f"in {report.seconds:.1f} s, and {runless} run-less observations; runs kept: {kept}")
    metadata = {
        "runs_deleted": dg.MetadataValue.int(report.runs_deleted),
        "compute_logs_deleted": dg.MetadataValue.int(report.compute_logs_deleted),
        "compute_log_errors": dg.MetadataValue.int(report.compute_log_errors),
        "runs_kept": dg.MetadataValue.int(sum(kept.values())),
        "sensor_ticks_purged_before": dg.MetadataValue.timestamp(window_start),
        "sensors_purged": dg.MetadataValue.int(sensors),
        "runless_events_deleted": dg.MetadataValue.int(runless),
        "keep_runs_hours": dg.MetadataValue.float(float(keep_h)),
        "keep_failed_runs_hours": dg.MetadataValue.float(float(failed_h)),
        "stopped_at_limit": dg.MetadataValue.bool(report.stopped_at_limit),
        "seconds": dg.MetadataValue.float(round(report.seconds, 3)),
        "deleted_by_job_and_status": dg.MetadataValue.json(
            {f"{job} {status}": n for (job, status), n in sorted(report.deleted.items())}),
    }
    return dg.Output(report.runs_deleted, metadata=metadata)


@dg.job(name=PRUNE_JOB, description="Keep Dagster's storage bounded: delete finished ingestion, replay and checks runs "
                                    "older than HOUSEKEEPING_KEEP_RUNS_HOURS (failed: "
                                    "HOUSEKEEPING_KEEP_FAILED_RUNS_HOURS).",
        executor_def=dg.in_process_executor, tags={"dagster/max_runtime": "3600"})
def prune_dagster_runs_job():
    prune_dagster_runs()


prune_dagster_runs_schedule = dg.ScheduleDefinition(
    name="prune_dagster_runs_every_15_minutes", job=prune_dagster_runs_job, cron_schedule="*/15 * * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Prune finished ingestion and replay runs every 15 minutes (on by default: storage stays bounded).")
