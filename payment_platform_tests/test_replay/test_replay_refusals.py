"""Replay sorts a store's errors as ingestion does (`stores.refusals`): a payment HBase's *server* refuses (a Thrift
IOError, e.g. a cell in a column family the table does not have) is poison, not "hbase unreachable", and is
quarantined once there is proof the store takes writes; a store that is down or frozen is an outage and leaves
everything in the backup.

How the payments get into HBase's backup: HBase down while they were ingested (Postgres took them), or the poison
alone in a one-message range (the loader has no proof then, so HBase's copy waits in the backup). HBase's server
write path is broken for the poison's id as in `test_loader/test_poison.py` (`break_hbase_server`): the real
gateway refuses the row. Real stores: a private HBase gateway and MongoDB, the session stack's Kafka, Postgres (a
private schema) and Redis; the Dagster replay sensor, replay job and checks run in process."""
from __future__ import annotations

import os
import signal

import dagster as dg
import pytest

from payment_platform.defs.checks.checks import BACKUP_EMPTY_OR_DRAINING
from payment_platform.defs.replay.replay import replay_failed_payments_job
from payment_platform.monitoring.snapshot import Probes, collect, render
from payment_platform.replay.replayer import ReplaySettings, replayer_for

from ..test_healing.conftest import instance, platform, private_hbase, private_mongo  # noqa: F401 - fixtures
from ..test_loader.test_poison import break_hbase_server
from .test_replay_quarantine import (
    COUNT,
    POISON_AT,
    assert_every_check_passes,
    assert_every_other_payment_in_both_stores,
    hbase_backlog,
    publish_with_the_poison_alone,
)

pytestmark = [pytest.mark.stack]

SERVER_REFUSAL = "IOError: NoSuchColumnFamilyException"


def replay_run(platform, instance, stores=("hbase",)) -> dg.ExecuteInProcessResult:  # noqa: F811
    """The replay job as the sensor starts it (run config `stores`), whatever the run's outcome."""
    job = platform.definitions().resolve_job_def(replay_failed_payments_job.name)
    return job.execute_in_process(run_config={"ops": {"replay_failed_payments": {"config": {
        "stores": list(stores), "connection_retries": 1}}}}, instance=instance, raise_on_error=False)


def sensor_then_replay(platform, instance) -> dg.ExecuteInProcessResult:  # noqa: F811
    """What the platform does by itself: the sensor sees HBase's backlog and a healthy HBase, its run drains."""
    request = platform.evaluate_replay_sensor(instance)
    assert isinstance(request, dg.RunRequest), request
    assert request.run_config["ops"]["replay_failed_payments"]["config"]["stores"] == ["hbase"]
    return platform.run_replay(instance, request)


def run_failure(run: dg.ExecuteInProcessResult) -> str:
    """What the failed (or retried) step said, as the UI shows it."""
    return "\n".join(e.event_specific_data.error.to_string() for e in run.all_events
                     if e.event_type in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_UP_FOR_RETRY))


def assert_quarantined_by_hbase_only(platform, poison: str, offset: int) -> None:  # noqa: F811
    """Quarantined once with HBase's server error, in neither store (Postgres's copy from the same Kafka position
    removed), out of the backup and of Redis's landed keys."""
    [entry] = [q for q in platform.postgres().quarantined() if q["payment_id"] == poison]
    assert entry["kafka_offset"] == offset, entry
    assert entry["reason"].startswith(f"replay to hbase rejected: {SERVER_REFUSAL}"), entry["reason"]
    assert "nosuchfamily" in entry["reason"]
    assert platform.hbase().existing_ids([poison]) == set() and platform.hbase().get_payment(poison) is None
    assert platform.postgres().existing_ids([poison]) == set()
    assert platform.backup().size() == 0, platform.backup().list_oldest(5)
    assert platform.redis().landed_ids([poison]) == set()


def backup_check(platform, instance) -> dg.AssetCheckEvaluation:  # noqa: F811
    return platform.run_checks(instance)[("mongo/failed_payments", BACKUP_EMPTY_OR_DRAINING)]


# -- (a) refused by HBase's server, in HBase's backup with good payments ----------------------------------------

