"""Where the platform's services are: one place that reads and validates the environment.

Every store and command takes its endpoints from `Endpoints`. A service whose variable is set is an
external one (a real cluster): the embedded stack does not start it. Nothing here opens a connection.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

DEFAULT_TOPIC = "payment-transactions"
DEFAULT_DATA_DIR = ".data"

# environment variable -> what it holds (docs/configuration.md's tables are generated from these: docs/generate.py)
ENV_VARS = {
    "KAFKA_BOOTSTRAP_SERVERS": "Kafka bootstrap servers, host:port[,host:port...]",
    "PAYMENTS_TOPIC": f"Kafka topic of payment messages (default {DEFAULT_TOPIC})",
    "POSTGRES_DSN": "PostgreSQL libpq DSN or URL for the payments ledger",
    "DAGSTER_POSTGRES_URL": "PostgreSQL URL for Dagster's run/event/schedule storage (postgresql+psycopg2://...)",
    "HBASE_HOST": "HBase Thrift1 server host",
    "HBASE_PORT": "HBase Thrift1 server port",
    "HBASE_TRANSPORT": "HBase Thrift transport: buffered (default) or framed",
    "HBASE_PROTOCOL": "HBase Thrift protocol: binary (default) or compact",
    "MONGO_URI": "MongoDB URI for the failed-payment backup",
    "REDIS_URL": "Redis URL for idempotency and live metrics",
    "PAYMENT_PLATFORM_DATA_DIR": f"folder for the embedded stack's data (default {DEFAULT_DATA_DIR})",
    "FAILED_PAYMENTS_DIR": "last-resort folder of the failed-payment backup when MongoDB is unreachable "
                           "(default $PAYMENT_PLATFORM_DATA_DIR/failed_payments)",
    # read by the REST API (payment_platform/serving): listed here so every setting has one table
    "PAYMENT_API_TOKEN": "bearer token the REST API requires on every request (unset: no token required)",
    "PAYMENT_API_CURSOR_KEY": "HMAC key of the API's page cursors; the same on every API replica "
                              "(default: a fixed key)",
    "PAN_HASH_KEY": "HMAC key (at least 32 hex digits, e.g. `openssl rand -hex 32`) of the fingerprints that "
                    "replace full card numbers in stored and shown text; the same everywhere, or a report cannot "
                    "be matched (unset: a fixed development key)",
}

# Scaling knobs (docs/scaling.md): all optional, each with the default the embedded stack uses.
DEFAULT_TOPIC_PARTITIONS = 3
DEFAULT_MAX_RANGES_IN_FLIGHT = 3
DEFAULT_BATCH_SIZE = 20_000
DEFAULT_MAX_CONCURRENT_RUNS = 10
DEFAULT_LEASE_SECONDS = 600
DEFAULT_LEASE_IDLE_SECONDS = 120
MAX_SALT_BUCKETS = 100  # the salt prefix is two digits
SCALING_VARS = {
    "PAYMENTS_TOPIC_PARTITIONS": f"partitions of the payments topic when the platform creates it (default "
                                 f"{DEFAULT_TOPIC_PARTITIONS}; an existing topic keeps its own count)",
    "INGESTION_MAX_RANGES_IN_FLIGHT": f"partitions ingested at once (each by one lease run; its successor overlaps "
                                      f"its last seconds) (default {DEFAULT_MAX_RANGES_IN_FLIGHT})",
    "INGESTION_BATCH_SIZE": f"micro-batch size: most messages in one batch of a lease "
                            f"(default {DEFAULT_BATCH_SIZE})",
    "INGESTION_LEASE_SECONDS": f"how long one ingestion run ingests its partition before its successor takes over "
                               f"(default {DEFAULT_LEASE_SECONDS})",
    "INGESTION_LEASE_IDLE_SECONDS": f"a lease with nothing to read for this long ends early; the next message starts "
                                    f"a new one (default {DEFAULT_LEASE_IDLE_SECONDS})",
    "DAGSTER_MAX_CONCURRENT_RUNS": f"runs the QueuedRunCoordinator launches at once, all jobs together (default "
                                   f"{DEFAULT_MAX_CONCURRENT_RUNS}); written into DAGSTER_HOME's dagster.yaml by "
                                   f"`payment-platform up` and the daemon harness",
    "HBASE_SALT_BUCKETS": f"0 (default): row keys start with the time; N in 1-{MAX_SALT_BUCKETS - 1}: row keys start "
                          f"with a salt bucket `NN_` (hash of the payment id mod N) so writes spread over N regions",
}
# How long the platform keeps what has settled (docs/operating.md, "Running for days"): all optional.
DEFAULT_REDIS_LANDED_TTL_S = 900
DEFAULT_KEEP_RUNS_HOURS = 24.0
DEFAULT_KEEP_FAILED_RUNS_HOURS = 168.0
RETENTION_VARS = {
    "REDIS_LANDED_TTL_S": f"seconds a landed payment id is remembered in Redis (default {DEFAULT_REDIS_LANDED_TTL_S}): "
                          f"longer than any range can wait to be read again; Postgres' primary key refuses "
                          f"duplicates beyond it",
    "HOUSEKEEPING_KEEP_RUNS_HOURS": f"hours finished (succeeded, canceled) ingestion and replay runs are kept in "
                                    f"Dagster before the housekeeping job deletes them with their events and "
                                    f"compute logs (default {DEFAULT_KEEP_RUNS_HOURS:g})",
    "HOUSEKEEPING_KEEP_FAILED_RUNS_HOURS": f"hours failed ingestion and replay runs are kept (default "
                                           f"{DEFAULT_KEEP_FAILED_RUNS_HOURS:g})",
}
# Every variable the platform reads. The scaling knobs are kept apart from ENV_VARS (where the services are): a
# test stack strips ENV_VARS from its environment, but a layout setting such as HBASE_SALT_BUCKETS must reach it.
ALL_ENV_VARS = {**ENV_VARS, **SCALING_VARS, **RETENTION_VARS}


class ConfigError(ValueError):
    """A setting that is malformed: names the setting and what is wrong with it."""

    def __init__(self, setting: str, problem: str):
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


def parse_port(setting: str, value: str | int) -> int:
    try:
        port = int(str(value).strip())
    except ValueError:
        raise ConfigError(setting, f"not a port number: {value!r}") from None
    if not 1 <= port <= 65535:
        raise ConfigError(setting, f"port out of range 1-65535: {port}")
    return port


def parse_number(setting: str, value: str | float, low: float | None = None, high: float | None = None, *,
                 kind: type = float, unit: str = "seconds", what: str = "") -> float:
    """A number within [low, high] (a bound that is None is not checked); `what` names it in the range error."""
    try:
        number = kind(str(value).strip())
    except ValueError:
        expected = f"a number of {unit}" if kind is float else "an integer"
        raise ConfigError(setting, f"not {expected}: {value!r}") from None
    if high is None and low is not None and number < low:
        raise ConfigError(setting, f"{what}must be >= {low}, got {value}")
    if high is not None and not low <= number <= high:
        raise ConfigError(setting, f"{what}must be between {low} and {high} {unit}, got {value}")
    return number


def parse_host_port(setting: str, value: str) -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host:
        raise ConfigError(setting, f"expected host:port, got {value!r}")
    return host, parse_port(setting, port)


def parse_bootstrap_servers(value: str, setting: str = "KAFKA_BOOTSTRAP_SERVERS") -> str:
    servers = [s for s in value.split(",") if s.strip()]
    if not servers:
        raise ConfigError(setting, "empty")
    for server in servers:
        parse_host_port(setting, server)
    return ",".join(s.strip() for s in servers)


def parse_url(setting: str, value: str, schemes: tuple[str, ...]) -> str:
    parsed = urlparse(value.strip())
    if parsed.scheme not in schemes:
        raise ConfigError(setting, f"expected a URL starting {' or '.join(s + '://' for s in schemes)}, got {value!r}")
    try:
        _ = parsed.port  # raises ValueError on a non-numeric port
    except ValueError:
        raise ConfigError(setting, f"port is not a number in {value!r}") from None
    return value.strip()


def parse_choice(setting: str, value: str, choices: tuple[str, ...]) -> str:
    value = value.strip().lower()
    if value not in choices:
        raise ConfigError(setting, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Endpoints:
    """Addresses of every service the platform talks to; None means "not configured"."""

    kafka: str | None = None  # bootstrap servers host:port[,...]
    topic: str = DEFAULT_TOPIC
    postgres: str | None = None  # libpq DSN or URL
    hbase_host: str | None = None
    hbase_port: int | None = None
    hbase_transport: str = "buffered"
    hbase_protocol: str = "binary"
    mongo: str | None = None
    redis: str | None = None

    @property
    def hbase(self) -> str | None:
        return f"{self.hbase_host}:{self.hbase_port}" if self.hbase_host and self.hbase_port else None

    def as_dict(self) -> dict:
        return asdict(self)

    def to_env(self) -> dict[str, str]:
        """The environment variables that point a process (Dagster, a test) at these endpoints."""
        env = {"PAYMENTS_TOPIC": self.topic, "HBASE_TRANSPORT": self.hbase_transport,
               "HBASE_PROTOCOL": self.hbase_protocol}
        if self.kafka:
            env["KAFKA_BOOTSTRAP_SERVERS"] = self.kafka
        if self.postgres:
            env["POSTGRES_DSN"] = self.postgres
        if self.hbase_host and self.hbase_port:
            env["HBASE_HOST"], env["HBASE_PORT"] = self.hbase_host, str(self.hbase_port)
        if self.mongo:
            env["MONGO_URI"] = self.mongo
        if self.redis:
            env["REDIS_URL"] = self.redis
        return env


def endpoints_from_env(env: Mapping[str, str] | None = None) -> Endpoints:
    """Read and validate the service settings; raises ConfigError naming the first bad one."""
    env = os.environ if env is None else env

    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value is not None and value.strip() != "" else None

    kafka = get("KAFKA_BOOTSTRAP_SERVERS")
    hbase_host, hbase_port = get("HBASE_HOST"), get("HBASE_PORT")
    if hbase_port and not hbase_host:
        raise ConfigError("HBASE_HOST", "must be set when HBASE_PORT is set")
    postgres = get("POSTGRES_DSN")
    if postgres and postgres.startswith(("postgresql://", "postgres://")) is False and "=" not in postgres:
        raise ConfigError("POSTGRES_DSN", f"expected a postgresql:// URL or a libpq key=value DSN, got {postgres!r}")
    if postgres and postgres.startswith(("postgresql://", "postgres://")):
        parse_url("POSTGRES_DSN", postgres, ("postgresql", "postgres"))
    topic = get("PAYMENTS_TOPIC") or DEFAULT_TOPIC
    if any(c.isspace() for c in topic) or len(topic) > 249:
        raise ConfigError("PAYMENTS_TOPIC", f"not a valid Kafka topic name: {topic!r}")
    return Endpoints(
        kafka=parse_bootstrap_servers(kafka) if kafka else None,
        topic=topic,
        postgres=postgres,
        hbase_host=hbase_host,
        hbase_port=parse_port("HBASE_PORT", hbase_port) if hbase_port else (9090 if hbase_host else None),
        hbase_transport=parse_choice("HBASE_TRANSPORT", get("HBASE_TRANSPORT") or "buffered", ("buffered", "framed")),
        hbase_protocol=parse_choice("HBASE_PROTOCOL", get("HBASE_PROTOCOL") or "binary", ("binary", "compact")),
        mongo=parse_url("MONGO_URI", get("MONGO_URI"), ("mongodb", "mongodb+srv")) if get("MONGO_URI") else None,
        redis=parse_url("REDIS_URL", get("REDIS_URL"), ("redis", "rediss", "unix")) if get("REDIS_URL") else None,
    )


def data_dir_from_env(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("PAYMENT_PLATFORM_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()


@dataclass(frozen=True)
class Scaling:
    """How far ingestion spreads: topic partitions, leases and runs at once, micro-batch size, lease length,
    HBase salt."""

    topic_partitions: int = DEFAULT_TOPIC_PARTITIONS
    max_ranges_in_flight: int = DEFAULT_MAX_RANGES_IN_FLIGHT
    batch_size: int = DEFAULT_BATCH_SIZE
    max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT_RUNS
    hbase_salt_buckets: int = 0
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    lease_idle_seconds: int = DEFAULT_LEASE_IDLE_SECONDS

    def to_env(self) -> dict[str, str]:
        return {"PAYMENTS_TOPIC_PARTITIONS": str(self.topic_partitions),
                "INGESTION_LEASE_SECONDS": str(self.lease_seconds),
                "INGESTION_LEASE_IDLE_SECONDS": str(self.lease_idle_seconds),
                "INGESTION_MAX_RANGES_IN_FLIGHT": str(self.max_ranges_in_flight),
                "INGESTION_BATCH_SIZE": str(self.batch_size),
                "DAGSTER_MAX_CONCURRENT_RUNS": str(self.max_concurrent_runs),
                "HBASE_SALT_BUCKETS": str(self.hbase_salt_buckets)}


def _int_setting(name: str, value: str | None, default: int, low: int, high: int) -> int:
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ConfigError(name, f"not an integer: {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(name, f"must be between {low} and {high}, got {number}")
    return number


def salt_buckets_from_env(env: Mapping[str, str] | None = None) -> int:
    """HBASE_SALT_BUCKETS (0 = unsalted row keys, the default); raises ConfigError naming it when malformed."""
    env = os.environ if env is None else env
    return _int_setting("HBASE_SALT_BUCKETS", env.get("HBASE_SALT_BUCKETS"), 0, 0, MAX_SALT_BUCKETS - 1)


def scaling_from_env(env: Mapping[str, str] | None = None) -> Scaling:
    """Read and validate the scaling knobs; raises ConfigError naming the first bad one."""
    env = os.environ if env is None else env
    return Scaling(
        topic_partitions=_int_setting("PAYMENTS_TOPIC_PARTITIONS", env.get("PAYMENTS_TOPIC_PARTITIONS"),
                                      DEFAULT_TOPIC_PARTITIONS, 1, 10_000),
        max_ranges_in_flight=_int_setting("INGESTION_MAX_RANGES_IN_FLIGHT", env.get("INGESTION_MAX_RANGES_IN_FLIGHT"),
                                          DEFAULT_MAX_RANGES_IN_FLIGHT, 1, 10_000),
        batch_size=_int_setting("INGESTION_BATCH_SIZE", env.get("INGESTION_BATCH_SIZE"), DEFAULT_BATCH_SIZE,
                                1, 1_000_000),
        max_concurrent_runs=_int_setting("DAGSTER_MAX_CONCURRENT_RUNS", env.get("DAGSTER_MAX_CONCURRENT_RUNS"),
                                         DEFAULT_MAX_CONCURRENT_RUNS, 1, 10_000),
        hbase_salt_buckets=salt_buckets_from_env(env),
        lease_seconds=_int_setting("INGESTION_LEASE_SECONDS", env.get("INGESTION_LEASE_SECONDS"),
                                   DEFAULT_LEASE_SECONDS, 5, 86_400),
        lease_idle_seconds=_int_setting("INGESTION_LEASE_IDLE_SECONDS", env.get("INGESTION_LEASE_IDLE_SECONDS"),
                                        DEFAULT_LEASE_IDLE_SECONDS, 1, 86_400),
    )


@dataclass(frozen=True)
class Retention:
    """How long settled things are kept: landed ids in Redis, finished runs in Dagster."""

    redis_landed_ttl_s: int = DEFAULT_REDIS_LANDED_TTL_S
    keep_runs_hours: float = DEFAULT_KEEP_RUNS_HOURS
    keep_failed_runs_hours: float = DEFAULT_KEEP_FAILED_RUNS_HOURS


def _hours_setting(name: str, value: str | None, default: float) -> float:
    if value is None or value.strip() == "":
        return default
    return parse_number(name, value, 0.0, 24.0 * 3650, unit="hours")


def retention_from_env(env: Mapping[str, str] | None = None) -> Retention:
    """Read and validate the retention settings; raises ConfigError naming the first bad one."""
    env = os.environ if env is None else env
    return Retention(
        redis_landed_ttl_s=_int_setting("REDIS_LANDED_TTL_S", env.get("REDIS_LANDED_TTL_S"),
                                        DEFAULT_REDIS_LANDED_TTL_S, 1, 365 * 24 * 3600),
        keep_runs_hours=_hours_setting("HOUSEKEEPING_KEEP_RUNS_HOURS", env.get("HOUSEKEEPING_KEEP_RUNS_HOURS"),
                                       DEFAULT_KEEP_RUNS_HOURS),
        keep_failed_runs_hours=_hours_setting("HOUSEKEEPING_KEEP_FAILED_RUNS_HOURS",
                                              env.get("HOUSEKEEPING_KEEP_FAILED_RUNS_HOURS"),
                                              DEFAULT_KEEP_FAILED_RUNS_HOURS),
    )


PAN_HASH_KEY_SETTING = "PAN_HASH_KEY"
_DEVELOPMENT_PAN_HASH_KEY = b"payment_platform development PAN fingerprint key: set PAN_HASH_KEY in production"


def pan_hash_key_from_env(env: Mapping[str, str] | None = None) -> bytes:
    """The key of PAN fingerprints (domain.redaction): PAN_HASH_KEY as hex, at least 16 bytes; a fixed development
    key when unset. Raises ConfigError naming the setting (never echoing it: it is a secret) when malformed."""
    env = os.environ if env is None else env
    text = (env.get(PAN_HASH_KEY_SETTING) or "").strip()
    if not text:
        return _DEVELOPMENT_PAN_HASH_KEY
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(PAN_HASH_KEY_SETTING, f"not hexadecimal ({len(text)} characters given); generate one "
                                                f"with `openssl rand -hex 32`") from None
    if len(key) < 16:
        raise ConfigError(PAN_HASH_KEY_SETTING, f"too short: {len(key) * 8} bits, at least 128 (32 hex digits) "
                                                f"needed; generate one with `openssl rand -hex 32`")
    return key
