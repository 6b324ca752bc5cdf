"""Dagster's processes against a stack, in one place: the DAGSTER_HOME (the project's dagster.yaml, the one
source of Dagster's instance settings), the instance storage created before any Dagster process starts, and
the real `dagster-daemon` (sensors, schedules, run queue, run retries).

The daemon is used by the demo, the end-to-end tests and the latency benchmark: a DAGSTER_HOME holding the
project's dagster.yaml (storage in the stack's Postgres through DAGSTER_POSTGRES_URL), the project's
workspace.yaml, and the stack's environment. Stopping it stops the whole process tree (code server and
run workers included).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping

import payment_platform
from devstack.stack.processes import terminate_then_kill
from payment_platform.errors import UsageError
from payment_platform.scaling.run_limits import apply_run_limits

# The product's checkout (workspace.yaml, dagster.yaml): the folder holding the payment_platform package
PROJECT_ROOT = Path(payment_platform.__file__).resolve().parents[1]


class DaemonError(RuntimeError):
    """dagster-daemon could not be started or died; the message carries the end of its log."""


def prepare_dagster_home(home: Path, env: Mapping[str, str] | None = None, *, dagster_yaml: Path | None = None,
                         project_dir: Path = PROJECT_ROOT) -> Path:
    """A DAGSTER_HOME holding the project's dagster.yaml (copied fresh each time, so edits take effect) with the
    run coordinator's limits from the scaling knobs in `env` (default os.environ), or `dagster_yaml` as it is
    when given (to compare instance settings)."""
    source = Path(dagster_yaml) if dagster_yaml else project_dir / "dagster.yaml"
    if not source.is_file():
        raise UsageError(f"dagster.yaml: not found at {source} (run this from the project folder)")
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, home / "dagster.yaml")
    if dagster_yaml is None:
        apply_run_limits(home / "dagster.yaml", env)
    return home


def dagster_tool(name: str) -> str:
    """The Dagster command `name` installed beside this Python (the virtualenv's), else the one on PATH."""
    binary = Path(sys.executable).with_name(name)
    return str(binary) if binary.exists() else name


def initialise_instance_storage(home: Path, env: Mapping[str, str], timeout_s: float = 120.0) -> None:
    """Creates (or migrates) Dagster's tables before any Dagster process starts. On an empty database the
    webserver, the daemon and `dagster schedule start` would otherwise race to create the same tables and
    one of them dies with "already exists"."""
    done = subprocess.run([dagster_tool("dagster"), "instance", "migrate"], cwd=home,
                          env={**env, "DAGSTER_HOME": str(home)}, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout_s)
    if done.returncode != 0:
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise RuntimeError(f"could not create Dagster's storage (dagster instance migrate): {tail}")


def _code_location_args() -> list[str]:
    workspace = PROJECT_ROOT / "workspace.yaml"
    return ["-w", str(workspace)] if workspace.is_file() else ["-m", "payment_platform.definitions"]


def _daemon_command() -> list[str]:
    return [dagster_tool("dagster-daemon"), "run", *_code_location_args()]


class DagsterDaemon:
    """`dagster-daemon run` as a child process in its own session; a context manager."""

    def __init__(self, home: Path, env: Mapping[str, str], log_path: Path, dagster_yaml: Path | None = None):
        if not env.get("DAGSTER_POSTGRES_URL"):
            from payment_platform.config import ConfigError

            raise ConfigError("DAGSTER_POSTGRES_URL", "must be set for dagster-daemon (postgresql+psycopg2://...)")
        self.env = {**os.environ, **env}
        self.home = prepare_dagster_home(Path(home), self.env, dagster_yaml=dagster_yaml)
        self.env["DAGSTER_HOME"] = str(self.home)
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None

    def start(self) -> "DagsterDaemon":
        try:
            initialise_instance_storage(self.home, self.env)
        except RuntimeError as error:
            raise DaemonError(str(error)) from None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(_daemon_command(), cwd=PROJECT_ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=_die_with_parent)
        return self

    def start_schedule(self, name: str, timeout_s: float = 120.0) -> None:
        """Turns a schedule on in this instance (`dagster schedule start`); raises DaemonError if it cannot."""
        self._schedule_command("start", name, timeout_s)

    def stop_schedule(self, name: str, timeout_s: float = 120.0) -> None:
        """Turns a schedule off again (`dagster schedule stop`); raises DaemonError if it cannot."""
        self._schedule_command("stop", name, timeout_s)

    def _schedule_command(self, verb: str, name: str, timeout_s: float) -> None:
        done = subprocess.run([dagster_tool("dagster"), "schedule", verb, name, *_code_location_args()], cwd=PROJECT_ROOT,
                              env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout_s)
        if done.returncode != 0:
            tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            raise DaemonError(f"could not {verb} schedule {name!r}: {tail}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise DaemonError(f"dagster-daemon exited with status {self.process.returncode}: {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the daemon's process tree, then SIGKILL to whatever is left."""
        if self.process is None:
            return
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            members = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            members = []
        terminate_then_kill(members, timeout, kill_wait=5)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # anything still in the daemon's session group
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> "DagsterDaemon":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _die_with_parent() -> None:
    """Linux: the daemon gets SIGTERM if the process that started it dies (no orphan daemons)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def wait_for(predicate, timeout_s: float, interval_s: float = 1.0, daemon: DagsterDaemon | None = None):
    """Poll predicate() until it returns a truthy value or the timeout passes; returns the last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        if daemon is not None:
            daemon.check()
        time.sleep(interval_s)
