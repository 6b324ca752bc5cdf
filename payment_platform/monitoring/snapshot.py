"""One snapshot of the platform's health and live figures, for `payment-platform status` and the Dagster
monitoring sensor (lag, processing time, rate, errors, backup, quarantine, services).

Every probe runs in its own thread with a bounded timeout, so a dead service costs at most `timeout_s` and
shows up as that service's error; the figures that need it are None. Numeric keys are stable (the UI plots them).
"""
from __future__ import annotations

import concurrent.futures
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from payment_platform.config import Endpoints
from payment_platform.monitoring import health
from payment_platform.monitoring.health import NotConfigured, ProbeFailed

if TYPE_CHECKING:
    from payment_platform.stores.kafka import KafkaClient

SERVICES = health.SERVICES

# The numeric figures of a snapshot, stable names (metadata keys of the monitoring observations).
FIGURES = ("kafka_lag", "avg_processing_ms", "last_processing_ms", "rate_per_s", "processed", "errors",
           "backup_size", "backup_hbase", "backup_postgres", "backup_oldest_age_s", "quarantine_count",
           "services_healthy")


@dataclass
class Snapshot:
    taken_at: float
    services: dict[str, dict] = field(default_factory=dict)  # name -> {"ok": bool, "detail": str, "seconds": float}
    figures: dict[str, float | int | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # what the latest failed attempt of a waiting payment said (backup.stats()["latest_failure"]), None when empty
    backup_latest_failure: dict | None = None

    def numeric_figures(self) -> dict[str, float]:
        """The figures that have a value, plus one 0/1 health figure per service (for Dagster metadata)."""
        numbers = {k: float(v) for k, v in self.figures.items() if v is not None}
        numbers.update({f"health_{name}": 1.0 if s["ok"] else 0.0 for name, s in self.services.items()})
        return numbers

    def as_dict(self) -> dict:
        return {"taken_at": self.taken_at, "services": self.services, "figures": self.figures,
                "problems": self.problems, "backup_latest_failure": self.backup_latest_failure}

    @property
    def healthy(self) -> bool:
        return all(s["ok"] for s in self.services.values())


class Probes:
    """The clients a snapshot reads (None where a service is not configured)."""

    def __init__(self, kafka: KafkaClient | None, ledger, hbase, backup, redis, timeout_s: float = 3.0):
        self.kafka = kafka
        self.ledger, self.hbase, self.backup, self.redis = ledger, hbase, backup, redis
        self.timeout_s = timeout_s

    @classmethod
    def from_endpoints(cls, endpoints: Endpoints, backup_dir: str = "failed_payments", timeout_s: float = 3.0) -> "Probes":
        clients = {name: health.client(name, endpoints, timeout_s, backup_dir) for name in health.SERVICES}
        return cls(clients["kafka"], clients["postgres"], clients["hbase"], clients["mongo"], clients["redis"],
                   timeout_s)

    def close(self) -> None:
        for client in (self.kafka, self.ledger, self.hbase, self.backup, self.redis):
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing after a failed probe
                    pass


def collect(probes: Probes) -> Snapshot:
    """Probe every service and read every figure, in parallel, each bounded by the probes' timeout."""
    timeout = probes.timeout_s
    snapshot = Snapshot(taken_at=time.time())

    def need(value, setting):
        if value is None:
            raise NotConfigured(f"not configured ({setting})")
        return value

    # the health probe and the lag read share one read of the end offsets (one admin connection)
    end_offsets = _once(lambda: need(probes.kafka, "KAFKA_BOOTSTRAP_SERVERS").end_offsets())
    topic = probes.kafka.topic if probes.kafka is not None else None
    health_checks = {
        "kafka": lambda: health.kafka_health(end_offsets, topic),
        "postgres": lambda: health.check("postgres", probes.ledger),
        "hbase": lambda: health.check("hbase", probes.hbase),
        "mongo": lambda: health.check("mongo", probes.backup),
        "redis": lambda: health.check("redis", probes.redis),
    }
    reads = {
        "lag": lambda: _lag(end_offsets, topic, need(probes.ledger, "POSTGRES_DSN")),
        "metrics": lambda: need(probes.redis, "REDIS_URL").metrics(),
        "backup": lambda: probes.backup.stats(),
        "quarantine": lambda: _before_first_ingestion(need(probes.ledger, "POSTGRES_DSN").count_quarantine),
    }
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(health_checks) + len(reads), thread_name_prefix="status")
    try:
        started = time.perf_counter()
        futures = {("health", k): pool.submit(_timed, fn) for k, fn in health_checks.items()}
        futures.update({("read", k): pool.submit(_timed, fn) for k, fn in reads.items()})
        deadline = started + timeout * 2 + 1
        results = {}
        for key, future in futures.items():
            try:
                results[key] = future.result(timeout=max(0.0, deadline - time.perf_counter()))
            except concurrent.futures.TimeoutError:
                results[key] = (False, f"no answer within {timeout * 2 + 1:g}s", timeout * 2 + 1)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)

    for name in SERVICES:
        ok, value, seconds = results[("health", name)]
        snapshot.services[name] = {"ok": ok, "detail": value if isinstance(value, str) else str(value),
                                   "seconds": round(seconds, 3)}
    figures = dict.fromkeys(FIGURES)
    ok, lag, _ = results[("read", "lag")]
    figures["kafka_lag"] = lag if ok else None
    ok, metrics, _ = results[("read", "metrics")]
    if ok:
        figures.update(avg_processing_ms=metrics.get("avg_processing_ms"),
                       last_processing_ms=metrics.get("last_processing_ms"),
                       rate_per_s=metrics.get("rate_per_s_60s"), processed=metrics.get("processed"),
                       errors=metrics.get("errors"))
    ok, stats, _ = results[("read", "backup")]
    if ok:
        figures.update(backup_size=stats["size"], backup_hbase=stats["by_store"].get("hbase"),
                       backup_postgres=stats["by_store"].get("postgres"), backup_oldest_age_s=stats["oldest_age_s"])
        snapshot.backup_latest_failure = stats.get("latest_failure")
    ok, quarantined, _ = results[("read", "quarantine")]
    figures["quarantine_count"] = quarantined if ok else None
    figures["services_healthy"] = sum(1 for s in snapshot.services.values() if s["ok"])
    snapshot.figures = figures
    for (kind, name), (ok, value, _) in results.items():
        if not ok and kind == "read":
            snapshot.problems.append(f"{name}: {value}")
    return snapshot


