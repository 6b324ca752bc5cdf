"""The ingestion run: one run ingests one Kafka offset range into HBase, Postgres and Redis.

The range comes from run config (the sensor plans it). The run materialises the stores' assets, downstream
of the Kafka topic, with the range's figures as metadata. A run that cannot settle every message (stores
AND backup failing) raises: the run fails, progress does not move, and the same range is retried (an op
retry with backoff, then Dagster run retries, then the sensor requests it again under a new run key).
"""

import time

import dagster as dg

from payment_platform.defs import asset_keys
from payment_platform.defs.ingestion.settings import IngestionSettingsResource
from payment_platform.defs.resources import BackupResource, HBaseResource, KafkaResource, PostgresResource, RedisResource
from payment_platform.ingestion.loader import Ingestor, OffsetRange

from payment_platform.defs.ingestion.runs import INGEST_JOB_NAME, INGEST_RANGE_ASSET, RUN_RETRIES
INGESTED_ASSETS = (asset_keys.HBASE_PAYMENTS, asset_keys.POSTGRES_PAYMENTS,
                   asset_keys.FAILED_PAYMENT_BACKUP, asset_keys.QUARANTINE)


class IngestRangeConfig(dg.Config):
    """The Kafka offset range [start, end) of one partition that this run ingests."""

    topic: str
    partition: int
    start: int
    end: int


@dg.multi_asset(
    name=INGEST_RANGE_ASSET,
    specs=[
        dg.AssetSpec(asset_keys.HBASE_PAYMENTS, deps=[asset_keys.PAYMENTS_TOPIC], group_name="ingestion",
                     description="Payments in HBase table `payments` (+ index `payments_by_id`)."),
        dg.AssetSpec(asset_keys.POSTGRES_PAYMENTS, deps=[asset_keys.PAYMENTS_TOPIC], group_name="ingestion",
                     description="Payments in the Postgres ledger table `payments`."),
        dg.AssetSpec(asset_keys.FAILED_PAYMENT_BACKUP, deps=[asset_keys.PAYMENTS_TOPIC], group_name="ingestion",
                     description="Payments whose write to a store failed (MongoDB, local folder fallback)."),
        dg.AssetSpec(asset_keys.QUARANTINE, deps=[asset_keys.PAYMENTS_TOPIC], group_name="ingestion",
                     description="Messages that could not be parsed or failed validation, with the reason."),
    ],
    retry_policy=dg.RetryPolicy(max_retries=2, delay=1.0, backoff=dg.Backoff.EXPONENTIAL),
)
def ingest_payments_range(
    context: dg.AssetExecutionContext,
    config: IngestRangeConfig,
    kafka: KafkaResource,
    hbase: HBaseResource,
    postgres: PostgresResource,
    backup: BackupResource,
    redis: RedisResource,
    ingestion_settings: IngestionSettingsResource,
):
    """Ingest one offset range of the payments topic into every store, exactly once in effect."""
    offset_range = OffsetRange(config.topic, config.partition, config.start, config.end)
    ingestor = Ingestor.from_resources(kafka, hbase, postgres, backup, redis)
    started = time.monotonic()
    try:
        result = ingestor.ingest(offset_range, chunk_size=ingestion_settings.chunk_size, log=context.log)
    finally:
        ingestor.close()
    context.log.info(f"ingested {offset_range} in {time.monotonic() - started:.2f}s: {result.as_metadata()}")
    # the topic's lag is observed by the sensor on the topic asset, not measured by each run
    shared = {**result.as_metadata(), "topic": config.topic, "partition": config.partition,
              "start_offset": config.start, "end_offset": config.end}
    for key in INGESTED_ASSETS:
        yield dg.MaterializeResult(asset_key=key, metadata=shared)


ingest_range_job = dg.define_asset_job(
    INGEST_JOB_NAME,
    selection=dg.AssetSelection.assets(*INGESTED_ASSETS).without_checks(),
    description="Ingest one Kafka offset range (run config) into HBase, Postgres and Redis.",
    # one step: running it in the run worker saves a second Python process per run (seconds of latency)
    executor_def=dg.in_process_executor,
    # max_runtime: with run monitoring on, a run whose worker died (the default launcher cannot see it) is
    # canceled after 300 s (a 20,000-message range takes seconds), and the sensor requests its range again
    tags={"dagster/max_retries": str(RUN_RETRIES), "dagster/retry_strategy": "ALL_STEPS",
          "dagster/max_runtime": "300"},
)
