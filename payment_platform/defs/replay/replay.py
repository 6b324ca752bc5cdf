"""The replay job and the sensor that starts it: the backup drains into the stores by itself.

The sensor (every 30 s) reads only the backup's size per store and probes the health of each store that has
payments waiting, each bounded in time. It requests a run only for stores that answer, and never while a
replay run is queued or running, so a store that is still down causes no attempt storm. A replay run whose worker
died is marked failed by the sensor (defs.run_workers) instead of holding replay until its max_runtime, and the
next request gets a fresh run key (the dead run's key would be deduplicated). The run drains
oldest first, rate-bounded, idempotently (`payment_platform.replay.replayer`), and reports what it landed as
materializations of the stores' assets.
"""
import time

import dagster as dg

from payment_platform.defs.asset_keys import FAILED_PAYMENT_BACKUP, HBASE_PAYMENTS, POSTGRES_PAYMENTS, QUARANTINE
from payment_platform.defs.resources import BackupResource, HBaseResource, PostgresResource, RedisResource
from payment_platform.defs.dagster_internals import WORKER_LOST_REASONS
from payment_platform.defs.run_workers import fail_dead_runs, record_worker
from payment_platform.lib.bounded import bounded
from payment_platform.replay.replayer import ReplaySettings, replayer_for
from payment_platform.replay.scheduling import ReplayPlan, plan_replay

REPLAY_JOB = "replay_failed_payments_job"
STORE_ASSETS = {"hbase": HBASE_PAYMENTS, "postgres": POSTGRES_PAYMENTS}
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]


class ReplayConfig(dg.Config):
    """Which stores to replay into and how fast."""

    stores: list[str] = ["hbase", "postgres"]
    batch_size: int = 500
    max_rate_per_s: float = 2000.0
    max_payments: int | None = None
    connection_retries: int = 3


@dg.op(retry_policy=dg.RetryPolicy(max_retries=2, delay=2.0, backoff=dg.Backoff.EXPONENTIAL))
def replay_failed_payments(context: dg.OpExecutionContext, config: ReplayConfig, hbase: HBaseResource,
                           postgres: PostgresResource, backup: BackupResource, redis: RedisResource) -> None:
    """Land the backed-up payments in the stores that missed them; a payment a store refuses on its own goes to
    quarantine when the store is proven to take writes (and leaves the other store and Redis's landed keys, as a
    poison message isolated by ingestion does), else stays in the backup and the run fails naming it."""
    record_worker(context)
    unknown = sorted(set(config.stores) - set(STORE_ASSETS))
    if unknown:
        raise dg.Failure(f"replay config stores: unknown store(s) {unknown}; expected some of {sorted(STORE_ASSETS)}")
    settings = ReplaySettings(batch_size=config.batch_size, max_rate_per_s=config.max_rate_per_s,
                              max_payments=config.max_payments, connection_retries=config.connection_retries)
    backup_client = backup.client()
    replayer = replayer_for(backup_client, hbase.client(), postgres.client(), settings, log=context.log,
                            redis=redis.client())
    result = replayer.drain(config.stores)
    metadata = result.as_metadata()
    for store, outcome in result.stores.items():
        store_metadata = {"source": "replay", "landed": outcome.landed, "quarantined": outcome.quarantined,
                          "left_in_backup": outcome.left_in_backup, "landed_sample": outcome.landed_sample}
        if outcome.quarantined_sample:
            store_metadata["quarantined_sample"] = outcome.quarantined_sample
        for other, removed in outcome.removed_elsewhere.items():
            store_metadata[f"quarantined_removed_from_{other}"] = removed
        if outcome.refused_unproven:  # refused alone, no proof the store takes writes: kept in the backup
            store_metadata["refused_unproven"] = outcome.refused_unproven
        if outcome.stopped:
            store_metadata["stopped"] = outcome.stopped
        if outcome.landed:
            context.log_event(dg.AssetMaterialization(STORE_ASSETS[store], metadata=store_metadata,
                                                      description=f"replay landed {outcome.landed} payments"))
        if outcome.quarantined:
            context.log_event(dg.AssetMaterialization(QUARANTINE, metadata={
                "source": "replay", "refused_by": store, "quarantined": outcome.quarantined,
                "quarantined_sample": outcome.quarantined_sample},
                description=f"replay quarantined {outcome.quarantined} payment(s) {store} refused for their content"))
        for other, removed in outcome.removed_elsewhere.items():  # what the other store gave back: it changed too
            context.log_event(dg.AssetObservation(STORE_ASSETS[other], metadata={
                "source": "replay", "refused_by": store, "quarantined_removed": removed},
                description=f"replay took back {removed} payment(s) {store} refused (quarantined): rows and backup "
                            f"entries written from the same Kafka positions"))
    stats = backup_client.stats()
    context.log_event(dg.AssetObservation(FAILED_PAYMENT_BACKUP, metadata={
        "backup_size": stats["size"], "backup_hbase": stats["by_store"].get("hbase", 0),
        "backup_postgres": stats["by_store"].get("postgres", 0),
        "oldest_age_s": float(stats["oldest_age_s"] or 0.0), "replay_landed": result.landed,
        "replay_quarantined": result.quarantined,
        **{f"refused_unproven_{store}": outcome.refused_unproven
           for store, outcome in result.stores.items() if outcome.refused_unproven}}))
    context.log.info(f"replay: {metadata}")
    stopped = {s: o.stopped for s, o in result.stores.items() if o.stopped}
    if stopped:  # the run fails so the UI shows it; the payments stay safe in the backup for the next run
        # A store that refused payments it cannot be proven to take gives the same answer a few seconds later: no
        # op retry then (an outage is retried), the next replay run looks again.
        refusals_only = all(result.stores[s].refused_unproven for s in stopped)
        raise dg.Failure(f"replay stopped early: {stopped}", metadata=metadata, allow_retries=not refusals_only)


