"""Runs whose worker process died (SIGKILL, OOM, the host's Dagster crashed): found and marked failed in seconds.

Dagster's default run launcher cannot check a run worker's health, so a run whose worker was killed stays STARTED
until run monitoring's `dagster/max_runtime` cancels it (minutes), holding its partition (ingestion) or blocking
replay. Instead each run records its worker's pid, host and process start time in its tags when it starts
(`record_worker`), and the sensors that wait on those runs check them every tick (`fail_dead_runs`): a worker that
is gone from this host (or whose pid now belongs to a younger process) gets its run marked failed, so the range is
retried (run retries, then the sensor) or replay requested again. Progress in Postgres and idempotent writes make
a re-run harmless. Runs on other hosts (e.g. Kubernetes pods) are left to their launcher's own health checks.
"""
from __future__ import annotations

import os
import socket
import time

import dagster as dg
import psutil

from payment_platform.defs.dagster_internals import worker_lost_failure

WORKER_PID_TAG = "payment_platform/worker_pid"
WORKER_HOST_TAG = "payment_platform/worker_host"
WORKER_STARTED_TAG = "payment_platform/worker_started"  # the process's start time (epoch s): pids are reused
# The run that recorded them: Dagster's run retries copy the parent's tags, and a retry that has not recorded its
# own worker yet must not be judged by its dead parent's pid.
WORKER_RUN_TAG = "payment_platform/worker_run"


def record_worker(context) -> None:
    """Tag the running run with this process (best effort: without the tags only max_runtime would catch it)."""
    try:
        me = psutil.Process(os.getpid())
        run_id = context.run.run_id
        context.instance.add_run_tags(run_id, {
            WORKER_PID_TAG: str(me.pid), WORKER_HOST_TAG: socket.gethostname(),
            WORKER_STARTED_TAG: f"{me.create_time():.3f}", WORKER_RUN_TAG: run_id})
    except Exception as error:  # noqa: BLE001 - never fail the work for its bookkeeping
        context.log.warning(f"could not record the run worker's pid in the run's tags: {error!r}")


# A run records its worker as the first thing its op does, within seconds of STARTED. One STARTED this long without
# a record of its own was killed while starting (before it could record anything): judged dead, not left to
# max_runtime.
UNRECORDED_WORKER_SECONDS = 60.0


def dead_worker(run: dg.DagsterRun, host: str | None = None, started_at: float | None = None,
                now: float | None = None) -> str | None:
    """Why this STARTED run's worker is known to be dead, or None (alive, or not knowable from here).
    `started_at`: when the run started (its record's start_time), to judge a run that never recorded its worker."""
    tags = run.tags
    if run.status != dg.DagsterRunStatus.STARTED:
        return None
    if WORKER_PID_TAG not in tags or tags.get(WORKER_RUN_TAG) != run.run_id:
        now = time.time() if now is None else now
        if started_at is not None and now - started_at > UNRECORDED_WORKER_SECONDS:
            return (f"it started {now - started_at:.0f}s ago and never recorded its worker process (killed while "
                    f"starting)")
        return None
    here = host or socket.gethostname()
    if tags.get(WORKER_HOST_TAG) != here:
        return None
    try:
        pid, started = int(tags[WORKER_PID_TAG]), float(tags.get(WORKER_STARTED_TAG, "0"))
        process = psutil.Process(pid)
        if started and abs(process.create_time() - started) > 1.0:
            return f"its worker process {pid} on {here} is gone (the pid now belongs to another process)"
        if process.status() == psutil.STATUS_ZOMBIE:
            return f"its worker process {pid} on {here} has exited"
        return None
    except psutil.NoSuchProcess:
        return f"its worker process {tags[WORKER_PID_TAG]} on {here} is gone"
    except (ValueError, psutil.Error):
        return None


def fail_dead_runs(instance: dg.DagsterInstance, records, log=None) -> list[str]:
    """Mark failed every run among `records` whose worker died; returns their run ids."""
    failed = []
    for record in records:
        run = record.dagster_run
        why = dead_worker(run, started_at=record.start_time)
        if why is None:
            continue
        message = (f"run worker died: {why}; marked failed by payment_platform so its work is planned again "
                   f"(a re-run changes nothing already done)")
        instance.report_run_failed(run, message, worker_lost_failure())
        if log is not None:
            log.warning(f"run {run.run_id}: {message}")
        failed.append(run.run_id)
    return failed