def test_a_payment_hbases_server_refuses_in_its_backup_is_quarantined_and_the_rest_lands(
        platform, private_hbase, instance, monkeypatch):  # noqa: F811
    ranges = hbase_backlog(platform, private_hbase, seed=41)
    private_hbase.start()
    poison = platform.payment_ids[POISON_AT + 7]
    break_hbase_server(monkeypatch, {poison})  # HBase back, and its server refuses this payment's row

    run = sensor_then_replay(platform, instance)

    assert run.success, run_failure(run)
    [landed] = [m.materialization for m in run.get_asset_materialization_events()
                if m.asset_key.path == ["hbase", "payments"]]
    assert landed.metadata["landed"].value == 19 and landed.metadata["quarantined"].value == 1
    assert landed.metadata["quarantined_removed_from_postgres"].value == 1
    assert_quarantined_by_hbase_only(platform, poison, ranges[1].start + 7)
    assert_every_other_payment_in_both_stores(platform, poison)
    assert_every_check_passes(platform, instance)


# -- (b) the poison alone in HBase's backup: the write probe decides ----------------------------------------------

def ingest_with_the_poison_alone_in_hbases_backup(platform, monkeypatch, seed: int) -> tuple[str, int]:  # noqa: F811
    """Ingestion has no proof HBase takes writes in the poison's one-message range: HBase's copy is backed up,
    Postgres holds it, Redis calls it landed. Returns (its id, its offset)."""
    ranges, poison, offset = publish_with_the_poison_alone(platform, seed=seed)
    break_hbase_server(monkeypatch, {poison})
    for offset_range in ranges:
        platform.ingest(offset_range)
    assert platform.backup().stored_ids("hbase", [poison]) == {poison} and platform.backup().size() == 1
    assert platform.postgres().existing_ids([poison]) == {poison}
    return poison, offset


def test_the_poison_alone_is_quarantined_when_hbases_write_probe_passes(platform, instance, monkeypatch):  # noqa: F811
    poison, offset = ingest_with_the_poison_alone_in_hbases_backup(platform, monkeypatch, seed=42)

    run = sensor_then_replay(platform, instance)

    assert run.success, run_failure(run)
    assert_quarantined_by_hbase_only(platform, poison, offset)
    assert_every_other_payment_in_both_stores(platform, poison)
    # the probe wrote nothing: the payments table holds exactly the other payments' rows
    assert sum(1 for _ in platform.hbase().scan_payments()) == COUNT - 1
    assert platform.hbase().count_index() == COUNT - 1
    assert_every_check_passes(platform, instance)


def test_the_poison_alone_stays_in_the_backup_while_hbase_refuses_every_write_and_is_quarantined_after(
        platform, instance, monkeypatch):  # noqa: F811
    poison, offset = ingest_with_the_poison_alone_in_hbases_backup(platform, monkeypatch, seed=43)
    hbase = platform.hbase()
    hbase.connection().disable_table("payments")  # an operator disabled it: HBase answers, and refuses every write

    run = sensor_then_replay(platform, instance)

    assert not run.success  # the run says why, naming the payment, where it came from and the store's error
    assert not [e for e in run.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]  # no op retry
    message = run_failure(run)
    for text in (poison, f"@{offset}", "TableNotEnabledException", "no proof hbase takes writes",
                 "refused its write probe too"):
        assert text in message, (text, message)
    assert platform.postgres().count_quarantine() == 0  # nothing quarantined: no proof the payment is the problem
    entry = platform.backup().find(poison, "hbase")
    assert entry is not None and entry.attempts == 2 and "not quarantined: no proof hbase takes writes" in entry.error
    check = backup_check(platform, instance)  # what the backup check shows an operator
    assert not check.passed and check.metadata["latest_failure_payment"].value == poison
    assert "TableNotEnabledException" in check.metadata["latest_failure_error"].value
    assert poison in check.description and "no proof hbase takes writes" in check.description
    status = render(collect(Probes(None, platform.postgres(), platform.hbase(), platform.backup(), platform.redis())))
    assert f"latest backup failure   payment {poison} for hbase (attempt 2)" in status, status
    assert "no proof hbase takes writes" in status

    hbase.connection().enable_table("payments")  # the table takes writes again: the next replay has its proof
    again = sensor_then_replay(platform, instance)

    assert again.success, run_failure(again)
    assert_quarantined_by_hbase_only(platform, poison, offset)
    assert_every_other_payment_in_both_stores(platform, poison)
    assert_every_check_passes(platform, instance)


