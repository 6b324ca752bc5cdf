"""The sensor's planner takes the micro-batch size and the partitions leased at once from the scaling knobs."""
import pytest

from payment_platform.config import ConfigError
from payment_platform.defs.ingestion_settings import IngestionSettingsResource
from payment_platform.ingestion import planner


def test_knobs_apply_where_the_resource_leaves_them_unset(monkeypatch):
    monkeypatch.setenv("INGESTION_BATCH_SIZE", "300")
    monkeypatch.setenv("INGESTION_MAX_RANGES_IN_FLIGHT", "6")
    settings = IngestionSettingsResource().planner()
    assert (settings.max_batch_size, settings.max_concurrent_ranges) == (300, 6)
    assert settings.min_batch_size == 300  # a micro-batch below the default minimum is planned as soon as it is full
    explicit = IngestionSettingsResource(max_batch_size=50, min_batch_size=10, max_concurrent_ranges=2).planner()
    assert (explicit.max_batch_size, explicit.min_batch_size, explicit.max_concurrent_ranges) == (50, 10, 2)


def test_defaults_without_knobs(monkeypatch):
    monkeypatch.delenv("INGESTION_BATCH_SIZE", raising=False)
    monkeypatch.delenv("INGESTION_MAX_RANGES_IN_FLIGHT", raising=False)
    assert IngestionSettingsResource().planner() == planner.PlannerSettings()


def test_leased_partitions_follow_the_knobs(monkeypatch):
    monkeypatch.setenv("INGESTION_MAX_RANGES_IN_FLIGHT", "2")
    result = planner.plan(topic="t", end_offsets={0: 5000, 1: 5000, 2: 5000}, progress={}, cursor=planner.CursorState(),
                          run_infos={}, now=0.0, settings=IngestionSettingsResource().planner())
    assert [(r.partition, r.start_offset) for r in result.leases] == [(0, 0), (1, 0)]


def test_a_bad_knob_is_named(monkeypatch):
    monkeypatch.setenv("INGESTION_MAX_RANGES_IN_FLIGHT", "none")
    with pytest.raises(ConfigError, match="INGESTION_MAX_RANGES_IN_FLIGHT: not an integer"):
        IngestionSettingsResource().planner()
