"""The ingestion run: one run ingests one Kafka offset range into HBase, Postgres and Redis.

The range comes from run config (the sensor plans it). The run materialises the stores' assets, downstream
of the Kafka topic, with the range's figures as metadata. A run that cannot settle every message (stores
AND backup failing) raises: the run fails, progress does not move, and the same range is retried (an op
retry with backoff, then Dagster run retries, then the sensor requests it again under a new run key).
"""

import time
from collections.abc import Callable

import dagster as dg

from payment_platform.defs import asset_keys, catalog
from payment_platform.defs.catalog import OWNERS
from payment_platform.defs.checks.checks import INGESTED_RANGES_METADATA, RANGE_CHECK_KEYS
from payment_platform.defs.ingestion.runs import (
    IN_FLIGHT_STATUSES,
    INGEST_JOB_NAME,
    INGEST_RANGE_ASSET,
    PARTITION_TAG,
    RUN_RETRIES,
)
from payment_platform.defs.ingestion_settings import IngestionSettingsResource
from payment_platform.defs.resources import BackupResource, HBaseResource, KafkaResource, PostgresResource, RedisResource
from payment_platform.defs.run_workers import record_worker
from payment_platform.ingestion.loader import Ingestor, OffsetRange, RangeResult
from payment_platform.lib.bounded import bounded
from payment_platform.stores.kafka import KafkaClient, UnknownTopic

INGESTED_ASSETS = (asset_keys.HBASE_PAYMENTS, asset_keys.POSTGRES_PAYMENTS,
                   asset_keys.FAILED_PAYMENT_BACKUP, asset_keys.QUARANTINE)


class IngestRangeConfig(dg.Config):
    """The Kafka offset range [start, end) of one partition that this run ingests. The sensor sets all four;
    leave them all out (Materialize in the UI, a Launchpad run without config) to ingest what waits now."""

    topic: str | None = None
    partition: int | None = None
    start: int | None = None
    end: int | None = None

    def offset_range(self) -> OffsetRange | None:
        given = [v is not None for v in (self.topic, self.partition, self.start, self.end)]
        if not any(given):
            return None
        if not all(given):
            raise dg.Failure("ingest_payments_range config: give topic, partition, start and end together (one "
                             "range, as the sensor does), or none of them to ingest every payment waiting now",
                             allow_retries=False)
        return OffsetRange(self.topic, self.partition, self.start, self.end)


CONSUMER_GROUP = "payment-platform-ingestion"  # Kafka's view of ingestion (offsets committed after each run)
MATERIALIZE_MEANS = ("Materialize (or Materialize all) ingests every payment waiting in Kafka now into every "
                     "store, as the sensor does by itself every few seconds; the range's checks run in the same "
                     "run.")
NO_PAYMENTS_YET = ("no payments published yet: materialize generation/payment_batch or run "
                   "`payment-platform produce --tps 50`")


def waiting_ranges(context, kafka: KafkaResource, postgres: PostgresResource,
                   settings: IngestionSettingsResource) -> list[OffsetRange]:
    """What waits now: per partition, [recorded progress, end offset), at most max_batch_size messages, skipping
    partitions whose ingestion run is in flight (the sensor's range would overlap) and partitions the sensor
    has not started yet (where ingestion begins is recorded by the sensor)."""
    timeout_s = settings.io_timeout_seconds
    with kafka.client(timeout_s) as client:
        try:
            end_offsets = bounded(client.end_offsets, timeout_s + 1.0, "kafka end offsets")
        except UnknownTopic:
            raise dg.Failure(f"nothing to ingest: {NO_PAYMENTS_YET}", allow_retries=False) from None
        except Exception as error:  # noqa: BLE001 - said plainly, the run fails and nothing moved
            raise dg.Failure(f"cannot see what waits in Kafka at {kafka.bootstrap_servers}: "
                             f"{type(error).__name__}: {error}") from None
        ledger = postgres.client()
        try:
            bounded(ledger.ensure_schema, timeout_s * 2, "postgres ensure_schema")
            progress = bounded(lambda: ledger.read_progress(kafka.topic), timeout_s, "postgres progress")
        finally:
            ledger.close()
        first = bounded(client.beginning_offsets, timeout_s + 1.0, "kafka beginning offsets") \
            if any(p not in progress for p in end_offsets) else {}
    busy = partitions_in_flight(context.instance, context.run.run_id)
    max_batch = settings.planner().max_batch_size
    ranges = []
    for partition, end in sorted(end_offsets.items()):
        # a partition never ingested starts at 0 only if Kafka still holds offset 0 (else the sensor records a reset)
        start = progress.get(partition, 0 if first.get(partition) == 0 else None)
        if start is None or start >= end:
            continue
        if partition in busy:
            context.log.info(f"{kafka.topic}[{partition}]: an ingestion run (a lease) is on it already")
            continue
        ranges.append(OffsetRange(kafka.topic, partition, start, min(end, start + max_batch)))
    return ranges


