"""The Dagster generation room: the batch asset against the real broker, the topic lineage, the schedule."""
import json
import uuid
from datetime import datetime, timezone

import dagster as dg
import pytest

from payment_platform.defs.asset_keys import GENERATED_BATCH, PAYMENTS_TOPIC
from payment_platform.defs.generation.assets import PaymentBatchConfig, batch_settings, payment_batch, payments_topic
from payment_platform.defs.generation.schedules import generate_payments_every_minute, tick_run_config
from payment_platform.defs.resources import KafkaResource
from payment_platform.generation.generator import generate
from payment_platform.stores import kafka

TICK = datetime(2026, 11, 24, 7, 0, tzinfo=timezone.utc)


def materialize(bootstrap: str, topic: str, run_config: dict) -> dg.ExecuteInProcessResult:
    return dg.materialize([payment_batch, payments_topic], run_config=run_config, raise_on_error=False,
                          resources={"kafka": KafkaResource(bootstrap_servers=bootstrap, topic=topic)})


def topic_values(bootstrap: str, topic: str) -> list[bytes]:
    values = []
    for partition, end in kafka.end_offsets(bootstrap, topic).items():
        values += [m.value for chunk in kafka.read_range(bootstrap, topic, partition, 0, end) for m in chunk]
    return values


def test_lineage_runs_from_the_batch_to_the_topic():
    from payment_platform.definitions import defs  # the whole code location, as the UI shows it

    graph = defs.resolve_asset_graph()
    assert graph.get(PAYMENTS_TOPIC).parent_keys == {GENERATED_BATCH}


def test_schedule_ticks_every_minute_seeded_by_the_tick():
    context = dg.build_schedule_context(scheduled_execution_time=TICK)
    request = generate_payments_every_minute(context)
    assert request.run_key == "generate:2026-11-24T07:00:00+00:00"
    assert request.run_config == tick_run_config(TICK)
    config = request.run_config["ops"]["generation__payment_batch"]["config"]
    assert config["seed"] == int(TICK.timestamp()) and config["start"] == TICK.isoformat()
    assert generate_payments_every_minute.cron_schedule == "* * * * *"
    assert generate_payments_every_minute(context).run_config == request.run_config  # same tick, same batch


@pytest.mark.stack
def test_a_scheduled_batch_publishes_exactly_its_payments_with_metadata(stack):
    topic = f"test-batch-{uuid.uuid4().hex[:8]}"
    bootstrap = stack.endpoints.kafka
    run_config = tick_run_config(TICK, count=400)
    run_config["ops"]["generation__payment_batch"]["config"]["bad_fraction"] = 0.05
    result = materialize(bootstrap, topic, run_config)
    assert result.success
    metadata = {k: v.value for k, v in result.asset_materializations_for_node("generation__payment_batch")[0]
                .metadata.items()}
    assert metadata["count"] == metadata["published"] == 400
    seed, settings = batch_settings(PaymentBatchConfig(**run_config["ops"]["generation__payment_batch"]["config"]),
                                    "any-run", datetime.now(timezone.utc))
    assert seed == int(TICK.timestamp()) and settings.start == TICK and settings.bad_fraction == 0.05
    expected = list(generate(400, seed, settings))
    stamps = [json.loads(m.value)["created_at"] for m in expected if m.defect is None]
    assert TICK.isoformat()[:16] <= min(stamps) and max(stamps) < "2026-11-24T07:05"  # about the tick's minute
    assert sorted(topic_values(bootstrap, topic)) == sorted(m.value for m in expected)
    good = [m for m in expected if not m.defect]
    assert metadata["bad_records"] == 400 - len(good)
    assert sum(metadata[f"count_{rail}"] for rail in ("ACH", "WIRE", "RTP", "SEPA", "CARD", "DIRECT_DEBIT", "CHECK")) \
        == len(good)
    assert sum(metadata["counts_by_rail_currency"].values()) == len(good)
    ach_sum = sum(float(m.amount) for m in good if m.payment_type == "ACH")
    assert float(metadata["sums_by_rail_currency"]["ACH/USD"]) == pytest.approx(ach_sum)
    assert sum(end - first for first, end in metadata["offsets_written"].values()) == 400
    assert metadata["rate_per_s"] > 0 and metadata["seed"] == int(TICK.timestamp())

    rerun = materialize(bootstrap, topic, run_config)  # re-running the tick: the same payments again
    values = topic_values(bootstrap, topic)
    assert rerun.success and len(values) == 800 and len(set(values)) == len(set(m.value for m in expected))


def test_an_unreachable_broker_fails_the_run_saying_nothing_was_acknowledged():
    result = materialize("127.0.0.1:9", "t", tick_run_config(TICK, count=10))
    assert not result.success
    failure = result.failure_data_for_node("generation__payment_batch")
    assert "0 payments acknowledged" in failure.error.message or \
        "0 payments acknowledged" in str(failure.user_failure_data.description)
