"""The platform heals itself: a store down during ingestion fills the backup and the checks fail or
warn; once the store is back the replay sensor starts a run by itself, after which every check passes and
every generated payment is in both stores exactly once. Real servers throughout: a private HBase gateway and
a private MongoDB that these tests kill, the session stack's Kafka, Postgres and Redis."""
from __future__ import annotations

import dagster as dg
import pytest

from payment_platform.defs.asset_keys import DAILY_SETTLEMENT_SUMMARY
from payment_platform.defs.checks.checks import (
    AMOUNTS_VALID_FOR_RAIL,
    BACKUP_EMPTY_OR_DRAINING,
    CROSS_STORE_CONSISTENCY,
    INGESTED_RANGES_CONSISTENCY,
    NO_DUPLICATE_PAYMENT_IDS,
)
from payment_platform.defs.summaries.settlement import daily_settlement_job
from payment_platform.reconciliation.readers import HBaseReader, PostgresReader
from devstack.stack.manager import free_ports
from payment_platform.stores.postgres import PostgresLedger

pytestmark = [pytest.mark.stack, pytest.mark.slow]

HB, PG, BACKUP = "hbase/payments", "postgres/payments", "mongo/failed_payments"


def meta(evaluation, key):
    return evaluation.metadata[key].value


def assert_every_payment_once_in_both_stores(platform):
    hbase = HBaseReader.from_store(platform.hbase())
    postgres = PostgresReader.from_ledger(platform.postgres())
    published = set(platform.payment_ids)
    hbase_ids = [r.payment_id for r in hbase.iter_records(_all())]
    postgres_ids = [r.payment_id for r in postgres.iter_records(_all())]
    assert sorted(hbase_ids) == sorted(published), "HBase holds each generated payment exactly once"
    assert sorted(postgres_ids) == sorted(published), "Postgres holds each generated payment exactly once"


def _all():
    from payment_platform.reconciliation.compare import AllPayments
    return AllPayments()


def heal_by_itself(platform, instance, expect_store: str, landed: int, **sensor_resources):
    """The sensor sees the backlog and a healthy store and requests a run; the run lands the backlog."""
    request = platform.evaluate_replay_sensor(instance, **sensor_resources)
    assert isinstance(request, dg.RunRequest), request
    assert request.run_config["ops"]["replay_failed_payments"]["config"]["stores"] == [expect_store]
    run = platform.run_replay(instance, request)
    assert run.success
    landed_events = [m for m in run.get_asset_materialization_events()
                     if m.asset_key.path == [expect_store, "payments"]]
    assert landed_events and landed_events[0].materialization.metadata["landed"].value == landed
    assert platform.backup().size() == 0


def assert_all_checks_pass(platform, instance):
    evaluations = platform.run_checks(instance)
    assert len(evaluations) == 15  # 6 full + 5 range + recent days, backup, quarantine, not stalled
    failed = {k: e.description for k, e in evaluations.items() if not e.passed}
    assert not failed, failed


