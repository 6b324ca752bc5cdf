"""The monitoring sensor observes the live figures with stable numeric metadata keys."""
import uuid

import dagster as dg
import pytest

from payment_platform.defs.asset_keys import FAILED_PAYMENT_BACKUP, QUARANTINE
from payment_platform.defs.monitoring.observe import PLATFORM_HEALTH, platform_monitoring_sensor
from payment_platform.defs.resources import BackupResource, HBaseResource, KafkaResource, PostgresResource, RedisResource

pytestmark = pytest.mark.stack


def resources(stack, tmp_path, hbase_port=None):
    e = stack.endpoints
    return {"kafka": KafkaResource(bootstrap_servers=e.kafka, topic=f"monitoring-{uuid.uuid4().hex[:8]}"),
            "hbase": HBaseResource(host=e.hbase_host, port=hbase_port or e.hbase_port),
            "postgres": PostgresResource(dsn=e.postgres, schema_name="public"),
            "backup": BackupResource(mongo_uri=e.mongo, fallback_dir=str(tmp_path / "failed_payments")),
            "redis": RedisResource(url=e.redis)}


def evaluate(stack, tmp_path, **options):
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources(stack, tmp_path, **options))
        return platform_monitoring_sensor(context)


def test_observes_stable_numeric_keys(stack, tmp_path):
    from payment_platform.stores.postgres import PostgresLedger
    PostgresLedger(stack.endpoints.postgres).ensure_schema()
    result = evaluate(stack, tmp_path)
    events = {tuple(e.asset_key.path): e for e in result.asset_events}
    health = events[tuple(PLATFORM_HEALTH.path)].metadata
    for key in ("health_kafka", "health_postgres", "health_hbase", "health_mongo", "health_redis",
                "services_healthy", "backup_size", "quarantine_count", "errors", "processed", "rate_per_s"):
        assert key in health, key
        assert isinstance(health[key].value, float)
    assert health["health_hbase"].value == 1.0
    assert "backup_size" in events[tuple(FAILED_PAYMENT_BACKUP.path)].metadata
    assert "quarantine_count" in events[tuple(QUARANTINE.path)].metadata


def test_a_dead_store_is_observed_as_down(stack, tmp_path):
    from devstack.stack.manager import free_ports
    result = evaluate(stack, tmp_path, hbase_port=free_ports(1)[0])
    health = {tuple(e.asset_key.path): e for e in result.asset_events}[tuple(PLATFORM_HEALTH.path)].metadata
    assert health["health_hbase"].value == 0.0 and health["health_postgres"].value == 1.0
