"""The run coordinator's limits in a DAGSTER_HOME's dagster.yaml, from the scaling knobs (config.Scaling).

Dagster reads `max_concurrent_runs` and `tag_concurrency_limits` from dagster.yaml only, so the knobs are
written into the copy of dagster.yaml that `payment-platform up` and the daemon harness put in DAGSTER_HOME.
A Kubernetes deployment sets the same values in the Helm chart's `dagsterDaemon.runCoordinator.config`
(`payment-platform scaling` prints them).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from payment_platform.config import Scaling, scaling_from_env

PARTITION_TAG = "payment_platform/partition"  # set on every ingestion run by the sensor (defs/ingestion/sensors.py)
CHECKS_TAG = "payment_platform/checks"  # set on every run of store checks (defs/checks/checks.py CHECKS_TAG)


def run_coordinator_limits(scaling: Scaling) -> dict:
    """QueuedRunCoordinator config: all runs bounded; ingestion runs at most two per partition (a lease and its
    successor, which waits for the lease) and at most twice `max_ranges_in_flight` together (the planner keeps
    the same bounds; these hold even if it did not); runs of store checks one at a time (a slow one is never
    joined by the next scheduled one)."""
    return {
        "max_concurrent_runs": scaling.max_concurrent_runs,
        "tag_concurrency_limits": [
            {"key": PARTITION_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 2},
            {"key": PARTITION_TAG, "limit": 2 * scaling.max_ranges_in_flight},
            {"key": CHECKS_TAG, "limit": 1},  # one run of store checks at a time: they yield to ingestion
        ],
    }


def apply_run_limits(dagster_yaml: Path, env: Mapping[str, str] | None = None) -> Scaling:
    """Rewrite the run coordinator's limits of a dagster.yaml (a QueuedRunCoordinator) from the environment's
    scaling knobs; raises config.ConfigError naming a malformed one. Other settings are kept."""
    scaling = scaling_from_env(env)
    import yaml  # here, not at import: every CLI command imports this module, few write dagster.yaml

    settings = yaml.safe_load(dagster_yaml.read_text()) or {}
    coordinator = settings.setdefault("run_coordinator", {
        "module": "dagster", "class": "QueuedRunCoordinator", "config": {}})
    if coordinator.get("class") != "QueuedRunCoordinator":
        return scaling  # another coordinator has no such limits: leave it as the deployment wrote it
    config = coordinator.get("config") or {}
    config.update(run_coordinator_limits(scaling))
    coordinator["config"] = config
    dagster_yaml.write_text("# written from dagster.yaml and the scaling knobs (payment_platform/scaling/run_limits.py)\n"
                            + yaml.safe_dump(settings, sort_keys=False))
    return scaling