# One op in the run worker's own process (no step subprocess): the pid it records is the run's.
@dg.job(name=REPLAY_JOB, description="Drain the failed-payment backup into HBase and Postgres (oldest first).",
        tags={"dagster/max_runtime": "3600"}, executor_def=dg.in_process_executor)
def replay_failed_payments_job():
    replay_failed_payments()


def _after_lost_run(instance: dg.DagsterInstance) -> str:
    """A run-key suffix when the last replay run was lost (worker died, never started): the same backlog must be
    requested again now, and its run key would otherwise be the lost run's (Dagster runs a run key once)."""
    last = instance.get_run_records(dg.RunsFilter(job_name=REPLAY_JOB), limit=1)
    if not last or last[0].dagster_run.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        return ""
    run = last[0].dagster_run
    return f":after-{run.run_id[:8]}" if run.tags.get("dagster/failure_reason") in WORKER_LOST_REASONS else ""


def _bounded(fn, timeout_s: float):
    return bounded(fn, timeout_s, "replay sensor probe")


def plan_from_resources(hbase: HBaseResource, postgres: PostgresResource, backup: BackupResource,
                        timeout_s: float) -> ReplayPlan:
    backup_client = backup.client()
    probes = {"hbase": lambda: hbase.client().health(), "postgres": lambda: postgres.client().health()}
    try:
        plan = plan_replay(
            sizes=lambda: _bounded(lambda: {s: backup_client.size(s) for s in STORE_ASSETS}, timeout_s),
            oldest=lambda store: _bounded(lambda: [e.payment_id for e in backup_client.list_oldest(1, store)], timeout_s),
            health={store: (lambda probe=probe: _bounded(probe, timeout_s)) for store, probe in probes.items()})
        if backup_client.last_mongo_error:  # the sizes above then count the local folder only
            plan.reason += f"; MongoDB unreachable, only the local folder was seen: {backup_client.last_mongo_error}"
        return plan
    finally:
        backup_client.close()


@dg.sensor(name="backup_replay_sensor", job=replay_failed_payments_job, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Starts a replay when the backup holds payments and that store's health probe passes.")
def backup_replay_sensor(context: dg.SensorEvaluationContext, hbase: HBaseResource, postgres: PostgresResource,
                         backup: BackupResource):
    in_flight = context.instance.get_run_records(dg.RunsFilter(job_name=REPLAY_JOB, statuses=IN_FLIGHT))
    dead = fail_dead_runs(context.instance, in_flight, context.log)
    alive = [r for r in in_flight if r.dagster_run.run_id not in dead]
    if alive:
        return dg.SkipReason(f"a replay run is in flight ({alive[0].dagster_run.run_id})")
    plan = plan_from_resources(hbase, postgres, backup, timeout_s=5.0)
    if not plan.stores:
        return dg.SkipReason(plan.reason)
    return dg.RunRequest(run_key=plan.run_key(time.time()) + _after_lost_run(context.instance), run_config={
        "ops": {"replay_failed_payments": {"config": {"stores": plan.stores}}}}, tags={"payment_platform/replay": plan.reason})
