"""The ingestion job for one range, executed in process against the real stack: metadata on the store
assets; a range that cannot be settled fails the run and leaves progress where it was."""
from __future__ import annotations

import socket
import uuid

import dagster as dg
import pytest

from payment_platform.defs import asset_keys
from payment_platform.defs.checks.checks import RANGE_CHECK_KEYS, ingested_range_checks
from payment_platform.defs.checks.settings import ChecksSettingsResource
from payment_platform.defs.ingestion.assets import ingest_range_job
from payment_platform.defs.ingestion.runs import range_run_config
from payment_platform.defs.ingestion_settings import IngestionSettingsResource
from payment_platform.defs.resources import BackupResource, HBaseResource, KafkaResource, PostgresResource, RedisResource
from payment_platform.generation.generator import generate
from payment_platform.stores import kafka
from payment_platform.stores.postgres import PostgresLedger

pytestmark = pytest.mark.stack


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resources(stack, topic, tmp_path, **overrides):
    ep = stack.endpoints
    base = {
        "kafka": KafkaResource(bootstrap_servers=ep.kafka, topic=topic),
        "hbase": HBaseResource(host=ep.hbase_host, port=ep.hbase_port, transport=ep.hbase_transport,
                               protocol=ep.hbase_protocol),
        "postgres": PostgresResource(dsn=ep.postgres),
        "backup": BackupResource(mongo_uri=ep.mongo, fallback_dir=str(tmp_path / "failed_payments")),
        "redis": RedisResource(url=ep.redis),
        "ingestion_settings": IngestionSettingsResource(chunk_size=7),
        "checks_settings": ChecksSettingsResource(settle_seconds=0),
    }
    base.update(overrides)
    return base


def run_range(topic: str, start: int | None, end: int | None, resource_defs: dict, **kwargs):
    """One range; start and end None: the job without config (Materialize in the UI), what waits now."""
    from payment_platform.defs.ingestion.assets import ingest_payments_range

    definitions = dg.Definitions(assets=[ingest_payments_range], asset_checks=[ingested_range_checks],
                                 jobs=[ingest_range_job], resources=resource_defs)
    run_config = range_run_config(topic, 0, start, end) if start is not None else {}
    instance = kwargs.pop("instance", None) or dg.DagsterInstance.ephemeral()
    return definitions.resolve_job_def(ingest_range_job.name).execute_in_process(
        run_config=run_config, instance=instance, **kwargs)


@pytest.fixture
def published(stack):
    topic = f"job-{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(stack.endpoints.kafka, topic, partitions=1)
    messages = list(generate(20, seed=uuid.uuid4().int % 2**31))  # new payments: none landed before
    with kafka.Publisher(stack.endpoints.kafka, topic) as publisher:
        assert publisher.publish(messages).acknowledged == 20
    return topic, messages


def test_a_range_run_materialises_the_store_assets_with_its_figures(stack, tmp_path, published):
    topic, messages = published
    result = run_range(topic, 0, 20, resources(stack, topic, tmp_path))
    assert result.success
    materialized = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert set(materialized) == {asset_keys.HBASE_PAYMENTS, asset_keys.POSTGRES_PAYMENTS,
                                 asset_keys.FAILED_PAYMENT_BACKUP, asset_keys.QUARANTINE}
    figures = materialized[asset_keys.POSTGRES_PAYMENTS]
    assert figures["messages"].value == 20
    assert figures["written_postgres"].value == 20 and figures["written_hbase"].value == 20
    assert "lag_before" not in figures and "lag_after" not in figures  # the sensor observes the lag
    assert figures["start_offset"].value == 0 and figures["end_offset"].value == 20
    assert PostgresLedger(stack.endpoints.postgres).read_progress(topic) == {0: 20}
    assert materialized[asset_keys.HBASE_PAYMENTS]["ingested_ranges"].value == [[topic, 0, 0, 20]]


def test_a_range_run_commits_its_offsets_to_the_ingestion_consumer_group(stack, tmp_path, published):
    from payment_platform.defs.ingestion.assets import CONSUMER_GROUP

    topic, _ = published
    assert run_range(topic, 0, 12, resources(stack, topic, tmp_path)).success
    with kafka.KafkaClient(stack.endpoints.kafka, topic) as client:
        assert client.group_offsets(CONSUMER_GROUP) == {0: 12}  # OffsetFetch, as kafka-consumer-groups.sh asks
        result = run_range(topic, 12, 20, resources(stack, topic, tmp_path))
        assert result.success
        [event] = [e for e in result.get_asset_materialization_events()
                   if e.asset_key == asset_keys.POSTGRES_PAYMENTS]
        assert event.materialization.metadata["consumer_group_committed"].value is True
        assert client.group_offsets(CONSUMER_GROUP) == {0: 20}
        assert client.commit_group_offsets(CONSUMER_GROUP, {0: 12}) == {}  # an older range never moves it back
        assert client.group_offsets(CONSUMER_GROUP) == {0: 20}
        end = client.end_offsets()[0]
    assert end - 20 == 0  # the group's lag: Kafka's tools see ingestion caught up