def partitions_in_flight(instance: dg.DagsterInstance, this_run_id: str) -> set[int]:
    records = instance.get_run_records(dg.RunsFilter(statuses=IN_FLIGHT_STATUSES))  # leases and ranges alike
    return {int(r.dagster_run.tags[PARTITION_TAG]) for r in records
            if r.dagster_run.run_id != this_run_id and PARTITION_TAG in r.dagster_run.tags}


@dg.multi_asset(
    name=INGEST_RANGE_ASSET,
    specs=[
        dg.AssetSpec(asset_keys.HBASE_PAYMENTS, deps=[asset_keys.PAYMENTS_TOPIC], group_name="ingestion",
                     kinds={"hbase", "redis"}, owners=OWNERS,
                     metadata=catalog.table_metadata("payments", catalog.HBASE_PAYMENTS_SCHEMA),
                     description="Payments in HBase table `payments` (+ index `payments_by_id`), written by the "
                                 f"ingestion sensor's runs. {MATERIALIZE_MEANS}"),
        dg.AssetSpec(asset_keys.POSTGRES_PAYMENTS, deps=[asset_keys.PAYMENTS_TOPIC], group_name="ingestion",
                     kinds={"postgres"}, owners=OWNERS,
                     metadata=catalog.table_metadata("payments", catalog.POSTGRES_PAYMENTS_SCHEMA),
                     description=f"Payments in the Postgres ledger table `payments`. {MATERIALIZE_MEANS}"),
        dg.AssetSpec(asset_keys.FAILED_PAYMENT_BACKUP, deps=[asset_keys.PAYMENTS_TOPIC], group_name="ingestion",
                     kinds={"mongodb"}, owners=OWNERS,
                     metadata=catalog.table_metadata("payments.failed_payments", catalog.BACKUP_SCHEMA),
                     description="Payments whose write to a store failed (MongoDB collection failed_payments, local "
                                 f"folder fallback), drained by the replay sensor. {MATERIALIZE_MEANS}"),
        dg.AssetSpec(asset_keys.QUARANTINE, deps=[asset_keys.PAYMENTS_TOPIC], group_name="ingestion",
                     kinds={"postgres"}, owners=OWNERS,
                     metadata=catalog.table_metadata("payments_quarantine", catalog.QUARANTINE_SCHEMA),
                     description="Messages that could not be parsed or failed validation, with the reason. "
                                 f"{MATERIALIZE_MEANS}"),
    ],
    retry_policy=dg.RetryPolicy(max_retries=2, delay=1.0, backoff=dg.Backoff.EXPONENTIAL),
    # Materialize on one store asset works (no "must be materialized together" refusal): the run ingests into
    # every store all the same (that is what settles a range) and reports the assets that were selected
    can_subset=True,
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
    """Ingest one offset range of the payments topic (or every payment waiting now) into every store, exactly
    once in effect."""
    record_worker(context)  # lets the sensor see at once if this process dies (defs.run_workers)
    requested = config.offset_range()
    ranges = [requested] if requested else waiting_ranges(context, kafka, postgres, ingestion_settings)
    topic = requested.topic if requested else kafka.topic
    results = []
    ingestor = Ingestor.from_resources(kafka, hbase, postgres, backup, redis,
                                       window=ingestion_settings.validity_window())
    try:
        for offset_range in ranges:
            started = time.monotonic()
            results.append(ingestor.ingest(offset_range, chunk_size=ingestion_settings.chunk_size, log=context.log))
            context.log.info(f"ingested {offset_range} in {time.monotonic() - started:.2f}s: "
                             f"{results[-1].as_metadata()}")
    finally:
        ingestor.close()
    committed = commit_consumer_group(context.log.warning, kafka, results, ingestion_settings.io_timeout_seconds)
    # the topic's lag is observed by the sensor on the topic asset, not measured by each run
    shared = _combined_metadata(results, topic)
    shared["consumer_group_committed"] = committed
    shared[INGESTED_RANGES_METADATA] = dg.MetadataValue.json(
        [[r.range.topic, r.range.partition, r.range.start, r.range.end] for r in results])
    if not results:
        shared["note"] = "nothing was waiting: every published payment was already ingested"
    for key in (k for k in INGESTED_ASSETS if k in context.selected_asset_keys):
        yield dg.MaterializeResult(asset_key=key,
                                   metadata={**shared, **store_figures(context, key, hbase, postgres, backup)})


def commit_consumer_group(warn: Callable[[str], None], kafka: KafkaResource, results: list, timeout_s: float) -> bool:
    """After progress is recorded, the ingested offsets go to Kafka consumer group `payment-platform-ingestion`
    so Kafka's own tools (kafka-consumer-groups.sh, Kafka UI) show the lag. Postgres stays the source of truth:
    a failure here is handed to `warn`, never fatal."""
    ends: dict[tuple[str, int], int] = {}
    for result in results:
        key = (result.range.topic, result.range.partition)
        ends[key] = max(ends.get(key, 0), result.range.end)
    if not ends:
        return False
    try:
        for topic in {t for t, _ in ends}:
            with KafkaClient(kafka.bootstrap_servers, topic, timeout_s) as client:
                offsets = {p: end for (t, p), end in ends.items() if t == topic}
                bounded(lambda c=client, o=offsets: c.commit_group_offsets(CONSUMER_GROUP, o), timeout_s * 2,
                        "kafka consumer group commit")
        return True
    except Exception as error:  # noqa: BLE001 - informational for Kafka's tools; the ledger already holds progress
        warn(f"could not commit the ingested offsets to consumer group {CONSUMER_GROUP!r} "
             f"(progress is recorded in Postgres; only Kafka's view of the lag is stale): {error}")
        return False


def store_figures(context, key: dg.AssetKey, hbase: HBaseResource, postgres: PostgresResource,
                  backup: BackupResource) -> dict:
    """Where the asset lives and how many rows it holds (dagster/row_count; HBase has no cheap count, so its
    row count comes from the full reconciliation's observation instead)."""
    figures: dict = {}
    try:
        if key == asset_keys.HBASE_PAYMENTS:
            figures["dagster/uri"] = f"hbase-thrift://{hbase.host}:{hbase.port}/payments"
        elif key in (asset_keys.POSTGRES_PAYMENTS, asset_keys.QUARANTINE):
            ledger = postgres.client()
            try:
                count = ledger.count_payments if key == asset_keys.POSTGRES_PAYMENTS else ledger.count_quarantine
                figures["dagster/row_count"] = int(bounded(count, 10.0, "postgres count"))
            finally:
                ledger.close()
            figures["dagster/uri"] = catalog.store_uri(postgres.dsn)
        elif key == asset_keys.FAILED_PAYMENT_BACKUP:
            client = backup.client()
            try:
                stats = bounded(client.stats, 10.0, "backup stats")
            finally:
                client.close()
            figures.update({"dagster/row_count": int(stats["size"]), "backup_size": int(stats["size"]),
                            "backup_oldest_age_s": float(stats["oldest_age_s"] or 0.0)})
            figures["dagster/uri"] = catalog.store_uri(backup.mongo_uri, "/payments/failed_payments")
    except Exception as error:  # noqa: BLE001 - catalog figures never fail an ingestion that landed
        context.log.warning(f"could not read the catalog figures of {key.to_user_string()}: {error}")
    return figures


def _combined_metadata(results: list, topic: str) -> dict:
    """One range: its figures as they are. Several (ingest what waits now): summed, offsets of the first range."""
    if len(results) == 1:
        return results[0].as_metadata()
    figures = [r.as_metadata() for r in results]
    metadata = {"topic": topic, "partition": -1, "start_offset": -1, "end_offset": -1, "ranges": len(results)}
    for key, value in (figures[0] if figures else RangeResult(range=OffsetRange(topic, 0, 0, 0)).as_metadata()).items():
        if key in metadata:
            continue
        if isinstance(value, bool):
            metadata[key] = all(f[key] for f in figures)
        elif isinstance(value, (int, float)):
            metadata[key] = sum(f[key] for f in figures)
    seconds = metadata.get("seconds", 0)
    metadata["rate_msgs_per_s"] = round(metadata.get("messages", 0) / seconds, 1) if seconds else 0.0
    return metadata


ingest_range_job = dg.define_asset_job(
    INGEST_JOB_NAME,
    # the range's own checks (consistency, duplicates, rail validity) run in the same run, right after it lands
    selection=dg.AssetSelection.assets(*INGESTED_ASSETS).without_checks() | dg.AssetSelection.checks(*RANGE_CHECK_KEYS),
    description="Ingest one Kafka offset range (run config; none: every payment waiting now) into HBase, Postgres "
                "and Redis, then check that range (consistency, duplicates, rail validity).",
    # one step: running it in the run worker saves a second Python process per run (seconds of latency)
    executor_def=dg.in_process_executor,
    # a run whose worker died is marked failed by the sensor within a tick (defs.run_workers); max_runtime stays
    # as the last resort (a worker dying before it recorded its pid): canceled after 300 s, the range requested again
    tags={"dagster/max_retries": str(RUN_RETRIES), "dagster/retry_strategy": "ALL_STEPS",
          "dagster/max_runtime": "300"},
)
