"""The generated batch (materialized: generate + publish) and the Kafka topic it lands in (an asset
downstream of it, so the lineage reads generation -> topic -> stores)."""
import hashlib
from datetime import datetime, timezone

import dagster as dg
from pydantic import Field

from payment_platform.defs.asset_keys import GENERATED_BATCH, PAYMENTS_TOPIC
from payment_platform.defs.catalog import OWNERS
from payment_platform.defs.resources import KafkaResource
from payment_platform.domain.schema import RAILS
from payment_platform.generation.generator import arrival_weight, generate
from payment_platform.generation.settings import GenerationSettings
from payment_platform.generation.tally import BatchTally
from payment_platform.stores.kafka import KafkaUnavailable, PublishError

DEFAULT_BATCH_SIZE = 1000
TICK_SECONDS = 60.0


class PaymentBatchConfig(dg.Config):
    """One batch; the schedule fills `seed` and `start` from its tick, so a re-run tick is reproducible."""

    count: int = Field(default=DEFAULT_BATCH_SIZE, description="payments in the batch")
    seed: int | None = Field(default=None, description="random seed (default: derived from the run id)")
    start: str | None = Field(default=None, description="ISO 8601 timestamp anchor (default: now, to the minute)")
    bad_fraction: float = Field(default=0.0, description="share of deliberately bad, labelled records")
    rails: list[str] = Field(default_factory=lambda: list(RAILS), description="rails to generate")
    key_strategy: str = Field(default="payment_id", description="payment_id, originator, payment_type or none")


def batch_settings(config: PaymentBatchConfig, run_id: str, now: datetime) -> tuple[int, GenerationSettings]:
    """The seed and settings of a batch: explicit values win; otherwise seed from the run id, start from now."""
    if config.count <= 0:
        raise dg.Failure(f"count: must be a positive number of payments, got {config.count}")
    seed = config.seed if config.seed is not None else int(hashlib.sha256(run_id.encode()).hexdigest()[:12], 16)
    if config.start:
        start = datetime.fromisoformat(config.start.replace("Z", "+00:00"))
    else:
        start = now.replace(second=0, microsecond=0)
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    # Arrivals spread over about a minute after `start` (one schedule tick), whatever the hour.
    peak_rate = config.count / (TICK_SECONDS * arrival_weight(start))
    settings = GenerationSettings(bad_fraction=config.bad_fraction, rails=tuple(config.rails), start=start,
                                  key_strategy=config.key_strategy, peak_rate_per_s=peak_rate)
    return seed, settings


def tally_metadata(tally: BatchTally) -> dict:
    """The tally's figures as Dagster metadata (numbers plotted over time, tables as JSON)."""
    return {key: dg.MetadataValue.json(value) if isinstance(value, dict) else dg.MetadataValue.int(value)
            for key, value in tally.figures().items()}


@dg.asset(key=GENERATED_BATCH, group_name="generation", kinds={"python", "kafka"}, owners=OWNERS,
          description="A batch of realistic B2B payments, generated and published to the payments topic.")
def payment_batch(context: dg.AssetExecutionContext, config: PaymentBatchConfig,
                  kafka: KafkaResource) -> dg.MaterializeResult:
    seed, settings = batch_settings(config, context.run.run_id, datetime.now(timezone.utc))
    tally = BatchTally()
    try:
        with kafka.client() as client, client.publisher() as publisher:
            client.ensure_topic()
            result = publisher.publish(tally.watch(generate(config.count, seed, settings)))
    except (PublishError, KafkaUnavailable) as error:
        raise dg.Failure(description=f"publishing the batch failed: {error}",
                         metadata={"acknowledged": getattr(error, "acknowledged", 0), "seed": seed}) from None
    context.log.info(f"published {result.acknowledged} payments to {kafka.topic} at {result.rate:,.0f}/s")
    return dg.MaterializeResult(metadata={
        **tally_metadata(tally),
        "published": dg.MetadataValue.int(result.acknowledged),
        "offsets_written": dg.MetadataValue.json({str(p): list(span) for p, span in sorted(result.offsets.items())}),
        "messages_per_partition": dg.MetadataValue.json({str(p): n for p, n in result.counts_by_partition().items()}),
        "rate_per_s": dg.MetadataValue.float(round(result.rate, 1)),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "seed": dg.MetadataValue.int(seed),
        "start": dg.MetadataValue.text(settings.start.isoformat()),
        "topic": dg.MetadataValue.text(kafka.topic),
    })


payments_topic = dg.AssetSpec(
    PAYMENTS_TOPIC, deps=[GENERATED_BATCH], group_name="kafka", kinds={"kafka"}, owners=OWNERS,
    description="The Kafka topic of payment messages (schema v1, JSON). Fed by the scheduled batches and by "
                "`payment-platform produce`; read by the ingestion sensor.")

generate_payments_job = dg.define_asset_job("generate_payments_job", selection=[GENERATED_BATCH],
                                            description="Generate one batch of payments and publish it to Kafka.")
