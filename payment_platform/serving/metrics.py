"""`GET /metrics` in Prometheus' text format: the API's own requests (count and latency per route and status) and
the platform's figures, read from the stores at each scrape (lag and last landed offset per partition, landed,
quarantined, backup size per store, oldest backup age, service health).

Each app has its own registry (no process-wide state: two apps in one process, as in the tests, never mix).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

logger = logging.getLogger(__name__)
CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics:
    """Pure ASGI middleware counting every HTTP request by route template, method and status, with its latency."""

    def __init__(self, app, registry: CollectorRegistry):
        self.app = app
        self.requests = Counter("payment_api_requests", "HTTP requests answered by the read API",
                                ("route", "method", "status"), registry=registry)
        self.latency = Histogram("payment_api_request_duration_seconds", "Time to answer an HTTP request",
                                 ("route", "method", "status"), buckets=LATENCY_BUCKETS, registry=registry)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            # the template, never the raw path: one series per route, not one per payment id
            label = getattr(route, "path", None) or "unmatched"
            code = str(status[0])
            self.requests.labels(label, scope["method"], code).inc()
            self.latency.labels(label, scope["method"], code).observe(time.perf_counter() - started)


class PlatformCollector:
    """The platform's figures, read when Prometheus scrapes (each read bounded by the probes' timeout)."""

    def __init__(self, probes_factory: Callable[[], object] | None):
        self.probes_factory = probes_factory

    def describe(self):
        return []  # figures are read at scrape time only, never while registering

    def collect(self):
        if self.probes_factory is None:
            return
        from payment_platform.monitoring.snapshot import collect

        probes = self.probes_factory()
        try:
            snap = collect(probes)
            partitions = _partitions(probes)
        finally:
            probes.close()
        up = GaugeMetricFamily("payment_platform_service_up", "1 when the service answered its health probe",
                               labels=["service"])
        for name, service in snap.services.items():
            up.add_metric([name], 1.0 if service["ok"] else 0.0)
        yield up
        figures = snap.figures
        for name, help_text, key in (
                ("payment_platform_kafka_lag_messages", "Messages published but not ingested, all partitions",
                 "kafka_lag"),
                ("payment_platform_landed_payments", "Payments ingested (Redis live counter)", "processed"),
                ("payment_platform_ingestion_errors", "Ingestion errors (Redis live counter)", "errors"),
                ("payment_platform_quarantined_messages", "Messages in quarantine", "quarantine_count"),
                ("payment_platform_backup_oldest_age_seconds", "Age of the oldest backup entry", "backup_oldest_age_s"),
                ("payment_platform_processing_rate_per_second", "Payments landed per second, last 60 s", "rate_per_s")):
            if figures.get(key) is not None:
                yield GaugeMetricFamily(name, help_text, value=float(figures[key]))
        backup = GaugeMetricFamily("payment_platform_backup_payments", "Payments waiting in the failed-payment "
                                                                       "backup, per store", labels=["store"])
        for store in ("hbase", "postgres"):
            if figures.get(f"backup_{store}") is not None:
                backup.add_metric([store], float(figures[f"backup_{store}"]))
        yield backup
        lag = GaugeMetricFamily("payment_platform_partition_lag_messages", "Messages not ingested yet, per partition",
                                labels=["topic", "partition"])
        landed = GaugeMetricFamily("payment_platform_partition_next_offset",
                                   "End of the last range landed (next offset to ingest), per partition",
                                   labels=["topic", "partition"])
        landed_at = GaugeMetricFamily("payment_platform_partition_last_landed_timestamp_seconds",
                                      "When the last range of the partition landed (Unix time)",
                                      labels=["topic", "partition"])
        for topic, partition, end, next_offset, updated_at in partitions:
            labels = [topic, str(partition)]
            if end is not None:
                lag.add_metric(labels, float(max(0, end - (next_offset or 0))))
            if next_offset is not None:
                landed.add_metric(labels, float(next_offset))
            if updated_at is not None:
                landed_at.add_metric(labels, updated_at)
        yield lag
        yield landed
        yield landed_at


def _partitions(probes) -> list[tuple]:
    """(topic, partition, end offset or None, next offset or None, last landed Unix time or None) per partition."""
    topic = probes.kafka.topic if probes.kafka is not None else None
    if topic is None or probes.ledger is None:
        return []
    try:
        end = probes.kafka.end_offsets()
    except Exception:  # noqa: BLE001 - the service gauge already says Kafka is down
        end = {}
    try:
        progress = probes.ledger.progress_rows(topic)
    except Exception:  # noqa: BLE001 - no ledger yet, or down (service gauge)
        progress = {}
    return [(topic, p, end.get(p), *progress.get(p, (0 if p in end else None, None)))
            for p in sorted(set(end) | set(progress))]


def registry_for(probes_factory: Callable[[], object] | None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector(probes_factory))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
