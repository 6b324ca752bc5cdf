"""`payment-platform up`: the embedded stack plus `dagster dev` (webserver and daemon) and the read-only REST API
(`payment-platform api`, on 127.0.0.1) in the foreground.

Dagster's storage is the stack's Postgres (database `dagster`, via dagster.yaml and DAGSTER_POSTGRES_URL);
DAGSTER_HOME is `<data dir>/dagster_home`. Ctrl+C or SIGTERM stops Dagster, then the stack, within
`STOP_BUDGET_S` even under load (Dagster gets a few seconds of grace, then its whole tree is killed: a run
cut short is healed by the next start, as after a crash), and leaves no process behind.

Killed outright (SIGKILL, a closed terminal), this process cannot clean up, so the kernel does: each service
and the reaper in front of `dagster dev` die with it (PR_SET_PDEATHSIG), and the reaper, a child subreaper,
kills every process of Dagster's tree (code servers and run workers included, however they were started).
Every process of that tree carries `UP_MARK=<data dir>` in its environment, so `stack down` finds and stops
any that escaped even that.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from payment_platform.config import parse_port
from payment_platform.errors import UsageError
from payment_platform.lib.stop_signals import StopSignals
from payment_platform.serving import server as serving_server
from devstack.stack import processes, reaper
from devstack.stack.console import print_stack, start_from_args
from devstack.stack.dagster_process import dagster_tool, initialise_instance_storage, prepare_dagster_home

STOP_BUDGET_S = 10.0  # Ctrl+C to the last process gone
DAGSTER_GRACE_S = 2.0  # `dagster dev` stopping by itself; then the reaper kills what is left of its tree
DAGSTER_STOP_TIMEOUT_S = DAGSTER_GRACE_S + 2.0  # then this process kills the reaper's tree itself
SERVICE_STOP_TIMEOUT_S = 1.0  # at least, whatever the budget left
MAX_RESTARTS, RESTART_WINDOW_S = 5, 600.0  # dagster dev started again after exiting by itself, this often at most
UP_MARK = processes.UP_MARK


def dagster_command(workspace: Path, host: str, port: int) -> list[str]:
    """`dagster dev` behind a reaper, so nothing of its tree outlives it."""
    return reaper.command([dagster_tool("dagster"), "dev", "-w", str(workspace), "-h", host, "-p", str(port)],
                          DAGSTER_GRACE_S)


def run_dagster_dev(args) -> int:
    from devstack.stack.manager import StackStartError, port_in_use

    project_dir = Path.cwd()
    workspace = (project_dir / args.workspace).absolute()
    if not workspace.exists():
        raise UsageError(f"--workspace: {workspace} does not exist (run this from the project folder)")
    ui_port = parse_port("--dagster-port", args.dagster_port)
    if port_in_use(ui_port):
        raise UsageError(f"--dagster-port: port {ui_port} on 127.0.0.1 is already in use")
    api_port = parse_port("--api-port", args.api_port)
    if api_port == ui_port or port_in_use(api_port):
        raise UsageError(f"--api-port: port {api_port} on 127.0.0.1 is already in use")

    began = time.monotonic()
    with StopSignals() as signals:
        try:
            stack = start_from_args(args, owned=True)
        except StackStartError as error:
            print(f"payment-platform up: error: {error}", file=sys.stderr)
            return 1
        dagster, dagster_ref, api, api_ref = None, None, None, None
        name = None  # the signal that stopped `up`, if one did
        log = stack.data_dir / "logs" / "dagster.log"
        try:
            print_stack(stack, time.monotonic() - began)
            home = prepare_dagster_home(stack.data_dir / "dagster_home", project_dir=project_dir)
            env = {**os.environ, **stack.env(), "DAGSTER_HOME": str(home), UP_MARK: str(stack.data_dir)}
            initialise_instance_storage(home, env)
            # cwd is DAGSTER_HOME: Dagster warns about a dagster.yaml in its cwd that is not DAGSTER_HOME's;
            # workspace.yaml's working_directory is relative to the workspace file, not to the cwd.
            def start_dagster():
                started = processes.spawn(dagster_command(workspace, "127.0.0.1", ui_port), log, env=env,
                                          cwd=home, die_with_parent=True, death_signal=signal.SIGTERM)
                return started, processes.ProcessRef.of(started.pid)

            dagster, dagster_ref = start_dagster()
            print(f"dagster dev: UI on http://localhost:{ui_port} (log {log})")
            api_log = stack.data_dir / "logs" / "api.log"
            api = processes.spawn(serving_server.command("127.0.0.1", api_port), api_log,
                                  env={**os.environ, **stack.env(), UP_MARK: str(stack.data_dir)}, cwd=project_dir,
                                  die_with_parent=True)
            api_ref = processes.ProcessRef.of(api.pid)
            print(f"REST API: http://127.0.0.1:{api_port} (docs /docs; log {api_log})")
            print("Ctrl+C stops Dagster, the API and the stack", flush=True)
            restarts: list[float] = []
            while True:
                name = signals.wait(stop_when=lambda running=dagster: running.poll() is not None)
                if name is not None:
                    break
                # dagster dev ends when its daemon or webserver dies (an OOM kill, a crash): the platform must
                # not end with it. Its tree is gone (the reaper); start it again, unless it keeps failing.
                restarts = [t for t in restarts if time.monotonic() - t < RESTART_WINDOW_S] + [time.monotonic()]
                if len(restarts) > MAX_RESTARTS:
                    print(f"dagster dev exited {len(restarts)} times in {RESTART_WINDOW_S / 60:.0f} min: "
                          f"stopping Dagster and the stack (see {log})", flush=True)
                    break
                print(f"dagster dev exited with status {dagster.returncode}: starting it again (see {log})",
                      flush=True)
                processes.stop(dagster_ref, signal.SIGTERM, timeout=DAGSTER_STOP_TIMEOUT_S, popen=dagster)
                dagster, dagster_ref = start_dagster()
            if name is not None:
                print(f"{name}: stopping Dagster and the stack", flush=True)
        except KeyboardInterrupt as interrupt:
            name = str(interrupt) or "interrupted"
            print("interrupted: stopping Dagster and the stack", flush=True)
        finally:
            signals.stop_interrupting()  # a second Ctrl+C cannot cut the shutdown short
            stopping = time.monotonic()
            with ThreadPoolExecutor(max_workers=2) as pool:  # the API and Dagster stop together
                if api_ref is not None:
                    pool.submit(processes.stop, api_ref, signal.SIGTERM, timeout=DAGSTER_STOP_TIMEOUT_S, popen=api)
                if dagster_ref is not None:
                    pool.submit(processes.stop, dagster_ref, signal.SIGTERM, timeout=DAGSTER_STOP_TIMEOUT_S,
                                popen=dagster)
            processes.stop_marked(UP_MARK, str(stack.data_dir), timeout=1.0)  # anything that escaped both
            dagster_s = time.monotonic() - stopping
            if not stack.already_running:
                left = STOP_BUDGET_S - dagster_s - 0.5
                stack.stop(timeout=max(SERVICE_STOP_TIMEOUT_S, left))
            print(f"shut down in {time.monotonic() - stopping:.1f} s (Dagster and the API {dagster_s:.1f} s, "
                  f"then the stack)", flush=True)
    stopped_by_us = name is not None
    if dagster is not None and not stopped_by_us and dagster.returncode not in (0, -signal.SIGTERM, -signal.SIGINT):
        print(f"payment-platform up: error: dagster dev exited with status {dagster.returncode}; see {log}",
              file=sys.stderr)
        return 1
    print("stopped")
    return 0