def test_hbase_down_fills_the_backup_then_replay_heals_by_itself(platform, private_hbase, instance):
    ranges = platform.publish(60, seed=11)
    platform.ingest(ranges[0])
    private_hbase.kill()
    for offset_range in ranges[1:]:
        result = platform.ingest(offset_range)
        assert result.backed_up["hbase"] == 20 and result.written["postgres"] == 20
    assert platform.backup().size("hbase") == 40

    evaluations = platform.run_checks(instance)
    backup_check = evaluations[(BACKUP, BACKUP_EMPTY_OR_DRAINING)]
    assert not backup_check.passed and backup_check.severity == dg.AssetCheckSeverity.WARN
    assert meta(backup_check, "backup_size") == 40
    assert not evaluations[(HB, CROSS_STORE_CONSISTENCY)].passed  # HBase unreachable: cannot be proven

    skip = platform.evaluate_replay_sensor(instance)  # the store is still down: no attempt
    assert isinstance(skip, dg.SkipReason) and "unhealthy" in skip.skip_message

    private_hbase.start()
    evaluations = platform.run_checks(instance)
    consistency = evaluations[(HB, CROSS_STORE_CONSISTENCY)]
    assert not consistency.passed
    assert meta(consistency, "missing_in_hbase") == 40 and meta(consistency, "pending_in_backup_hbase") == 40
    assert len(meta(consistency, "mismatch_sample")) == 20 and meta(consistency, "mismatch_count") == 40
    assert set(meta(consistency, "mismatch_sample")) <= set(platform.payment_ids[20:])
    ranges_check = evaluations[(HB, INGESTED_RANGES_CONSISTENCY)]
    assert not ranges_check.passed and meta(ranges_check, "lost_count") == 0
    assert meta(ranges_check, "pending_in_backup_hbase") == 40
    assert meta(ranges_check, "ranges_unproven") == 2  # the first range was proven, the other two wait

    heal_by_itself(platform, instance, "hbase", landed=40)
    evaluations = platform.run_checks(instance)
    assert all(e.passed for e in evaluations.values())
    healed_ranges = evaluations[(HB, INGESTED_RANGES_CONSISTENCY)]
    assert meta(healed_ranges, "ranges") == 2 and meta(healed_ranges, "ranges_unproven") == 0
    rechecked = platform.run_checks(instance)[(HB, INGESTED_RANGES_CONSISTENCY)]
    assert rechecked.passed and meta(rechecked, "rechecked_recent") is True and meta(rechecked, "ranges") == 3
    assert_every_payment_once_in_both_stores(platform)
    assert isinstance(platform.evaluate_replay_sensor(instance), dg.SkipReason)  # nothing left to replay

    summary = platform.definitions().resolve_job_def(daily_settlement_job.name).execute_in_process(instance=instance)
    assert summary.success
    built = instance.get_latest_materialization_event(DAILY_SETTLEMENT_SUMMARY)
    assert built.asset_materialization.metadata["payments"].value == 60


class LedgerWithDeadPayments(PostgresLedger):
    """The ledger whose payments table is unreachable: its payment writes go to a dead DSN (nothing listens),
    while progress and quarantine stay on the live server, as when Postgres drops in the middle of a range."""

    def __init__(self, live: PostgresLedger, dead_dsn: str):
        super().__init__(live.dsn, schema=live.schema)
        self.dead = PostgresLedger(dead_dsn, schema=live.schema, connect_timeout_s=1)

    def write_payments(self, records):
        return self.dead.write_payments(records)

    def existing_ids(self, payment_ids):
        return self.dead.existing_ids(payment_ids)


def test_postgres_down_fills_the_backup_then_replay_heals_by_itself(platform, instance):
    dead_dsn = f"postgresql://postgres@127.0.0.1:{free_ports(1)[0]}/postgres?connect_timeout=1"
    ranges = platform.publish(40, seed=12)
    platform.ingest(ranges[0])
    result = platform.ingest(ranges[1], postgres=LedgerWithDeadPayments(platform.postgres(), dead_dsn))
    assert result.backed_up["postgres"] == 20 and result.written["hbase"] == 20
    assert platform.backup().size("postgres") == 20

    evaluations = platform.run_checks(instance)
    assert not evaluations[(BACKUP, BACKUP_EMPTY_OR_DRAINING)].passed
    consistency = evaluations[(PG, CROSS_STORE_CONSISTENCY)]
    assert not consistency.passed and meta(consistency, "missing_in_postgres") == 20

    skip = platform.evaluate_replay_sensor(instance, postgres_dsn=dead_dsn)  # ledger still unreachable
    assert isinstance(skip, dg.SkipReason) and "postgres: 20 waiting but unhealthy" in skip.skip_message

    heal_by_itself(platform, instance, "postgres", landed=20)
    assert_all_checks_pass(platform, instance)
    assert_every_payment_once_in_both_stores(platform)


def test_mongo_down_too_the_folder_holds_the_backup_and_replay_drains_it(platform, private_hbase, private_mongo,
                                                                          instance):
    ranges = platform.publish(40, seed=13)
    platform.ingest(ranges[0])
    private_mongo.kill()
    private_hbase.kill()
    result = platform.ingest(ranges[1])
    assert result.backed_up["hbase"] == 20 and result.backed_up_to_files == 20
    files = sorted(platform.fallback_dir.glob("hbase__*.json"))
    assert len(files) == 20

    private_hbase.start()  # MongoDB stays down
    heal_by_itself(platform, instance, "hbase", landed=20)
    assert not list(platform.fallback_dir.glob("*.json"))
    evaluations = platform.run_checks(instance)
    failed = {k: e.description for k, e in evaluations.items() if not e.passed}
    assert not failed, failed
    assert_every_payment_once_in_both_stores(platform)


