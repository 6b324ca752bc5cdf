"""The run coordinator's limits come from the scaling knobs, in a dagster.yaml Dagster accepts."""
import json
import shutil
import subprocess
import sys

import pytest
import yaml
from payment_platform_tests.dagster_internals import validate_config
from dagster import QueuedRunCoordinator

from payment_platform.config import ConfigError
from payment_platform.defs.ingestion.sensors import run_request
from devstack.stack.dagster_process import PROJECT_ROOT, prepare_dagster_home
from payment_platform.ingestion.planner import PlannedLease, PlannerSettings
from payment_platform.scaling.run_limits import PARTITION_TAG, apply_run_limits


def _coordinator_config(path):
    return yaml.safe_load(path.read_text())["run_coordinator"]["config"]


def test_project_dagster_yaml_limits_a_lease_and_its_successor_per_partition_and_is_valid():
    config = _coordinator_config(PROJECT_ROOT / "dagster.yaml")
    assert validate_config(QueuedRunCoordinator.config_type(), config).success
    limits = config["tag_concurrency_limits"]
    assert {"key": PARTITION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 2} in limits
    assert {"key": PARTITION_TAG, "limit": 6} in limits


def test_knobs_are_written_into_dagster_home_and_other_settings_kept(tmp_path):
    home = prepare_dagster_home(tmp_path / "home", env={"INGESTION_MAX_RANGES_IN_FLIGHT": "6",
                                                        "DAGSTER_MAX_CONCURRENT_RUNS": "9"})
    config = _coordinator_config(home / "dagster.yaml")
    assert validate_config(QueuedRunCoordinator.config_type(), config).success
    assert config["max_concurrent_runs"] == 9 and config["dequeue_interval_seconds"] == 1
    assert {"key": PARTITION_TAG, "limit": 12} in config["tag_concurrency_limits"]
    assert {"key": PARTITION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 2} in config[
        "tag_concurrency_limits"]
    settings = yaml.safe_load((home / "dagster.yaml").read_text())
    assert settings["run_retries"]["enabled"] and settings["storage"]["postgres"]


def test_a_bad_knob_stops_the_preparation_naming_it(tmp_path):
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with pytest.raises(ConfigError, match="DAGSTER_MAX_CONCURRENT_RUNS"):
        apply_run_limits(tmp_path / "dagster.yaml", {"DAGSTER_MAX_CONCURRENT_RUNS": "many"})


def test_every_ingestion_run_carries_the_partition_tag_the_limits_use():
    request = run_request(PlannedLease("payments", 4, 100, "ingest:payments:4:lease:1"), PlannerSettings(), 120.0)
    assert request.tags[PARTITION_TAG] == "4"


def test_scaling_command_prints_knobs_limits_and_pre_split_commands():
    env = {"HBASE_SALT_BUCKETS": "4", "INGESTION_MAX_RANGES_IN_FLIGHT": "2", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "payment_platform.cli", "scaling", "--json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["knobs"]["HBASE_SALT_BUCKETS"] == "4"
    assert {"key": PARTITION_TAG, "limit": 4} in shown["run_coordinator"]["tag_concurrency_limits"]
    assert "SPLITS => ['01_', '02_', '03_']" in shown["hbase_shell"][0]
    bad = subprocess.run([sys.executable, "-m", "payment_platform.cli", "scaling"], capture_output=True, text=True,
                         env={**env, "INGESTION_BATCH_SIZE": "0"}, timeout=60)
    assert bad.returncode == 2 and "INGESTION_BATCH_SIZE: must be between 1 and" in bad.stderr
