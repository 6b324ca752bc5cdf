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


# What sensors record outside any run (run_id ''): the monitoring sensor's and the ingestion sensor's observations
# every few seconds, and freshness state changes. Deleting a run never reaches them.
RUNLESS_EVENT_TYPES = ("ASSET_OBSERVATION", "FRESHNESS_STATE_CHANGE")


def purge_runless_events(instance, before: float, batch: int = 5000) -> int:
    """Deletes the run-less asset observations and freshness state changes recorded before `before` (epoch
    seconds), with their asset event tags, keeping each asset's latest event of each type (the UI's "last
    observed"); returns how many events went. Dagster has no API for these: run pruning deletes events by run."""
    from datetime import datetime, timezone

    import sqlalchemy as db
    from dagster._core.storage.event_log.schema import AssetEventTagsTable, SqlEventLogStorageTable

    events = SqlEventLogStorageTable
    cutoff = datetime.fromtimestamp(before, timezone.utc).replace(tzinfo=None)  # stored as naive UTC
    runless = db.and_(events.c.run_id == "", events.c.dagster_event_type.in_(RUNLESS_EVENT_TYPES))
    latest = db.select(db.func.max(events.c.id)).where(runless).group_by(events.c.asset_key,
                                                                         events.c.dagster_event_type)
    doomed = (db.select(events.c.id).where(runless, events.c.timestamp < cutoff, events.c.id.not_in(latest))
              .order_by(events.c.id).limit(batch))
    deleted = 0
    with instance.event_log_storage.index_connection() as conn:
        while True:
            ids = [row[0] for row in conn.execute(doomed).fetchall()]
            if not ids:
                return deleted
            conn.execute(AssetEventTagsTable.delete().where(AssetEventTagsTable.c.event_id.in_(ids)))
            conn.execute(events.delete().where(events.c.id.in_(ids)))
            deleted += len(ids)
