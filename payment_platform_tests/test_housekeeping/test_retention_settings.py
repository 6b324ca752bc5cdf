"""Tick retention is set, valid and the same locally, in infra/ and in the Helm values; the retention settings
are read and checked like every other setting."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from payment_platform.config import ConfigError, Retention, retention_from_env

REPO = Path(__file__).resolve().parents[2]
FILES = (REPO / "dagster.yaml", REPO / "infra" / "dagster.yaml")


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_dagster_accepts_the_tick_retention(path, tmp_path):
    from payment_platform_tests.dagster_internals import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text(path.read_text())
    config, _ = dagster_instance_config(str(tmp_path))  # raises on a key Dagster does not know
    sensor = config["retention"]["sensor"]["purge_after_days"]
    assert sensor["skipped"] == sensor["success"] == 1 and sensor["failure"] >= sensor["success"]


def test_the_three_places_keep_ticks_equally_long():
    local, deployed = (_load(path)["retention"] for path in FILES)
    helm = _load(REPO / "infra" / "helm" / "dagster-values.yaml")["retention"]
    assert local == deployed
    assert helm["enabled"]
    for kind in ("sensor", "schedule"):
        helm_days = {k: v for k, v in helm[kind]["purgeAfterDays"].items() if k != "started"}
        assert helm_days == local[kind]["purge_after_days"], kind


def test_retention_settings_default_and_refuse_bad_values():
    assert retention_from_env({}) == Retention() == retention_from_env({"REDIS_LANDED_TTL_S": " "})
    assert retention_from_env({"REDIS_LANDED_TTL_S": "120", "HOUSEKEEPING_KEEP_RUNS_HOURS": "0.5"}) == Retention(
        redis_landed_ttl_s=120, keep_runs_hours=0.5)
    with pytest.raises(ConfigError, match="REDIS_LANDED_TTL_S"):
        retention_from_env({"REDIS_LANDED_TTL_S": "0"})
    with pytest.raises(ConfigError, match="HOUSEKEEPING_KEEP_FAILED_RUNS_HOURS: not a number of hours"):
        retention_from_env({"HOUSEKEEPING_KEEP_FAILED_RUNS_HOURS": "a week"})


def test_the_redis_resource_takes_its_landed_window_from_the_setting(monkeypatch):
    from payment_platform.defs.resources import RedisResource

    monkeypatch.delenv("REDIS_LANDED_TTL_S", raising=False)
    assert RedisResource(url="redis://127.0.0.1:1/0").client().landed_ttl_s == Retention().redis_landed_ttl_s == 900
    monkeypatch.setenv("REDIS_LANDED_TTL_S", "300")
    assert RedisResource(url="redis://127.0.0.1:1/0").client().landed_ttl_s == 300
    assert RedisResource(url="redis://127.0.0.1:1/0", landed_ttl_s=60).client().landed_ttl_s == 60
