"""`payment-platform up` as a user runs it, from a test or a benchmark: on free ports in its own data dir, with
the platform's defaults (no setting of this shell points it elsewhere), ready once the Dagster UI has loaded the
code location; stopped with SIGINT (what Ctrl+C delivers), whatever is left of its process tree killed after.

Shared by test_e2e/test_up_lands.py and benchmarks/bench_sustained.py.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from payment_platform.config import ALL_ENV_VARS, ENV_VARS
from devstack.stack import processes
from devstack.stack.manager import PORTS_SETTING, Stack, free_ports, load_stack
from devstack.stack.services import SERVICES

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCATIONS_QUERY = ("{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                   "locationOrLoadError { __typename ... on PythonError { message } } } } } }")


def accept_ctrl_c() -> None:
    """Started in the background by a non-interactive shell (`bench.py &`, nohup), this process ignores SIGINT, and
    so would every child it starts (exec keeps an ignored signal): `up` and `produce` would then never see the Ctrl+C
    a test or benchmark stops them with. Restore Python's own handler, which children get back as the default."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class UpFailed(RuntimeError):
    """`payment-platform up` exited or did not get ready in time; the message carries the end of its logs."""


def clean_env(*, keep_scaling: bool = True, **extra: str) -> dict[str, str]:
    """This process's environment without the settings that would point `up` elsewhere (services, ports,
    DAGSTER_HOME). The scaling knobs (HBASE_SALT_BUCKETS, batch sizes...) pass through as in the rest of the suite,
    unless keep_scaling=False: then `up` runs with every default of its own (the benchmark)."""
    dropped = set(ENV_VARS if keep_scaling else ALL_ENV_VARS) | {PORTS_SETTING, "DAGSTER_HOME"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(extra)
    return env


class RunningUp:
    """`payment-platform up --data-dir DATA_DIR` on free ports; a context manager (started and ready on enter)."""

    def __init__(self, data_dir: Path, *, ready_timeout_s: float = 240.0, keep_scaling: bool = True):
        self.data_dir = Path(data_dir)
        self.ready_timeout_s = ready_timeout_s
        # the webserver's and daemon's calls to the code server time out after 60 s by default: on the shared
        # 2-core machine under load that would refuse runs that start fine a little later (as test_ui does)
        self.env = clean_env(keep_scaling=keep_scaling, DAGSTER_GRPC_TIMEOUT_SECONDS="300")
        *self.service_ports, self.ui_port, self.api_port = free_ports(len(SERVICES) + 2)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-up.log"
        self.process: subprocess.Popen | None = None
        self.stack: Stack | None = None

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster_home"

    def start(self) -> "RunningUp":
        ports = [arg for name, port in zip(SERVICES, self.service_ports) for arg in ("--port", f"{name}={port}")]
        # its own session: a Ctrl+C in the terminal reaches only this process, which stops `up` deliberately; and
        # SIGINT (its Ctrl+C) if this process dies, even by SIGKILL: `up` never outlives whoever started it
        self.process = processes.spawn(
            [sys.executable, "-m", "payment_platform.cli", "up", "--data-dir", str(self.data_dir),
             "--dagster-port", str(self.ui_port), "--api-port", str(self.api_port), *ports],
            self.log_path, env=self.env, cwd=PROJECT_ROOT, die_with_parent=True, death_signal=signal.SIGINT)
        return self

    def wait_ready(self) -> Stack:
        """Blocks until the stack is recorded and the UI has loaded the code location; raises UpFailed if not."""
        deadline = time.monotonic() + self.ready_timeout_s
        last: object = None
        while time.monotonic() < deadline:
            self.check()
            try:
                entries = self.graphql(LOCATIONS_QUERY)["data"]["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    errors = [e for e in entries if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"]
                    if errors:
                        raise UpFailed(f"the code location did not load: {errors}")
                    self.stack = load_stack(self.data_dir)
                    if self.stack is not None:
                        return self.stack
                last = entries
            except (OSError, ValueError, KeyError) as error:
                last = error
            time.sleep(1.0)
        raise UpFailed(f"`payment-platform up` was not ready in {self.ready_timeout_s:.0f} s (last answer of the UI: "
                       f"{last}); {self.log_tail()}")

    def graphql(self, query: str, timeout_s: float = 5.0) -> dict:
        request = urllib.request.Request(f"http://127.0.0.1:{self.ui_port}/graphql",
                                         data=json.dumps({"query": query}).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())

    def check(self) -> None:
        """Raises UpFailed if `up` has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise UpFailed(f"`payment-platform up` exited with status {self.process.returncode}; {self.log_tail()}")

    def log_tail(self, lines: int = 12) -> str:
        tails = []
        for path in (self.log_path, self.data_dir / "logs" / "dagster.log"):
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            tails.append(f"end of {path}: " + " | ".join(tail))
        return "; ".join(tails) or "(no log yet)"

    def stop(self, timeout_s: float = 90.0) -> int | None:
        """SIGINT (Ctrl+C) to `up`, which stops Dagster, the API and the stack; anything left after `timeout_s`
        is killed. Returns up's exit status."""
        if self.process is None:
            return None
        try:
            members = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            members = []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        _, alive = psutil.wait_procs(members, timeout=10)
        for member in alive:
            try:
                member.kill()
            except psutil.NoSuchProcess:
                pass
        status, self.process = self.process.returncode, None
        return status

    def __enter__(self) -> "RunningUp":
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
