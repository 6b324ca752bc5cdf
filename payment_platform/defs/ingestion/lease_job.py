"""The lease run: one Dagster run ingests one partition continuously for a bounded lease (ingestion/lease.py).

Every landed micro-batch is reported as it lands: a materialization of `hbase/payments` and `postgres/payments`
(and of the backup or quarantine when the batch put payments there) with its offset range and counts, and the
range checks of what landed (consistency, duplicates, rail validity), evaluated every `range_check_seconds` over
the batches landed since, so each batch is checked; the landed offsets then go to the Kafka consumer group.
The sensor (sensors.py) keeps a lease running per partition with work and starts the next one before the
current one ends; the successor waits for the lease and carries on from the recorded progress.
"""

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator

import dagster as dg

from payment_platform.defs import asset_keys
from payment_platform.defs.checks.checks import lease_range_verdicts, range_check_evaluations
from payment_platform.defs.ingestion.assets import commit_consumer_group
from payment_platform.defs.checks.settings import ChecksSettingsResource
from payment_platform.defs.ingestion.runs import LEASE_JOB_NAME, LEASE_OP_NAME
from payment_platform.defs.ingestion_settings import IngestionSettingsResource
from payment_platform.defs.resources import BackupResource, HBaseResource, KafkaResource, PostgresResource, RedisResource
from payment_platform.defs.run_workers import record_worker
from payment_platform.ingestion.lease import BatchFailed, LandedBatch, LeaseEnd, LeaseRunner
from payment_platform.ingestion.loader import Ingestor
from payment_platform.stores.postgres import PartitionLease


class LeaseConfig(dg.Config):
    """The partition this run ingests (the sensor sets the topic; from the Launchpad, the `kafka` resource's topic
    is the default). `start_offset` is informational (the progress when the sensor requested the lease): the run
    always carries on from the progress recorded when it takes the lease. A lease of a partition another run
    holds waits for it (up to `lease_acquire_seconds`), then ends having touched nothing."""

    topic: str | None = None
    partition: int
    start_offset: int = -1


def batch_materializations(batch: LandedBatch) -> Iterator[dg.AssetMaterialization]:
    result = batch.result
    metadata = {**batch.as_metadata(), "ingested_ranges": dg.MetadataValue.json(
        [[result.range.topic, result.range.partition, result.range.start, result.range.end]])}
    description = f"landed {result.range} ({result.messages} messages)"
    yield dg.AssetMaterialization(asset_keys.HBASE_PAYMENTS, description=description, metadata=metadata)
    yield dg.AssetMaterialization(asset_keys.POSTGRES_PAYMENTS, description=description, metadata=metadata)
    if sum(result.backed_up.values()):
        yield dg.AssetMaterialization(asset_keys.FAILED_PAYMENT_BACKUP, description=description, metadata=metadata)
    if result.quarantined:
        yield dg.AssetMaterialization(asset_keys.QUARANTINE, description=description, metadata=metadata)


def sticky(evaluation: dg.AssetCheckEvaluation, failed_before: dict) -> dg.AssetCheckEvaluation:
    """A range check evaluated again later in the same lease keeps an earlier failure: Dagster keeps one execution
    per check and run (the latest), so a passing later batch must not hide a failed earlier one."""
    key = evaluation.asset_check_key
    if not evaluation.passed:
        failed_before.setdefault(key, evaluation.description or "failed")
        return evaluation
    if key not in failed_before:
        return evaluation
    return dg.AssetCheckEvaluation(
        asset_key=evaluation.asset_key, check_name=evaluation.check_name, passed=False,
        metadata={**evaluation.metadata, "failed_earlier_in_this_lease": failed_before[key]},
        severity=evaluation.severity,
        description=f"{evaluation.description}; FAILED earlier in this lease: {failed_before[key]}")


@dataclass
class CheckedBatches:
    batches: list[LandedBatch]
    evaluations: list[dg.AssetCheckEvaluation]
    warnings: list[str]
    seconds: float


