"""Cold `payment-platform stack up` time (target < 10 s on the 2-core machine) against a raw baseline.

    .venv/bin/python payment_platform_tests/benchmarks/bench_stack_up.py [--runs N]

Measured, each in a fresh data dir so Postgres runs initdb (a cold start):
  stack up   `payment-platform stack up` as a user runs it: CLI start-up, initdb, five servers, the real
             health probes (Kafka metadata, select 1, PING, Mongo ping, HBase getTableNames), the
             `payments`/`dagster` databases, the state file.
  warm up    the same on the data dir of the previous run (no initdb).
  raw        the baseline: initdb plus the same five commands started in parallel (as `stack up` does), until each
             port accepts a TCP connection; no CLI, no probes, no databases, no state.
The ratio stack up / raw is the manager's overhead over what the servers themselves need.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devstack.stack import processes
from devstack.stack.manager import free_ports, remove_data_dir
from devstack.stack.services import SERVICES


def cli(*args: str) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "payment_platform.cli", *args], check=True,
                   stdout=subprocess.DEVNULL, env=os.environ.copy())
    return time.perf_counter() - began


def port_args() -> list[str]:
    return [arg for name, port in zip(SERVICES, free_ports(len(SERVICES))) for arg in ("--port", f"{name}={port}")]


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def raw_start(data_dir: Path) -> float:
    """initdb + the five server commands in parallel, until every port accepts a connection."""
    ports = dict(zip(SERVICES, free_ports(len(SERVICES))))
    began = time.perf_counter()
    popens = []
    for name, port in sorted(ports.items(), key=lambda item: SERVICES[item[0]].launch_last):
        launch = SERVICES[name].launch(data_dir, port)
        popens.append((processes.spawn(launch.command, data_dir / "logs" / f"{name}.log", cwd=data_dir,
                                       user=launch.user, die_with_parent=True), launch.stop_signal))
    waiting = set(ports.values())
    while waiting:
        waiting = {port for port in waiting if not accepts(port)}
        time.sleep(0.01)
    elapsed = time.perf_counter() - began
    for popen, stop_signal in popens:
        processes.stop(processes.ProcessRef.of(popen.pid), stop_signal, popen=popen)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not os.environ.get("XDG_RUNTIME_DIR"):
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="bench-xdg-")
    for name in [s.setting for s in SERVICES.values()] + ["PAYMENT_PLATFORM_PORTS"]:
        os.environ.pop(name, None)  # always the embedded services

    cold, warm, down, raw = [], [], [], []
    for _ in range(args.runs):
        root = Path(tempfile.mkdtemp(prefix="bench-stack-"))
        try:
            raw.append(raw_start(root / "raw"))
            data = str(root / "stack")
            cold.append(cli("stack", "up", "--data-dir", data, *port_args()))
            down.append(cli("stack", "down", "--data-dir", data))
            warm.append(cli("stack", "up", "--data-dir", data, *port_args()))
            cli("stack", "down", "--data-dir", data)
        finally:
            remove_data_dir(root)  # and the Postgres clusters kept outside it (root, private /tmp folder)

    def line(label: str, values: list[float]) -> str:
        return f"{label:<11} median {statistics.median(values):6.2f} s   runs {', '.join(f'{v:.2f}' for v in values)}"

    print(f"bench_stack_up: {args.runs} runs on {os.cpu_count()} cores")
    print(line("stack up", cold) + "   (target < 10 s)")
    print(line("warm up", warm))
    print(line("stack down", down))
    print(line("raw", raw) + "   (initdb + 5 servers until their ports accept, no probes)")
    ratio = statistics.median(cold) / statistics.median(raw)
    print(f"ratio stack up / raw = {ratio:.2f}x; cold stack up {'meets' if statistics.median(cold) < 10 else 'MISSES'} "
          f"the 10 s target")
    from figures import record_figures  # the benchmarks' folder is on sys.path: this is a script
    record_figures(__file__, ["step", "median s", "runs"],
                   [(label, f"{statistics.median(values):.2f}", ", ".join(f"{v:.2f}" for v in values))
                    for label, values in (("cold stack up (initdb included)", cold), ("warm stack up", warm),
                                          ("stack down", down), ("raw: initdb + 5 servers until their ports accept",
                                                                 raw))],
                   note=f"cold stack up / raw = {ratio:.2f}x; target: cold stack up < 10 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