def test_rows_changed_behind_the_platform_are_named_and_block_the_summary(platform, instance):
    for offset_range in platform.publish(40, seed=14):
        platform.ingest(offset_range)
    assert_all_checks_pass(platform, instance)

    altered, deleted, invalid = platform.payment_ids[3], platform.payment_ids[17], platform.payment_ids[25]
    ledger = platform.postgres()
    connection = ledger.connection()
    with connection.cursor() as cur:
        cur.execute(f'UPDATE "{platform.namespace}".payments SET amount = amount + 1 WHERE payment_id = %s', (altered,))
        cur.execute(f'UPDATE "{platform.namespace}".payments SET amount = -5 WHERE payment_id = %s', (invalid,))
    connection.commit()
    hbase = platform.hbase()
    hbase.table("payments").delete(hbase.row_key_for(deleted))

    evaluations = platform.run_checks(instance)
    consistency = evaluations[(PG, CROSS_STORE_CONSISTENCY)]
    assert not consistency.passed
    assert set(meta(consistency, "mismatch_sample")) == {altered, deleted, invalid}
    assert meta(consistency, "altered") == 2 and meta(consistency, "missing_in_hbase") == 1
    detail = meta(consistency, "mismatch_detail")
    assert detail[deleted]["hbase"] is None and detail[deleted]["postgres"]["payment_id"] == deleted
    rail = evaluations[(PG, AMOUNTS_VALID_FOR_RAIL)]
    assert not rail.passed and meta(rail, "invalid_sample") == [invalid]
    assert evaluations[(HB, AMOUNTS_VALID_FOR_RAIL)].passed
    assert evaluations[(HB, NO_DUPLICATE_PAYMENT_IDS)].passed
    ranges_check = evaluations[(HB, INGESTED_RANGES_CONSISTENCY)]
    assert not ranges_check.passed and meta(ranges_check, "lost_sample") == [deleted]  # not in HBase nor its backup

    # the summary never builds on inconsistent data: its blocking checks stop the run before it
    run = platform.definitions().resolve_job_def(daily_settlement_job.name).execute_in_process(
        instance=instance, raise_on_error=False)
    assert not run.success
    assert instance.get_latest_materialization_event(DAILY_SETTLEMENT_SUMMARY) is None
    failure = run.get_step_failure_events()
    assert [e.step_key for e in failure] == ["store_integrity_checks"]
    assert "blocking asset checks failed" in failure[0].event_specific_data.error.message
    started = {e.step_key for e in run.all_events if e.event_type_value == "STEP_START"}
    assert started == {"store_integrity_checks"}, started  # the summary's step never started



class KilledAfter:
    """The real backup, except that the process 'dies' after `removals` removals (between a write and the
    removal of the rest of its batch), as a replay run killed half way."""

    def __init__(self, backup, removals: int):
        self._backup, self._left = backup, removals

    def __getattr__(self, name):
        return getattr(self._backup, name)

    def remove(self, payment_id, store):
        if self._left == 0:
            raise SystemExit("killed")
        self._left -= 1
        return self._backup.remove(payment_id, store)


def test_replay_killed_half_way_then_run_twice_lands_each_payment_once(platform, private_hbase, instance):
    from payment_platform.replay.replayer import ReplaySettings, replayer_for

    ranges = platform.publish(40, seed=15)
    private_hbase.kill()
    for offset_range in ranges:
        platform.ingest(offset_range)
    assert platform.backup().size("hbase") == 40
    private_hbase.start()

    killed = replayer_for(KilledAfter(platform.backup(), removals=15), platform.hbase(), platform.postgres(),
                          ReplaySettings(batch_size=10))
    with pytest.raises(SystemExit):
        killed.drain(["hbase"])
    assert platform.backup().size("hbase") == 25  # 20 written (2 batches), 15 removed before the 'kill'

    heal_by_itself(platform, instance, "hbase", landed=25)
    again = platform.run_replay(instance, dg.RunRequest(run_config={"ops": {"replay_failed_payments": {
        "config": {"stores": ["hbase", "postgres"]}}}}))
    assert again.success
    assert_every_payment_once_in_both_stores(platform)
    assert_all_checks_pass(platform, instance)
