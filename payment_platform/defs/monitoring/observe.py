"""The platform's live figures observed every 30 s, with stable numeric metadata keys the UI plots over time:
Kafka lag, processing time per payment, rate, errors, backup size and age, quarantine count, service health.
"""
import dagster as dg

from payment_platform.defs.catalog import OWNERS
from payment_platform.defs.asset_keys import FAILED_PAYMENT_BACKUP, QUARANTINE
from payment_platform.defs.resources import BackupResource, HBaseResource, KafkaResource, PostgresResource, RedisResource
from payment_platform.monitoring.snapshot import Probes, collect

PLATFORM_HEALTH = dg.AssetKey(["monitoring", "platform_health"])
PROBE_TIMEOUT_S = 3.0

platform_health = dg.AssetSpec(
    PLATFORM_HEALTH, group_name="monitoring", kinds={"redis", "kafka", "postgres"}, owners=OWNERS,
    description="Live figures of the pipeline and the health of every service, observed every 30 s. "
                "Plot kafka_lag, avg_processing_ms, rate_per_s, errors, backup_size, "
                "backup_oldest_age_s, quarantine_count, health_* in the asset's Plots tab.")


def observations(snapshot) -> list[dg.AssetObservation]:
    numbers = snapshot.numeric_figures()
    events = [dg.AssetObservation(PLATFORM_HEALTH, metadata=numbers,
                                  description="; ".join(snapshot.problems) or "all figures read")]
    backup = {k: numbers[k] for k in ("backup_size", "backup_hbase", "backup_postgres", "backup_oldest_age_s")
              if k in numbers}
    latest = snapshot.backup_latest_failure
    if backup and latest:  # text beside the plotted figures: why the last payment is still waiting
        backup.update(latest_failure_payment=latest["payment_id"], latest_failure_store=latest["store"],
                      latest_failure_error=latest["error"])
    if backup:
        events.append(dg.AssetObservation(FAILED_PAYMENT_BACKUP, metadata=backup))
    if "quarantine_count" in numbers:
        events.append(dg.AssetObservation(QUARANTINE, metadata={"quarantine_count": numbers["quarantine_count"]}))
    return events


@dg.sensor(name="platform_monitoring_sensor", minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Observes lag, processing time, rate, errors, backup, quarantine and service health.")
def platform_monitoring_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource, hbase: HBaseResource,
                               postgres: PostgresResource, backup: BackupResource, redis: RedisResource):
    ms = int(PROBE_TIMEOUT_S * 1000)
    hbase_store = hbase.client()
    hbase_store.timeout_ms = hbase_store.health_timeout_ms = ms
    probes = Probes(kafka.client(PROBE_TIMEOUT_S), postgres.client(), hbase_store, backup.client(), redis.client(),
                    timeout_s=PROBE_TIMEOUT_S)
    try:
        snapshot = collect(probes)
    finally:
        probes.close()
    down = [name for name, s in snapshot.services.items() if not s["ok"]]
    return dg.SensorResult(asset_events=observations(snapshot),
                           skip_reason=dg.SkipReason(f"observed; down: {', '.join(down) or 'none'}"))
