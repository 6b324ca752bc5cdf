"""`payment-platform up`: the embedded stack plus `dagster dev` (webserver and daemon) and the read-only REST API
(`payment-platform api`, on 127.0.0.1) in the foreground.

Dagster's storage is the stack's Postgres (database `dagster`, via dagster.yaml and DAGSTER_POSTGRES_URL);
DAGSTER_HOME is `<data dir>/dagster_home`. Ctrl+C or SIGTERM stops Dagster, then the stack, and leaves
no process behind; the services are also tied to this process if it is killed outright.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from payment_platform.config import parse_port
from payment_platform.errors import UsageError
from payment_platform.lib.stop_signals import StopSignals
from payment_platform.serving import server as serving_server
from devstack.stack import processes
from devstack.stack.console import print_stack, start_from_args
from devstack.stack.dagster_process import dagster_tool, initialise_instance_storage, prepare_dagster_home

DAGSTER_STOP_TIMEOUT_S = 30.0


def dagster_command(workspace: Path, host: str, port: int) -> list[str]:
    return [dagster_tool("dagster"), "dev", "-w", str(workspace), "-h", host, "-p", str(port)]


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
        log = stack.data_dir / "logs" / "dagster.log"
        try:
            print_stack(stack, time.monotonic() - began)
            home = prepare_dagster_home(stack.data_dir / "dagster_home", project_dir=project_dir)
            env = {**os.environ, **stack.env(), "DAGSTER_HOME": str(home)}
            initialise_instance_storage(home, env)
            # cwd is DAGSTER_HOME: Dagster warns about a dagster.yaml in its cwd that is not DAGSTER_HOME's;
            # workspace.yaml's working_directory is relative to the workspace file, not to the cwd.
            dagster = processes.spawn(dagster_command(workspace, "127.0.0.1", ui_port), log, env=env,
                                      cwd=home, die_with_parent=True, death_signal=signal.SIGTERM)
            dagster_ref = processes.ProcessRef.of(dagster.pid)
            print(f"dagster dev: UI on http://localhost:{ui_port} (log {log})")
            api_log = stack.data_dir / "logs" / "api.log"
            api = processes.spawn(serving_server.command("127.0.0.1", api_port), api_log,
                                  env={**os.environ, **stack.env()}, cwd=project_dir, die_with_parent=True)
            api_ref = processes.ProcessRef.of(api.pid)
            print(f"REST API: http://127.0.0.1:{api_port} (docs /docs; log {api_log})")
            print("Ctrl+C stops Dagster, the API and the stack", flush=True)
            name = signals.wait(stop_when=lambda: dagster.poll() is not None)
            print(f"{name or 'dagster dev exited'}: stopping Dagster and the stack", flush=True)
        except KeyboardInterrupt:
            print("interrupted: stopping Dagster and the stack", flush=True)
        finally:
            signals.stop_interrupting()  # a second Ctrl+C cannot cut the shutdown short
            if api_ref is not None:
                processes.stop(api_ref, signal.SIGTERM, timeout=10, popen=api)
            if dagster_ref is not None:
                processes.stop(dagster_ref, signal.SIGTERM, timeout=DAGSTER_STOP_TIMEOUT_S, popen=dagster)
            if not stack.already_running:
                stack.stop()
    if dagster is not None and dagster.returncode not in (0, -signal.SIGTERM, -signal.SIGINT):
        print(f"payment-platform up: error: dagster dev exited with status {dagster.returncode}; see {log}",
              file=sys.stderr)
        return 1
    print("stopped")
    return 0
