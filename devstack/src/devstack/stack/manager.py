"""Start, find, probe and stop the embedded stack.

`start_stack()` launches each embedded service as a child in its own session, records it in
`<data dir>/stack.json` (so `stack down` / `stack status` in another process can find it), and returns
only once every service answers its health probe. A service whose setting is in the environment
(KAFKA_BOOTSTRAP_SERVERS, POSTGRES_DSN, HBASE_HOST, MONGO_URI, REDIS_URL) is external: it is probed,
never started. Any failure stops whatever this call started before the error is raised.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import psutil

from payment_platform.config import ConfigError, Endpoints, endpoints_from_env, parse_port
from payment_platform.errors import UsageError
from devstack.stack import postgres_as_root, processes, services
from devstack.stack.services import SERVICES

STATE_FILE = "stack.json"
LOG_DIR = "logs"
PORTS_SETTING = "PAYMENT_PLATFORM_PORTS"
START_TIMEOUT_S = 30.0


class StackStartError(RuntimeError):
    """A service did not come up; everything this start launched has been stopped again."""


@dataclass
class ServiceRecord:
    name: str
    external: bool
    port: int | None = None
    pid: int | None = None
    create_time: float | None = None
    stop_signal: int = 15
    log: str | None = None
    adopted: bool = False  # a server found answering on the recorded port (restarted by hand), not launched by us

    @property
    def ref(self) -> processes.ProcessRef | None:
        return processes.ProcessRef(self.pid, self.create_time) if self.pid else None


@dataclass
class ServiceHealth:
    name: str
    external: bool
    endpoint: str
    running: bool | None  # None for an external service (not ours to watch)
    healthy: bool
    error: str | None = None


@dataclass
class Stack:
    """A running stack: where its services are and how to point a process at them."""

    data_dir: Path
    endpoints: Endpoints
    dagster_postgres_url: str | None
    services: dict[str, ServiceRecord]
    already_running: bool = False
    actions: dict[str, str] = field(default_factory=dict)  # what `stack up` did per service to a recorded stack
    _popens: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)

    def env(self) -> dict[str, str]:
        """Variables that point a subprocess (dagster-daemon, the CLI, a test) at this stack."""
        env = self.endpoints.to_env()
        if self.dagster_postgres_url:
            env["DAGSTER_POSTGRES_URL"] = self.dagster_postgres_url
        env["PAYMENT_PLATFORM_DATA_DIR"] = str(self.data_dir)
        env["XDG_RUNTIME_DIR"] = str(runtime_dir(self.data_dir))
        return env

    def pids(self) -> dict[str, int]:
        return {name: rec.pid for name, rec in self.services.items() if rec.pid}

    def health(self) -> list[ServiceHealth]:
        return check_health(self.endpoints, self.services, self.data_dir)

    def stop(self, timeout: float = 10.0) -> None:
        records = dict(self.services)
        # `stack restart SERVICE` (another process) may have replaced a service since this object was made: the
        # state file names the process running now, which must stop too (`up` would otherwise leave it running)
        try:
            recorded = load_stack(self.data_dir)
        except UsageError:
            recorded = None
        for name, rec in (recorded.services.items() if recorded is not None else ()):
            mine = records.get(name)
            if not rec.external and rec.pid and (mine is None or (mine.pid, mine.create_time) != (rec.pid, rec.create_time)):
                records[f"{name} (restarted)"] = replace(rec, name=f"{name} (restarted)")  # not our Popen
        stop_services(records, self._popens, timeout=timeout)
        state_path(self.data_dir).unlink(missing_ok=True)

    def to_json(self) -> dict:
        return {"data_dir": str(self.data_dir), "endpoints": self.endpoints.as_dict(),
                "dagster_postgres_url": self.dagster_postgres_url,
                "services": {name: vars(rec) for name, rec in self.services.items()}}

    @classmethod
    def from_json(cls, data: dict) -> "Stack":
        return cls(Path(data["data_dir"]), Endpoints(**data["endpoints"]), data.get("dagster_postgres_url"),
                   {name: ServiceRecord(**rec) for name, rec in data["services"].items()})


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def runtime_dir(data_dir: Path) -> Path:
    """A 0700 XDG_RUNTIME_DIR for the stack's processes (platformdirs warns without one)."""
    path = data_dir / "run"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def load_stack(data_dir: Path) -> Stack | None:
    path = state_path(data_dir)
    if not path.exists():
        return None
    try:
        return Stack.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as error:
        raise UsageError(f"{path}: not a stack state file ({error})") from None


