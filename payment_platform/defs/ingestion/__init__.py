"""Sensor-driven ingestion: the lease job (one run ingests one partition continuously, each micro-batch a
materialization of the stores' assets), the range job (assets HBase/Postgres payments, backup, quarantine
downstream of the Kafka topic: one range, or what waits now, for a person's Materialize), the sensor that keeps the
partitions leased, and the topic's lag observed over time."""
import dagster as dg

from payment_platform.defs.ingestion.assets import ingest_payments_range, ingest_range_job
from payment_platform.defs.ingestion.lease_job import ingest_lease_job
from payment_platform.defs.ingestion.sensors import payments_ingestion_sensor
from payment_platform.defs.ingestion_settings import IngestionSettingsResource

defs = dg.Definitions(
    assets=[ingest_payments_range],
    jobs=[ingest_range_job, ingest_lease_job],
    sensors=[payments_ingestion_sensor],
    resources={"ingestion_settings": IngestionSettingsResource()},
)