# -- (c) HBase really down or frozen: an outage, nothing quarantined ----------------------------------------------

def test_hbase_down_or_frozen_leaves_everything_in_the_backup_and_it_lands_when_back(
        platform, private_hbase, instance, monkeypatch):  # noqa: F811
    ranges = hbase_backlog(platform, private_hbase, seed=44)
    poison = platform.payment_ids[POISON_AT + 2]
    break_hbase_server(monkeypatch, {poison})  # poison for HBase too: still an outage while HBase is away
    assert platform.backup().size("hbase") == 20

    # down: the sensor does not even try; a replay started anyway stops on the outage
    skip = platform.evaluate_replay_sensor(instance)
    assert isinstance(skip, dg.SkipReason) and "hbase: 20 waiting but unhealthy" in skip.skip_message
    down = replay_run(platform, instance)
    assert not down.success and "hbase schema not ready" in run_failure(down)
    assert platform.backup().size("hbase") == 20 and platform.postgres().count_quarantine() == 0

    # frozen (SIGSTOP: the port accepts, nothing answers): timeouts, an outage too
    private_hbase.start()
    frozen_settings = ReplaySettings(connection_retries=1, retry_backoff_s=0.1)
    os.kill(private_hbase.popen.pid, signal.SIGSTOP)
    try:
        frozen = replayer_for(platform.backup(), platform.hbase(), platform.postgres(), frozen_settings,
                              redis=platform.redis()).drain(["hbase"])
    finally:
        os.kill(private_hbase.popen.pid, signal.SIGCONT)
    assert frozen.landed == 0 and frozen.quarantined == 0 and frozen.stores["hbase"].refused_unproven == []
    assert "schema not ready" in frozen.stores["hbase"].stopped or "unreachable" in frozen.stores["hbase"].stopped
    assert platform.backup().size("hbase") == 20 and platform.postgres().count_quarantine() == 0
    assert platform.postgres().existing_ids([poison]) == {poison}  # Postgres's copy is untouched meanwhile

    # back: the backlog lands, and only now is the poison found (HBase accepted the others: the proof)
    back = sensor_then_replay(platform, instance)
    assert back.success, run_failure(back)
    assert_quarantined_by_hbase_only(platform, poison, ranges[1].start + 2)
    assert_every_other_payment_in_both_stores(platform, poison)
    assert_every_check_passes(platform, instance)


def test_hbase_dying_in_the_middle_of_a_replay_is_an_outage_not_poison(platform, private_hbase, monkeypatch):  # noqa: F811
    """The gateway killed between the write that HBase's server refused and the next: the bisection meets an
    outage, so nothing is quarantined and the batch stays in the backup."""
    hbase_backlog(platform, private_hbase, seed=45)
    private_hbase.start()
    poison = platform.payment_ids[POISON_AT + 4]
    break_hbase_server(monkeypatch, {poison})
    hbase = platform.hbase()
    write = hbase.write_payments
    calls = []

    def write_then_die(records, **kwargs):
        calls.append(len(records))
        if len(calls) == 2:  # the first write (all 20) was refused for the poison; now the gateway is gone
            private_hbase.kill()
        return write(records, **kwargs)
    monkeypatch.setattr(hbase, "write_payments", write_then_die)

    result = replayer_for(platform.backup(), hbase, platform.postgres(),
                          ReplaySettings(connection_retries=1, retry_backoff_s=0.1), redis=platform.redis()
                          ).drain(["hbase"])

    assert calls[0] == 20 and result.quarantined == 0 and result.landed == 0
    assert "unreachable" in result.stores["hbase"].stopped, result.stores["hbase"].stopped
    assert platform.backup().size("hbase") == 20 and platform.postgres().count_quarantine() == 0