def _save(stack: Stack) -> None:
    path = state_path(stack.data_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stack.to_json(), indent=2))
    tmp.replace(path)


# ---------------------------------------------------------------- settings
def parse_port_overrides(items: list[str] | str | None, setting: str) -> dict[str, int]:
    """`kafka=19092,redis=6380` or a list of `name=port` -> {name: port}; names must be known services."""
    if not items:
        return {}
    if isinstance(items, str):
        items = [item for item in items.split(",") if item.strip()]
    ports: dict[str, int] = {}
    for item in items:
        name, sep, value = item.strip().partition("=")
        name = name.strip().lower()
        if not sep:
            raise ConfigError(setting, f"expected SERVICE=PORT, got {item!r}")
        if name not in SERVICES:
            raise ConfigError(setting, f"unknown service {name!r} (expected one of {', '.join(SERVICES)})")
        ports[name] = parse_port(f"{setting} {name}", value)
    return ports


def check_data_dir(data_dir: Path, setting: str) -> Path:
    """Creates the data dir and proves it can be written; a one-line ConfigError if not."""
    data_dir = data_dir.expanduser().absolute()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise ConfigError(setting, f"cannot write to {data_dir}: {error.strerror or error}") from None
    return data_dir


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; all held open together so they are distinct."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def choose_ports(names: list[str], requested: Mapping[str, int], setting: str, use_defaults: bool) -> dict[str, int]:
    """Requested ports must be free (else an error naming the setting); the rest take the service's
    stable default when free and `use_defaults`, otherwise any free port."""
    chosen: dict[str, int] = {}
    for name, port in requested.items():
        if name not in names:
            raise ConfigError(setting, f"{name} is external ({SERVICES[name].setting} is set): no port to choose")
        if port_in_use(port):
            raise ConfigError(f"{setting} {name}", f"port {port} on 127.0.0.1 is already in use")
        chosen[name] = port
    for name in names:
        if name in chosen:
            continue
        default = SERVICES[name].default_port
        if use_defaults and default not in chosen.values() and not port_in_use(default):
            chosen[name] = default
    missing = [name for name in names if name not in chosen]
    for name, port in zip(missing, free_ports(len(missing))):
        chosen[name] = port
    return chosen


# ---------------------------------------------------------------- health
def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:300]


def probe_once(name: str, endpoints: Endpoints, data_dir: Path) -> str | None:
    """None when the service answers its probe, else the reason it did not."""
    try:
        SERVICES[name].probe(endpoints, data_dir)
        return None
    except Exception as error:  # noqa: BLE001 - any failure of a probe means "not healthy", with its reason
        return _one_line(error)


def check_health(endpoints: Endpoints, records: Mapping[str, ServiceRecord], data_dir: Path) -> list[ServiceHealth]:
    names = sorted(records, key=lambda name: list(SERVICES).index(name) if name in SERVICES else len(SERVICES))
    with ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        errors = dict(zip(names, pool.map(lambda n: probe_once(n, endpoints, data_dir), names)))
    result = []
    for name in names:
        rec = records[name]
        # An adopted server whose process could not be found is judged by its probe alone.
        running = None if rec.external or (rec.adopted and not rec.pid) else bool(rec.ref and rec.ref.alive())
        error = errors[name]
        if running is False:
            error = "process is not running" + (f" (last probe: {error})" if error else "")
        result.append(ServiceHealth(name, rec.external, SERVICES[name].endpoint(endpoints), running,
                                    error is None, error))
    return result


