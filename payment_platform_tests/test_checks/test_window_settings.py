"""The valid date window has one source, the `ingestion_settings` resource: ingestion validates with it and the
date checks read it from there. A window an operator widened never makes the checks flag a payment ingestion
accepted; a malformed window setting is refused with its name, by ingestion and by the checks alike.

The stack test runs the real ingestion job and every check in process, on a private HBase gateway and MongoDB and
the session stack's Kafka, Postgres (a private schema) and Redis (a private prefix)."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from payment_platform.config import ConfigError
from payment_platform.defs.checks.checks import (
    ALL_CHECKS,
    RECENT_DAYS_CONSISTENCY,
    consistency_checks_job,
    recent_days_consistency,
)
from payment_platform.defs.checks.settings import ChecksSettingsResource
from payment_platform.defs.ingestion.assets import ingest_payments_range, ingest_range_job
from payment_platform.defs.ingestion.runs import range_run_config
from payment_platform.defs.ingestion_settings import IngestionSettingsResource
from payment_platform.defs.resources import BackupResource, HBaseResource, KafkaResource, PostgresResource
from payment_platform.domain.validation import DEFAULT_WINDOW
from payment_platform.stores import kafka

from ..test_healing.conftest import instance, platform, private_hbase, private_mongo  # noqa: F401 - fixtures
from ..test_loader.conftest import Outgoing
from ..test_stores.payments import payment_doc, raw

WIDER = "1990-01-01T00:00:00Z"  # the default window starts at 2000-01-01


# -- the settings, without a stack ----------------------------------------------------------------------------

def test_the_defaults_are_the_domain_window():
    window = IngestionSettingsResource().validity_window()
    assert window == DEFAULT_WINDOW


def test_a_configured_window_is_read_as_written():
    window = IngestionSettingsResource(earliest_created_at=WIDER, created_at_clock_skew_seconds=3600,
                                       max_value_date_days=30).validity_window()
    assert window.earliest_created_at == datetime(1990, 1, 1, tzinfo=timezone.utc)
    assert window.max_clock_skew == timedelta(hours=1) and window.max_value_date_days == 30


@pytest.mark.parametrize("setting,value,words", [
    ("earliest_created_at", "last tuesday", "ISO 8601"),
    ("earliest_created_at", "1990-01-01T00:00:00", "time zone"),  # naive: ambiguous, refused
    ("earliest_created_at", "", "ISO 8601"),
    ("created_at_clock_skew_seconds", -1.0, "between 0"),
    ("created_at_clock_skew_seconds", math.nan, "between 0"),
    ("created_at_clock_skew_seconds", math.inf, "between 0"),
    ("max_value_date_days", -5, "between 0"),
    ("max_value_date_days", 10**9, "between 0"),
])
def test_a_malformed_window_setting_is_refused_with_its_name(setting, value, words):
    with pytest.raises(ConfigError) as caught:
        IngestionSettingsResource(**{setting: value}).validity_window()
    assert caught.value.setting == f"ingestion_settings.{setting}"
    assert words in str(caught.value) and str(caught.value).startswith(f"ingestion_settings.{setting}:")


def test_the_date_check_refuses_a_malformed_window_naming_the_setting_before_reading_a_store():
    """Nothing listens on these ports: the check must stop at the setting, not at a connection error."""
    definitions = dg.Definitions(asset_checks=[recent_days_consistency], resources={
        "hbase": HBaseResource(host="127.0.0.1", port=1),
        "postgres": PostgresResource(dsn="postgresql://x@127.0.0.1:1/x"),
        "backup": BackupResource(mongo_uri="mongodb://127.0.0.1:1", fallback_dir="/nonexistent"),
        "kafka": KafkaResource(bootstrap_servers="127.0.0.1:1", topic="payments"),
        "checks_settings": ChecksSettingsResource(),
        "ingestion_settings": IngestionSettingsResource(earliest_created_at="1990-01-01")})
    job = definitions.resolve_implicit_global_asset_job_def()
    with dg.instance_for_test() as test_instance:
        result = job.execute_in_process(instance=test_instance, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    error, messages = failure.step_failure_data.error, []
    while error is not None:  # Dagster wraps what the check raised: its cause holds the ConfigError
        messages.append(error.message)
        error = error.cause
    message = " ".join(messages)
    assert "ConfigError" in message and "ingestion_settings.earliest_created_at" in message and "time zone" in message


# -- ingestion and the checks, one window, the real stack --------------------------------------------------------

def definitions(platform, ingestion_settings: IngestionSettingsResource) -> dg.Definitions:  # noqa: F811
    return dg.Definitions(assets=[ingest_payments_range], asset_checks=ALL_CHECKS,
                          jobs=[ingest_range_job, consistency_checks_job],
                          resources={**platform.resources(), "ingestion_settings": ingestion_settings})


def run_checks(platform, instance, ingestion_settings) -> dict:  # noqa: F811
    job = definitions(platform, ingestion_settings).resolve_job_def(consistency_checks_job.name)
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    return {("/".join(e.asset_key.path), e.check_name): e for e in result.get_asset_check_evaluations()}


@pytest.mark.stack
def test_a_widened_window_is_shared_by_ingestion_and_the_checks(platform, instance):  # noqa: F811
    docs = [payment_doc(i, platform.namespace) for i in range(40)]
    docs[10]["created_at"], docs[10]["value_date"] = "1995-06-01T12:00:00.000000Z", "1995-06-01"  # inside WIDER only
    docs[20]["created_at"], docs[20]["value_date"] = "1985-06-01T12:00:00.000000Z", "1985-06-01"  # outside both
    with kafka.Publisher(platform.stack.endpoints.kafka, platform.topic) as publisher:
        for doc in docs:
            publisher.send(Outgoing(raw(doc)))
        first, end = publisher.flush().offsets[0]
    widened = IngestionSettingsResource(earliest_created_at=WIDER)

    ingested = definitions(platform, widened).resolve_job_def(ingest_range_job.name).execute_in_process(
        run_config=range_run_config(platform.topic, 0, first, end), instance=instance)

    assert ingested.success
    ids = [d["payment_id"] for d in docs]
    landed = set(ids) - {ids[20]}
    assert platform.postgres().existing_ids(ids) == landed and platform.hbase().existing_ids(ids) == landed
    [quarantined] = platform.postgres().quarantined()
    assert quarantined["payment_id"] == ids[20] and quarantined["field"] == "created_at"
    assert "1990-01-01" in quarantined["reason"]

    evaluations = run_checks(platform, instance, widened)
    failed = {key: e.description for key, e in evaluations.items() if not e.passed}
    assert not failed, failed
    recent = evaluations[("postgres/payments", RECENT_DAYS_CONSISTENCY)]
    assert recent.metadata["out_of_window_count"].value == 0
    assert recent.metadata["valid_window"].value.startswith("[1990-01-01")

    # The same stores judged with the default window: the 1995 payment is the finding. So the check above
    # passed because it read the configured window, not because it cannot see the payment.
    default = run_checks(platform, instance, IngestionSettingsResource())[("postgres/payments", RECENT_DAYS_CONSISTENCY)]
    assert not default.passed and default.severity.value == "WARN"
    assert default.metadata["out_of_window_count"].value == 1 and ids[10] in default.description
