"""`payment-platform demo`: the main flow, headless, as a sequence of named steps over one summary dict.

Each step reads what it needs from the `DemoRun` and records what it did in `run.summary`; the summary
is printed at the end (as text, or as JSON with --json). The steps after "check health" (start the Dagster
daemon, generate and publish, wait for ingestion, stop the daemon) live in `devstack.demo.flow`;
a step added to `STEPS` runs without touching the others.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from payment_platform.config import ConfigError
from devstack.demo import flow as demo_flow
from devstack.demo.accounting import SUMMARY_KEYS
from devstack.demo.state import DemoOptions, DemoRun, DemoStepFailed
from payment_platform.errors import UsageError
from payment_platform.lib.stop_signals import StopSignals

# ---------------------------------------------------------------- steps
def start_stack(run: DemoRun) -> None:
    """Brings up the embedded stack (services named by the environment are used instead)."""
    from devstack.stack.manager import start_stack as start

    data_dir = run.options.data_dir
    if data_dir is None:
        run.temporary_dir = data_dir = Path(tempfile.mkdtemp(prefix="payment-platform-demo-"))
    run.summary["data_dir"] = str(data_dir)
    # Free ports, so the demo never collides with a `make up` stack on the default ones.
    run.stack = start(data_dir, use_default_ports=False, owned=not run.options.keep_stack,
                      data_dir_setting="--data-dir")
    run.summary["data_dir"] = str(run.stack.data_dir)
    run.summary["endpoints"] = endpoint_summary(run.stack.endpoints)
    run.summary["topic"] = run.stack.endpoints.topic
    run.summary["dagster_postgres_url"] = run.stack.dagster_postgres_url
    run.summary["stack_reused"] = run.stack.already_running


def check_health(run: DemoRun) -> None:
    """Probes every service; a service that does not answer fails the demo."""
    health = run.stack.health()
    run.summary["health"] = {h.name: ("healthy" if h.healthy else h.error) for h in health}
    down = [h.name for h in health if not h.healthy]
    if down:
        raise DemoStepFailed(f"services not healthy: {', '.join(down)}")


STEPS: list[tuple[str, Callable[[DemoRun], None]]] = [
    ("start stack", start_stack),
    ("check health", check_health),
    *demo_flow.STEPS,  # start dagster-daemon, generate and publish, ingest (sensor runs), stop dagster-daemon
]


def tear_down(run: DemoRun) -> None:
    """Stops what the demo started (unless --keep-stack or the stack was already running)."""
    demo_flow.stop_dagster_daemon(run)  # the daemon never outlives the demo, even after a failed step
    stack = run.stack
    if stack is None:
        _remove_temporary(run)
        return
    if run.options.keep_stack or stack.already_running:
        run.summary["stack_left_running"] = True
        run.summary["stop_with"] = f"payment-platform stack down --data-dir {stack.data_dir}"
        return
    stack.stop()
    run.summary["stack_left_running"] = False
    _remove_temporary(run)


def _remove_temporary(run: DemoRun) -> None:
    if run.temporary_dir is not None:
        from devstack.stack.manager import remove_data_dir

        remove_data_dir(run.temporary_dir)  # and its Postgres cluster, kept outside it when private (root)
        run.summary["data_dir_removed"] = True


def endpoint_summary(endpoints) -> dict:
    """Kafka and HBase as host:port, Postgres as a libpq URL, Mongo and Redis as URLs."""
    return {"kafka": endpoints.kafka, "hbase": endpoints.hbase, "postgres": endpoints.postgres,
            "mongo": endpoints.mongo, "redis": endpoints.redis}


# ---------------------------------------------------------------- running and printing
def run_demo(options: DemoOptions, log: Callable[[str], None] = print) -> DemoRun:
    """Runs the steps in order until one fails (recorded in the summary), then tears down.
    A bad setting (ConfigError/UsageError) is not a failed step: it propagates as a usage error."""
    run = DemoRun(options, log=log)
    run.summary.update({"count": options.count, "seed": options.seed, "steps": [], "ok": False})
    try:
        for name, step in STEPS:
            began = time.monotonic()
            log(f"- {name} ...")
            try:
                step(run)
            except (ConfigError, UsageError):
                raise
            except Exception as error:  # noqa: BLE001 - any failure of a step is recorded as that step's error
                message = " ".join(str(error).split()) or type(error).__name__
                run.summary["steps"].append({"name": name, "seconds": round(time.monotonic() - began, 3),
                                             "ok": False, "error": message})
                run.summary["error"] = f"{name}: {message}"
                return run
            run.summary["steps"].append({"name": name, "seconds": round(time.monotonic() - began, 3), "ok": True})
        run.summary["ok"] = True
        return run
    finally:
        tear_down(run)


def print_summary(summary: dict, out=None) -> None:
    out = out or sys.stdout  # per call, not the stream at import
    print("", file=out)
    print(f"demo {'succeeded' if summary['ok'] else 'FAILED'}  (count={summary['count']}, seed={summary['seed']})",
          file=out)
    print(f"  data dir: {summary.get('data_dir')}" + ("  (removed)" if summary.get("data_dir_removed") else ""),
          file=out)
    for name, endpoint in summary.get("endpoints", {}).items():
        health = summary.get("health", {}).get(name, "")
        print(f"  {name:<9} {endpoint or '-':<50} {health}", file=out)
    if "generated" in summary:
        print("  " + "  ".join(f"{key}={summary.get(key)}" for key in SUMMARY_KEYS), file=out)
    for step in summary["steps"]:
        mark = "ok" if step["ok"] else f"FAILED: {step.get('error')}"
        print(f"  step {step['name']:<24} {step['seconds']:>7.2f} s  {mark}", file=out)
    if summary.get("stack_left_running"):
        print(f"  the stack is still running; stop it with: {summary['stop_with']}", file=out)


def main(args) -> int:
    """Handler of `payment-platform demo`; exit 0 when every step succeeded."""
    options = DemoOptions.from_args(args)
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else \
        (lambda line: print(line, flush=True))
    with StopSignals():
        run = run_demo(options, log=log)
    if args.json:
        print(json.dumps(run.summary, indent=2))
    else:
        print_summary(run.summary)
    if not run.summary["ok"]:
        print(f"payment-platform demo: error: {run.summary['error']}", file=sys.stderr)
        return 1
    return 0
