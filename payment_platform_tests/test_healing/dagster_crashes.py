"""Crashing Dagster in the healing tests: the real daemon's process tree SIGKILLed as a host crash would, and
the moment Dagster counts as back (every daemon beating again), from which the platform has 90 s to heal."""
from __future__ import annotations

import time

import dagster as dg
import psutil

from payment_platform.defs.run_workers import WORKER_PID_TAG
from payment_platform_tests.waiting import watching, wait_until
from devstack.stack.dagster_process import DagsterDaemon

RESUME_S = 90  # the target: ingestion and replay resume within 90 s of Dagster coming back (its daemon beating)
BOOT_S = 180  # booting the daemon and its code server takes 10-50 s on this shared machine


def crash(daemon: DagsterDaemon) -> list[int]:
    """SIGKILL the daemon and every process under it (code server, run workers); returns their pids."""
    root = psutil.Process(daemon.process.pid)
    members = [root] + root.children(recursive=True)
    for member in members:
        member.kill()
    psutil.wait_procs(members, timeout=10)
    daemon.process.wait(timeout=10)
    daemon.process = None
    return [m.pid for m in members]


def crash_while_working(daemon: DagsterDaemon, runs, timeout_s: float) -> dg.DagsterRun:
    """Waits until one of `runs()` is working (STARTED, its worker recorded in its tags), then crashes Dagster;
    returns that run, as the crash left it. The caller makes the run hang inside its work (a frozen store)."""

    def working():
        return [r for r in runs() if r.status == dg.DagsterRunStatus.STARTED and WORKER_PID_TAG in r.tags]

    caught = wait_until(working, timeout_s, "a run seen working", every_s=0.2, **watching(daemon))
    killed = crash(daemon)
    worker = int(caught[0].tags[WORKER_PID_TAG])
    assert worker in killed and not psutil.pid_exists(worker)
    return caught[0]


def wait_until_back(instance: dg.DagsterInstance, daemon: DagsterDaemon, restarted_at: float) -> float:
    """Blocks until every daemon of the restarted `dagster-daemon` (started at epoch `restarted_at`) has beaten;
    returns that moment (time.monotonic()). Fails the test with the daemon's log if it never comes back."""

    def beating():
        beats = instance.get_daemon_heartbeats()
        return beats and min(beat.timestamp for beat in beats.values()) > restarted_at

    wait_until(beating, BOOT_S, "every daemon of the restarted dagster-daemon beating", every_s=0.5, **watching(daemon))
    return time.monotonic()