@dataclass
class BackgroundChecks:
    """The range checks (and the consumer-group commit) of landed batches on one worker thread: at most one round
    at a time, so while a round runs, the batches landing meanwhile gather for the next. `work(batches)` returns
    (evaluations, warnings)."""

    work: Callable[[list[LandedBatch]], tuple[list[dg.AssetCheckEvaluation], list[str]]]
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "lease-range-checks"))
    _running: Future | None = None

    @property
    def busy(self) -> bool:
        return self._running is not None and not self._running.done()

    def start(self, batches: list[LandedBatch]) -> None:
        assert not self.busy, "one round of checks at a time"

        def round_() -> CheckedBatches:
            began = time.monotonic()
            evaluations, warnings = self.work(batches)
            return CheckedBatches(batches, evaluations, warnings, time.monotonic() - began)

        self._running = self._pool.submit(round_)

    def finished(self, wait: bool = False) -> CheckedBatches | None:
        """The last round's outcome once it is done (waiting for it with `wait`); None while it runs or if none."""
        if self._running is None or not (wait or self._running.done()):
            return None
        running, self._running = self._running, None
        return running.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@dg.op(name=LEASE_OP_NAME, out=dg.Out(dg.Nothing),
       description="Ingest one Kafka partition continuously for a lease: every micro-batch lands in HBase, Postgres "
                   "and Redis with exactly-once effects and is reported as a materialization with its checks.")
def ingest_partition_lease(context: dg.OpExecutionContext, config: LeaseConfig, kafka: KafkaResource,
                           hbase: HBaseResource, postgres: PostgresResource, backup: BackupResource,
                           redis: RedisResource, ingestion_settings: IngestionSettingsResource,
                           checks_settings: ChecksSettingsResource):
    record_worker(context)  # judgeable from its first moment (defs.run_workers)
    topic = config.topic or kafka.topic
    if config.partition < 0:
        raise dg.Failure(f"ingest_partition_lease config: partition must be >= 0, got {config.partition}",
                         allow_retries=False)
    settings = ingestion_settings.lease()
    ingestor = Ingestor.from_resources(kafka, hbase, postgres, backup, redis,
                                       window=ingestion_settings.validity_window())
    runner = LeaseRunner(ingestor, kafka.bootstrap_servers, topic, config.partition,
                         PartitionLease(postgres.dsn, topic, config.partition), settings, log=context.log)

    def check_and_commit(batches: list[LandedBatch]) -> tuple[list[dg.AssetCheckEvaluation], list[str]]:
        by_key, warning = lease_range_verdicts([(b.result.range, b.messages) for b in batches], hbase, postgres,
                                               backup, kafka)
        # Dagster's log calls stay on the thread that runs the op: warnings are kept for it to log
        warnings = [warning] if warning else []
        # Kafka's own tools (kafka-consumer-groups.sh, Kafka UI) see the lag; Postgres stays the truth
        commit_consumer_group(warnings.append, kafka, [b.result for b in batches], ingestion_settings.io_timeout_seconds)
        return range_check_evaluations(by_key), warnings

    checks = BackgroundChecks(check_and_commit)
    unchecked: list[LandedBatch] = []
    failed_before: dict[dg.AssetCheckKey, str] = {}
    last_check = time.monotonic()

    def report(done: CheckedBatches | None) -> Iterator[dg.AssetCheckEvaluation]:
        if done is None:
            return
        for message in done.warnings:
            context.log.warning(message)
        for evaluation in done.evaluations:
            yield sticky(evaluation, failed_before)
        for batch in done.batches:
            batch.messages = []  # checked: the messages are not needed any more

    try:
        for event in runner.run():
            if isinstance(event, LandedBatch):
                yield from batch_materializations(event)
                unchecked.append(event)
            elif isinstance(event, BatchFailed):
                context.log.warning(f"{topic}[{config.partition}] batch at offset {event.offset} failed "
                                    f"({event.failures} in a row), trying again: {event.error}")
            elif isinstance(event, LeaseEnd):
                context.log.info(f"lease of {topic}[{config.partition}] ended: {event.reason}; "
                                 f"{event.batches} batches, {event.messages} messages")
            yield from report(checks.finished(wait=isinstance(event, LeaseEnd)))
            if unchecked and not checks.busy and (isinstance(event, LeaseEnd) or
                                                  time.monotonic() - last_check >= ingestion_settings.range_check_seconds):
                checks.start(unchecked)
                unchecked, last_check = [], time.monotonic()
                if isinstance(event, LeaseEnd):
                    yield from report(checks.finished(wait=True))
    finally:
        checks.close()
        ingestor.close()
    yield dg.Output(None)


@dg.job(name=LEASE_JOB_NAME, executor_def=dg.in_process_executor,
        description="Ingest one Kafka partition continuously for a bounded lease (the ingestion sensor launches one "
                    "per partition with work, and the next one before it ends); every micro-batch is a "
                    "materialization of the stores' assets, with its range checks.",
        # a failed lease is followed by a new one from the sensor (from the recorded progress), not a run retry
        tags={"dagster/max_retries": "0"})
def ingest_lease_job():
    ingest_partition_lease()
