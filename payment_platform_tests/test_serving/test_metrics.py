"""`GET /metrics` speaks Prometheus' text format (parsed with prometheus_client's own parser): the API's requests per
route and status with latency histograms, and the platform's figures read from the stores at each scrape."""
from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from payment_platform.serving.api import create_app
from payment_platform.stores.kafka import KafkaClient

from .conftest import ApiServer

pytestmark = pytest.mark.stack


def scrape(api) -> dict[str, list]:
    with urllib.request.urlopen(api.url + "/metrics", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples, name: str, **labels) -> float | None:
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return found[0] if found else None


def test_metrics_exposition_counts_requests_and_reads_the_platform(served):
    payment = served.docs[0]["payment_id"]
    with ApiServer(create_app(served.queries, probes_factory=served.probes)) as api:
        for _ in range(3):
            assert api.get(f"/payments/{payment}")[0] == 200
        assert api.get("/payments/not-a-uuid")[0] == 400
        assert api.get("/payments/6f1c1d36-9a39-4c43-a1a5-0c0d2b0b0b0b")[0] == 404
        families = scrape(api)

    requests = families["payment_api_requests"]
    # one series per route template (never per payment id) and status
    assert value(requests, "payment_api_requests_total", route="/payments/{payment_id}", status="200") == 3
    assert value(requests, "payment_api_requests_total", route="/payments/{payment_id}", status="400") == 1
    assert value(requests, "payment_api_requests_total", route="/payments/{payment_id}", status="404") == 1
    latency = families["payment_api_request_duration_seconds"]
    assert value(latency, "payment_api_request_duration_seconds_count", route="/payments/{payment_id}",
                 status="200") == 3
    assert value(latency, "payment_api_request_duration_seconds_bucket", route="/payments/{payment_id}",
                 status="200", le="+Inf") == 3

    up = families["payment_platform_service_up"]
    assert {s.labels["service"]: s.value for s in up} == {"kafka": 1.0, "postgres": 1.0, "hbase": 1.0,
                                                          "mongo": 1.0, "redis": 1.0}
    assert families["payment_platform_quarantined_messages"][0].value == served.quarantined > 0
    backup = families["payment_platform_backup_payments"]
    assert {s.labels["store"]: s.value for s in backup} == {"hbase": 0.0, "postgres": 0.0}
    lag = families["payment_platform_partition_lag_messages"]
    assert [(s.labels["topic"], s.labels["partition"]) for s in lag] == [(served.topic, "0")]
    landed = families["payment_platform_partition_next_offset"]
    with KafkaClient(served.stack.endpoints.kafka, served.topic) as kafka:
        end = kafka.end_offsets()[0]
    # the served range landed whole: nothing waits, the last landed range ends at the partition's end
    assert [s.value for s in landed] == [end] and [s.value for s in lag] == [0.0]
