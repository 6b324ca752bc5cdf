"""`payment-platform stack up|down|restart|status|gc|env` and `payment-platform up` (stack + dagster dev)."""
from __future__ import annotations

import json
import sys
import time

from payment_platform.config import parse_number
from payment_platform.lib.stop_signals import StopSignals
from devstack.stack.console import (
    add_data_dir,
    add_ports,
    ensure_runtime_dir,
    print_stack,
    resolve_data_dir,
    start_from_args,
)


def register(subparsers) -> None:
    """Adds this room's subcommands; each sets `func=handler` where handler(args) -> exit status."""
    stack = subparsers.add_parser("stack", help="the embedded local stack: up, down, restart, status, gc, env",
                                  description="The embedded local stack (Kafka, PostgreSQL, Redis, MongoDB, HBase).")
    actions = stack.add_subparsers(dest="stack_command", metavar="ACTION", required=True)

    up = actions.add_parser("up", help="start the services and wait until each answers a health probe; on a stack "
                                       "already recorded in the data dir, start only what is missing")
    add_data_dir(up)
    add_ports(up)
    up.add_argument("--timeout", default="30", help="seconds to wait for every service's health (default 30)")
    up.add_argument("--foreground", action="store_true",
                    help="stay attached: Ctrl+C or SIGTERM stops the services (default: detach and return)")
    up.set_defaults(func=stack_up)

    down = actions.add_parser("down", help="stop the services started from the data dir")
    add_data_dir(down)
    down.set_defaults(func=stack_down)

    restart = actions.add_parser("restart", help="stop one service (if it runs) and start it again on its port")
    restart.add_argument("service", metavar="SERVICE", help="kafka, postgres, redis, mongo or hbase")
    add_data_dir(restart)
    restart.add_argument("--timeout", default="30", help="seconds to wait for its health (default 30)")
    restart.set_defaults(func=stack_restart)

    status = actions.add_parser("status", help="each service's process and health probe; exit 1 if any is down")
    add_data_dir(status)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(func=stack_status)

    gc = actions.add_parser("gc", help="remove the Postgres clusters kept for root stacks whose data dir is gone "
                                       "(start-up removes those of temporary data dirs by itself)")
    gc.add_argument("--dry-run", action="store_true", help="only list them, with their size")
    gc.set_defaults(func=stack_gc)

    env = actions.add_parser("env", help="print `export` lines pointing a shell at the running stack")
    add_data_dir(env)
    env.set_defaults(func=stack_env)

    dev = subparsers.add_parser("up", help="the stack plus `dagster dev` (UI on http://localhost:3000) and the REST API "
                                           "(http://127.0.0.1:8000); Ctrl+C stops all")
    add_data_dir(dev)
    add_ports(dev)
    dev.add_argument("--dagster-port", default="3000", help="port of the Dagster UI (default 3000)")
    dev.add_argument("--api-port", default="8000", help="port of the REST API, on 127.0.0.1 (default 8000)")
    dev.add_argument("--workspace", default="workspace.yaml", help="Dagster workspace file (default workspace.yaml)")
    dev.set_defaults(func=dagster_up)


def stack_up(args) -> int:
    from devstack.stack.manager import StackStartError

    began = time.monotonic()
    with StopSignals() as signals:
        try:
            stack = start_from_args(args, owned=args.foreground)
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
    from devstack.stack.manager import stop_stack

    data_dir, _ = resolve_data_dir(args)
    stack = stop_stack(data_dir)
    if stack is None:
        print(f"no stack recorded in {data_dir}")
        return 0
    stopped = [name for name, rec in stack.services.items() if not rec.external]
    if "up" in stack.actions:
        print(stack.actions["up"])
    print(f"stack stopped: {', '.join(stopped) or 'nothing of ours was running'} ({data_dir})")
    return 0


def stack_restart(args) -> int:
    from devstack.stack.manager import StackStartError, restart_service

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
    from devstack.stack.manager import load_stack

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


def stack_gc(args) -> int:
    """Lists, and unless --dry-run removes, every orphaned cluster (no data dir links to it, no server runs on it)."""
    from devstack.stack import postgres_as_root

    found = postgres_as_root.orphans()
    if not found:
        print("no orphaned Postgres clusters (every cluster kept for a root stack belongs to a data dir)")
        return 0
    sizes = {home: postgres_as_root.folder_size(home) for home, _ in found}
    removed = set() if args.dry_run else set(postgres_as_root.collect_orphans(everywhere=True))
    for home, owner in found:
        verb = "removed" if home in removed else ("would remove" if args.dry_run else "could not remove")
        print(f"{verb} {home} (data dir {owner or 'never recorded'}, {sizes[home] / 1e6:,.1f} MB)")
    return 0 if args.dry_run or len(removed) == len(found) else 1


def stack_env(args) -> int:
    from devstack.stack.manager import load_stack

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
    from devstack.stack.dagster_dev import run_dagster_dev

    ensure_runtime_dir()
    return run_dagster_dev(args)