def log_tail(path: str | None, lines: int = 5) -> str:
    if not path or not Path(path).exists():
        return ""
    tail = [line.strip() for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(tail[-lines:])


def _wait_ready(name: str, endpoints: Endpoints, record: ServiceRecord, popen: subprocess.Popen | None,
                deadline: float, data_dir: Path) -> str | None:
    """Polls its probe until it answers, then gives it what it needs once up (Postgres: its databases); None
    when ready, else the reason (the process exited, or the deadline passed)."""
    service = SERVICES[name]
    endpoints = service.starting_endpoints(endpoints, record.port)
    while True:
        if popen is not None and popen.poll() is not None:
            tail = log_tail(record.log)
            return f"exited with status {popen.returncode}" + (f": {tail}" if tail else "")
        last = probe_once(name, endpoints, data_dir)
        if last is None:
            break
        if time.monotonic() > deadline:
            tail = log_tail(record.log)
            return f"no answer within the start timeout ({last})" + (f"; log: {tail}" if tail else "")
        time.sleep(0.1)
    try:
        service.when_ready(record.port)
    except Exception as error:  # noqa: BLE001 - reported as this service's start failure
        return _one_line(error)
    return None


# ---------------------------------------------------------------- start / stop
def stop_services(records: Mapping[str, ServiceRecord], popens: Mapping[str, subprocess.Popen] | None = None,
                  timeout: float = 10.0) -> None:
    """Stops every embedded service (in parallel; each is killed if it has not stopped within `timeout`);
    external ones are left alone."""
    popens = popens or {}
    ours = [rec for rec in records.values() if not rec.external and rec.ref]
    with ThreadPoolExecutor(max_workers=len(ours) or 1) as pool:
        list(pool.map(lambda rec: processes.stop(rec.ref, rec.stop_signal, timeout=timeout,
                                                 popen=popens.get(rec.name)), ours))


def start_stack(data_dir: Path, *, ports: Mapping[str, int] | None = None, ports_setting: str = "--port",
                data_dir_setting: str = "--data-dir", use_default_ports: bool = True, owned: bool = False,
                env: Mapping[str, str] | None = None, timeout: float = START_TIMEOUT_S) -> Stack:
    """Brings the stack up and returns it once every service is healthy.

    owned=True ties the services' lives to this process (test fixture, foreground `up`): if it dies,
    the kernel stops them. Otherwise they outlive it until `stack down`.
    """
    env = os.environ if env is None else env
    data_dir = check_data_dir(Path(data_dir), data_dir_setting)
    base = endpoints_from_env(env)
    requested = dict(ports or {})
    requested.update({k: v for k, v in parse_port_overrides(env.get(PORTS_SETTING), PORTS_SETTING).items()
                      if k not in requested})

    existing = _existing_stack(data_dir, requested, ports_setting)
    if existing is not None:
        return bring_back(existing, owned=False, timeout=timeout)  # others rely on a recorded stack: detached

    external = [name for name, service in SERVICES.items() if service.is_external(base)]
    embedded = [name for name in SERVICES if name not in external]
    _check_external(external, base, data_dir)
    chosen = choose_ports(embedded, requested, ports_setting, use_default_ports)
    endpoints = base
    for name, port in chosen.items():
        endpoints = SERVICES[name].embedded(endpoints, port)
    dagster_url = env.get("DAGSTER_POSTGRES_URL") or services.POSTGRES.dagster_url(chosen.get("postgres"), base)

    stack = Stack(data_dir, endpoints, dagster_url, {name: ServiceRecord(name, external=True) for name in external})
    try:
        stack._popens.update(_start(stack, chosen, owned, timeout))
        _save(stack)
        return stack
    except BaseException:
        stack.stop()
        raise


def _check_external(names: list[str], base: Endpoints, data_dir: Path) -> None:
    """An external service that does not answer is a bad setting: named, before anything is started."""
    if not names:
        return
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        errors = dict(zip(names, pool.map(lambda n: probe_once(n, base, data_dir), names)))
    for name in names:
        if errors[name] is not None:
            raise ConfigError(SERVICES[name].setting,
                              f"{SERVICES[name].endpoint(base)} is unreachable ({errors[name]})")


def _child_env(stack: Stack) -> dict[str, str]:
    child_env = {**os.environ, **stack.env()}
    for name in SERVICES:  # a child must not mistake itself for a client of an external service
        child_env.pop(SERVICES[name].setting, None)
    return child_env


def _start(stack: Stack, ports: Mapping[str, int], owned: bool, timeout: float) -> dict[str, subprocess.Popen]:
    """Launches each named service on its port (the slow-to-prepare last: the others boot meanwhile), records
    each in the state file as it starts, and waits until all are ready. If any is not, stops what this call
    launched, records them as not running and raises StackStartError naming each failure and why."""
    child_env = _child_env(stack)
    started: dict[str, subprocess.Popen] = {}
    try:
        for name in sorted((n for n in SERVICES if n in ports), key=lambda n: SERVICES[n].launch_last):
            started[name], stack.services[name] = _launch(name, stack.data_dir, ports[name], child_env, owned)
            _save(stack)
        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(max_workers=len(started) or 1) as pool:
            waits = {name: pool.submit(_wait_ready, name, stack.endpoints, stack.services[name], popen, deadline,
                                       stack.data_dir) for name, popen in started.items()}
            failures = {name: future.result() for name, future in waits.items() if future.result() is not None}
        if failures:
            raise StackStartError("; ".join(f"{name} did not start: {why}" for name, why in failures.items()))
    except BaseException:
        stop_services({name: stack.services[name] for name in started}, started)
        for name in started:
            stack.services[name] = replace(stack.services[name], pid=None, create_time=None)
        _save(stack)
        raise
    return started


def _launch(name: str, data_dir: Path, port: int, child_env: dict[str, str],
            owned: bool) -> tuple[subprocess.Popen, ServiceRecord]:
    """Launches one embedded service on `port` with its data under data_dir; returns it and its record."""
    log = data_dir / LOG_DIR / f"{name}.log"
    try:
        launch = SERVICES[name].launch(data_dir, port)
        popen = processes.spawn(launch.command, log, env=child_env, cwd=data_dir, user=launch.user,
                                die_with_parent=owned, death_signal=launch.stop_signal)
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        raise StackStartError(f"{name} did not start: {_one_line(error)}") from error
    record = ServiceRecord(name, False, port, popen.pid, processes.ProcessRef.of(popen.pid).create_time,
                           int(launch.stop_signal), str(log))
    return popen, record


def _existing_stack(data_dir: Path, requested: Mapping[str, int] | None = None,
                    ports_setting: str = "--port") -> Stack | None:
    """The stack recorded in data_dir if any of it is still there (a process alive, or a server answering on
    a recorded port); None when nothing is (the record is left over, e.g. from a reboot)."""
    stack = load_stack(data_dir)
    if stack is None:
        return None
    ours = [rec for rec in stack.services.values() if not rec.external]
    if not any(rec.ref and rec.ref.alive() for rec in ours) and not any(
            rec.port and port_in_use(rec.port) and _answers(rec.name, stack) for rec in ours):
        state_path(data_dir).unlink(missing_ok=True)
        return None
    for name, port in (requested or {}).items():
        rec = stack.services.get(name)
        if rec is not None and not rec.external and rec.port != port:
            raise ConfigError(f"{ports_setting} {name}", f"the stack in {data_dir} runs {name} on port {rec.port}; "
                                                         f"run `payment-platform stack down --data-dir {data_dir}` "
                                                         f"first to change its port")
    stack.already_running = True
    return stack


def _answers(name: str, stack: Stack) -> bool:
    return probe_once(name, stack.endpoints, stack.data_dir) is None


def listener_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:port (or any address), if this user may see it."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


def _adopt(rec: ServiceRecord) -> tuple[ServiceRecord, str]:
    """The record of a healthy server found on the recorded port: its pid if the listener can be found."""
    pid = listener_pid(rec.port)
    if pid is None:
        return (replace(rec, pid=None, create_time=None, adopted=True),
                f"adopted the server answering on port {rec.port} (its process could not be found: "
                f"`stack down` will not stop it)")
    return (replace(rec, pid=pid, create_time=processes.ProcessRef.of(pid).create_time, adopted=True),
            f"adopted the server answering on port {rec.port} (pid {pid})")


def bring_back(stack: Stack, *, owned: bool = False, timeout: float = START_TIMEOUT_S) -> Stack:
    """Completes a recorded stack: keeps what runs, adopts a healthy server on a recorded port whose recorded
    process is gone (restarted by hand), starts the rest on its recorded port and data dir. `stack.actions`
    says what happened per service. Only what this call started is stopped again if a start fails."""
    missing = []
    for name, rec in stack.services.items():
        if rec.external:
            continue
        if rec.ref and rec.ref.alive():
            stack.actions[name] = f"already running (pid {rec.pid})"
        elif port_in_use(rec.port) and _answers(name, stack):
            stack.services[name], stack.actions[name] = _adopt(rec)
        else:
            missing.append(name)
    if not missing:
        if any(rec.adopted for rec in stack.services.values()):
            _save(stack)
        return stack
    for name in missing:
        rec = stack.services[name]
        if rec.ref:  # the leader died: what it started may live on in its process group
            processes.stop(rec.ref, rec.stop_signal)
        if not _wait_port_free(rec.port):
            raise StackStartError(f"{name} did not start: port {rec.port} is held by a process that does not "
                                  f"answer as {name}; stop it, then run `payment-platform stack up "
                                  f"--data-dir {stack.data_dir}` again")
    started = _start(stack, {name: stack.services[name].port for name in missing}, owned, timeout)
    for name, popen in started.items():
        stack.actions[name] = f"started (pid {popen.pid}) on port {stack.services[name].port}: it was not running"
    stack._popens.update(started)
    _save(stack)
    return stack


def _wait_port_free(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while port_in_use(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def restart_service(data_dir: Path, name: str, *, data_dir_setting: str = "--data-dir",
                    timeout: float = START_TIMEOUT_S) -> tuple[Stack, str]:
    """Stops one embedded service (if it runs) and starts it again on its recorded port and data dir.
    Returns the stack and a sentence saying what happened."""
    if name not in SERVICES:
        raise UsageError(f"SERVICE: unknown service {name!r} (expected one of {', '.join(SERVICES)})")
    stack = load_stack(data_dir)
    if stack is None:
        raise UsageError(f"{data_dir_setting} {data_dir}: no stack recorded there "
                         f"(start one with `payment-platform stack up --data-dir {data_dir}`)")
    rec = stack.services.get(name)
    if rec is None or rec.external:
        raise UsageError(f"{name} is external ({SERVICES[name].setting} is set): not this stack's to restart")
    began = time.monotonic()
    if rec.ref and rec.ref.alive():
        processes.stop(rec.ref, rec.stop_signal)
        before = f"stopped pid {rec.pid}"
    elif (found := listener_pid(rec.port)) is not None:  # adopted, or restarted by hand since
        processes.stop(processes.ProcessRef.of(found), rec.stop_signal)
        before = f"stopped pid {found} (found listening on port {rec.port})"
    elif port_in_use(rec.port):
        raise UsageError(f"{name}: port {rec.port} is in use but its process cannot be found (another user's?); "
                         f"stop it, then run `payment-platform stack restart {name}` again")
    else:
        if rec.ref:
            processes.stop(rec.ref, rec.stop_signal)  # leftovers in the dead leader's process group
        before = "was not running"
    if not _wait_port_free(rec.port):
        raise StackStartError(f"{name} did not start: port {rec.port} is still in use after stopping it")
    popen = _start(stack, {name: rec.port}, owned=False, timeout=timeout)[name]
    said = (f"{name}: {before}; started pid {popen.pid} on port {rec.port}, healthy in "
            f"{time.monotonic() - began:.1f} s")
    if SERVICES[name].restart_note:
        said += f" ({SERVICES[name].restart_note})"
    return stack, said


def remove_data_dir(folder: Path) -> list[Path]:
    """A stack torn down for good: removes `folder` (a data dir, or a folder holding data dirs) and the Postgres
    clusters kept outside it for its data dirs (root with private folders: postgres_as_root). Stop the stacks
    first: a cluster whose server still runs is left for start-up collection. Returns the clusters removed."""
    released = postgres_as_root.release_clusters_under(Path(folder))
    shutil.rmtree(folder, ignore_errors=True)
    return released


def stop_stack(data_dir: Path) -> Stack | None:
    """Stops the stack recorded in data_dir, and whatever `payment-platform up` started for it that outlived
    it (Dagster's processes, the REST API: found by their `processes.UP_MARK`); None if there was neither."""
    stack = load_stack(data_dir)
    leftovers = processes.stop_marked(processes.UP_MARK, str(Path(data_dir).expanduser().absolute()))
    if stack is None:
        if not leftovers:
            return None
        stack = Stack(Path(data_dir), Endpoints(), None, {})
    stack.stop()
    if leftovers:
        stack.actions["up"] = f"stopped {leftovers} process(es) left by `payment-platform up` (Dagster, REST API)"
    return stack