def test_a_consumer_group_commit_that_fails_is_logged_not_fatal(stack, tmp_path, published, monkeypatch):
    def refuse(self, group, offsets):
        raise kafka.KafkaUnavailable("the group coordinator is unreachable")

    monkeypatch.setattr(kafka.KafkaClient, "commit_group_offsets", refuse)
    topic, _ = published
    instance = dg.DagsterInstance.ephemeral()
    result = run_range(topic, 0, 20, resources(stack, topic, tmp_path), instance=instance)
    assert result.success
    assert PostgresLedger(stack.endpoints.postgres).read_progress(topic) == {0: 20}
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == asset_keys.POSTGRES_PAYMENTS]
    assert event.materialization.metadata["consumer_group_committed"].value is False
    assert any("could not commit the ingested offsets" in (e.user_message or "")
               for e in instance.all_logs(result.run_id))


def test_the_range_checks_evaluate_in_the_ingestion_run_on_that_range(stack, tmp_path, published):
    topic, _ = published
    result = run_range(topic, 0, 20, resources(stack, topic, tmp_path))
    evaluations = {(e.asset_key, e.check_name): e for e in
                   (ev.event_specific_data for ev in result.all_events
                    if ev.event_type_value == "ASSET_CHECK_EVALUATION")}
    assert set(evaluations) == {(k.asset_key, k.name) for k in RANGE_CHECK_KEYS}
    assert all(e.passed for e in evaluations.values()), {k: e.description for k, e in evaluations.items()}
    consistency = evaluations[(asset_keys.HBASE_PAYMENTS, "ingested_ranges_consistency")]
    assert consistency.metadata["ranges"].value == 1  # this run's range, not every range of the ledger
    assert consistency.metadata["expected_payments"].value == 20
    assert consistency.metadata["ranges_checked"].value == [f"{topic}[0] offsets 0-20"]


def test_the_job_without_config_ingests_what_waits_now(stack, tmp_path, published):
    topic, _ = published
    first = run_range(topic, None, None, resources(stack, topic, tmp_path))
    assert first.success
    figures = {e.asset_key: e.materialization.metadata for e in first.get_asset_materialization_events()}
    assert figures[asset_keys.POSTGRES_PAYMENTS]["messages"].value == 20
    assert figures[asset_keys.POSTGRES_PAYMENTS]["ingested_ranges"].value == [[topic, 0, 0, 20]]
    assert PostgresLedger(stack.endpoints.postgres).read_progress(topic) == {0: 20}
    again = run_range(topic, None, None, resources(stack, topic, tmp_path))  # nothing waits: says so, no change
    assert again.success
    [event] = [e for e in again.get_asset_materialization_events() if e.asset_key == asset_keys.POSTGRES_PAYMENTS]
    assert event.materialization.metadata["messages"].value == 0
    assert "nothing was waiting" in event.materialization.metadata["note"].value


def test_the_job_without_config_on_a_missing_topic_says_how_to_publish(stack, tmp_path):
    topic = f"absent-{uuid.uuid4().hex[:8]}"
    result = run_range(topic, None, None, resources(stack, topic, tmp_path), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "materialize generation/payment_batch" in str(failure.event_specific_data.error)


def test_a_partial_range_config_is_refused_naming_the_fields(stack, tmp_path, published):
    from payment_platform.defs.ingestion.assets import ingest_payments_range

    topic, _ = published
    definitions = dg.Definitions(assets=[ingest_payments_range], asset_checks=[ingested_range_checks],
                                 jobs=[ingest_range_job], resources=resources(stack, topic, tmp_path))
    result = definitions.resolve_job_def(ingest_range_job.name).execute_in_process(
        run_config={"ops": {"ingest_payments_range": {"config": {"topic": topic, "partition": 0}}}},
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "give topic, partition, start and end together" in str(failure.event_specific_data.error)


def test_a_range_that_cannot_be_settled_fails_the_run_and_progress_stays(stack, tmp_path, published):
    topic, _ = published
    broken = resources(stack, topic, tmp_path,
                       hbase=HBaseResource(host="127.0.0.1", port=dead_port(), transport="buffered", protocol="binary"),
                       backup=BackupResource(mongo_uri=f"mongodb://127.0.0.1:{dead_port()}/",
                                             fallback_dir="/proc/no-such-dir/failed_payments"))
    result = run_range(topic, 0, 20, broken, raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure and "IngestionError" in str(failure[0].event_specific_data.error)
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 2  # the op's RetryPolicy, before the run fails (then Dagster run retries)
    assert PostgresLedger(stack.endpoints.postgres).read_progress(topic).get(0, 0) == 0
