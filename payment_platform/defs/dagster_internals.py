"""Every private Dagster API the product uses, in one place (Dagster offers no public one for these).

A Dagster upgrade may change any of them without notice: payment_platform_tests/test_dagster_internals.py pins
what each one does here, so an upgrade that breaks one fails that test, naming it.
"""
from __future__ import annotations

from dagster._core.events import JobFailureData, RunFailureReason

# The `dagster/failure_reason` tag values of a run whose worker never started or vanished: failures that say
# nothing about the work itself.
WORKER_LOST_REASONS = frozenset({RunFailureReason.START_TIMEOUT.value, RunFailureReason.UNEXPECTED_TERMINATION.value,
                                 RunFailureReason.RUN_WORKER_RESTART.value})


def worker_lost_failure() -> JobFailureData:
    """What `DagsterInstance.report_run_failed` records for a run whose worker died: an unexpected termination
    (tagged `dagster/failure_reason`, which run retries and WORKER_LOST_REASONS read)."""
    return JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION)


def purge_sensor_ticks(instance, before: float, failed_before: float) -> int:
    """Deletes every sensor's skipped and successful ticks older than `before` and its failed ones older than
    `failed_before` (epoch seconds), as the daemon's own `retention:` does on its schedule; returns how many
    sensors' ticks were purged. (Ticks are reached through the instigator states: origin and selector ids.)"""
    from dagster._core.scheduler.instigation import InstigatorType, TickStatus

    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    for state in states:
        instance.purge_ticks(state.instigator_origin_id, state.selector_id, before,
                             [TickStatus.SKIPPED, TickStatus.SUCCESS])
        instance.purge_ticks(state.instigator_origin_id, state.selector_id, failed_before, [TickStatus.FAILURE])
    return len(states)