def _once(read: Callable[[], dict]) -> Callable[[], dict]:
    """`read` called by the first caller only; every caller gets its result (or its error)."""
    lock, outcome = threading.Lock(), []

    def call() -> dict:
        with lock:
            if not outcome:
                try:
                    outcome.append((True, read()))
                except Exception as error:  # noqa: BLE001 - raised again to every caller
                    outcome.append((False, error))
        ok, value = outcome[0]
        if not ok:
            raise value
        return value
    return call


def _lag(end_offsets: Callable[[], dict], topic: str, ledger) -> int:
    from payment_platform.ingestion.planner import lag_of
    from payment_platform.stores import kafka as kafka_store

    try:
        end = end_offsets()
    except kafka_store.UnknownTopic:
        return 0  # no topic, nothing waiting
    return lag_of(end, _before_first_ingestion(lambda: ledger.read_progress(topic), {})).lag


def _before_first_ingestion(read, empty=0):
    """The ledger's tables appear with the first ingestion: before that, nothing was quarantined or ingested."""
    import psycopg2.errors

    try:
        return read()
    except psycopg2.errors.UndefinedTable:
        return empty


def _timed(fn: Callable) -> tuple[bool, object, float]:
    started = time.perf_counter()
    try:
        return True, fn(), time.perf_counter() - started
    except Exception as error:  # noqa: BLE001 - reported as this probe's failure
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if not isinstance(error, (NotConfigured, ProbeFailed)):
            message = f"{type(error).__name__}: {message}"
        return False, message, time.perf_counter() - started


def render(snapshot: Snapshot) -> str:
    """The terminal view of a snapshot."""
    f = snapshot.figures

    def show(value, unit="", digits=1):
        if value is None:
            return "n/a"
        if isinstance(value, float):
            return f"{value:,.{digits}f}{unit}"
        return f"{value:,}{unit}"

    lines = [f"payment_platform status at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(snapshot.taken_at))}",
             "", "services:"]
    for name, s in snapshot.services.items():
        lines.append(f"  {name:<9} {'OK  ' if s['ok'] else 'DOWN'}  {s['detail']}  ({s['seconds'] * 1000:.0f} ms)")
    lines += [
        "", "pipeline:",
        f"  kafka lag               {show(f['kafka_lag'])} messages",
        f"  processing per payment  {show(f['avg_processing_ms'], ' ms', 3)} average, "
        f"{show(f['last_processing_ms'], ' ms', 3)} latest chunk",
        f"  current rate            {show(f['rate_per_s'], ' payments/s')} (last 60 s)",
        f"  processed               {show(f['processed'])}",
        f"  errors                  {show(f['errors'])} failed store writes",
        f"  backup                  {show(f['backup_size'])} payments (hbase {show(f['backup_hbase'])}, "
        f"postgres {show(f['backup_postgres'])}), oldest {show(f['backup_oldest_age_s'], ' s', 0)}",
        f"  quarantine              {show(f['quarantine_count'])} messages",
    ]
    latest = snapshot.backup_latest_failure
    if latest:  # why the backup still holds payments: an outage, or a refusal replay cannot prove to be poison
        lines.append(f"  latest backup failure   payment {latest['payment_id']} for {latest['store']} "
                     f"(attempt {latest['attempts']}): {latest['error']}")
    if snapshot.problems:
        lines += ["", "could not read:"] + [f"  {p}" for p in snapshot.problems]
    return "\n".join(lines)
