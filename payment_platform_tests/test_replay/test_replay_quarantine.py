"""Replay quarantining a payment a store refuses for its content takes it out of the other store too, as ingestion
does with a poison message (`loader._settle_poison`): only the row written from the same Kafka position, Redis's
"landed" key forgotten, the backup entry dropped last, so a replay killed between two steps finishes the job
next time and the checks agree afterwards.

How a payment gets there: alone in a one-message range, refused by Postgres, ingestion cannot tell poison from a
failing store (it accepted nothing in that range), so HBase keeps it and Postgres's copy waits in the backup; or
HBase was down while it was ingested and refuses it when it is back. A store's write path is broken for chosen
ids as in `test_loader/test_poison.py`. Real stores: a private HBase gateway and MongoDB, the session stack's
Kafka, Postgres (a private schema) and Redis (a private key prefix); the Dagster replay sensor, replay job and
every check, run in process."""
from __future__ import annotations

import dagster as dg
import pytest

from payment_platform.domain.schema import decode
from payment_platform.ingestion.loader import OffsetRange
from payment_platform.replay.replayer import ReplaySettings, replayer_for
from payment_platform.stores.records import KafkaPosition, PaymentRecord

from ..test_healing.conftest import instance, platform, private_hbase, private_mongo  # noqa: F401 - fixtures
from ..test_loader.conftest import free_port
from ..test_loader.test_poison import break_hbase_conversion, break_postgres_server
from ..test_stores.payments import payment_doc, raw

pytestmark = [pytest.mark.stack]

COUNT = 40
POISON_AT = 20  # its offset in the topic: alone in the middle range


def publish_with_the_poison_alone(platform, seed: int) -> tuple[list[OffsetRange], str, int]:  # noqa: F811
    """COUNT payments in three ranges, the one at POISON_AT alone in the middle one: (ranges, its id, its offset)."""
    published = platform.publish(COUNT, seed=seed)
    first, end = published[0].start, published[-1].end
    offset = first + POISON_AT
    ranges = [OffsetRange(platform.topic, 0, start, stop)
              for start, stop in ((first, offset), (offset, offset + 1), (offset + 1, end))]
    return ranges, platform.payment_ids[POISON_AT], offset


def hbase_backlog(platform, private_hbase, seed: int):  # noqa: F811
    """COUNT payments in two ranges, the second ingested while the HBase gateway was down: its 20 payments are in
    Postgres and wait in HBase's backup. Returns the ranges; the gateway is left down."""
    ranges = platform.publish(COUNT, seed=seed)
    platform.ingest(ranges[0])
    private_hbase.kill()
    assert platform.ingest(ranges[1]).backed_up["hbase"] == 20  # an outage: Postgres took them, HBase's wait
    return ranges


def replay_through_dagster(platform, instance, store: str) -> dg.ExecuteInProcessResult:  # noqa: F811
    """What the platform does by itself: the replay sensor sees the backlog and a healthy store, its run drains."""
    request = platform.evaluate_replay_sensor(instance)
    assert isinstance(request, dg.RunRequest), request
    assert request.run_config["ops"]["replay_failed_payments"]["config"]["stores"] == [store]
    run = platform.run_replay(instance, request)
    assert run.success
    return run


def assert_landed_nowhere(platform, payment_id: str, offset: int, store: str, words: str) -> None:  # noqa: F811
    [entry] = [q for q in platform.postgres().quarantined() if q["payment_id"] == payment_id]
    assert entry["kafka_offset"] == offset, entry
    assert f"replay to {store} rejected" in entry["reason"] and words in entry["reason"], entry["reason"]
    hbase = platform.hbase()
    assert hbase.existing_ids([payment_id]) == set() and hbase.get_payment(payment_id) is None
    assert platform.postgres().existing_ids([payment_id]) == set()
    assert platform.backup().size() == 0, platform.backup().list_oldest(5)
    assert platform.redis().landed_ids([payment_id]) == set()


def assert_every_other_payment_in_both_stores(platform, poison: str) -> None:  # noqa: F811
    good = set(platform.payment_ids) - {poison}
    assert platform.hbase().existing_ids(platform.payment_ids) == good
    assert platform.postgres().existing_ids(platform.payment_ids) == good
    assert platform.redis().landed_ids(platform.payment_ids) == good


def assert_every_check_passes(platform, instance) -> None:  # noqa: F811
    evaluations = platform.run_checks(instance)
    assert len(evaluations) >= 10  # every check of ALL_CHECKS evaluated
    failed = {key: e.description for key, e in evaluations.items() if not e.passed}
    assert not failed, failed


def test_a_payment_postgres_refuses_on_replay_is_taken_out_of_hbase_too(platform, instance, monkeypatch):  # noqa: F811
    ranges, poison, offset = publish_with_the_poison_alone(platform, seed=31)
    break_postgres_server(monkeypatch, {poison})
    for offset_range in ranges:
        platform.ingest(offset_range)
    # The gap this closes: ingestion called it a store fault, so HBase kept its copy and Redis called it landed.
    assert platform.backup().stored_ids("postgres", [poison]) == {poison} and platform.backup().size() == 1
    assert platform.hbase().existing_ids([poison]) == {poison}
    assert platform.redis().landed_ids([poison]) == {poison}

    run = replay_through_dagster(platform, instance, "postgres")

    assert_landed_nowhere(platform, poison, offset, "postgres", "numeric")
    assert_every_other_payment_in_both_stores(platform, poison)
    [gave_back] = [o.event_specific_data.asset_observation for o in run.get_asset_observation_events()
                   if o.asset_key.path == ["hbase", "payments"]]
    assert gave_back.metadata["quarantined_removed"].value == 1 and gave_back.metadata["refused_by"].value == "postgres"
    [quarantined] = [m.materialization for m in run.get_asset_materialization_events()
                     if m.asset_key.path[-1] == "payments_quarantine"]
    assert quarantined.metadata["quarantined_sample"].value == [poison]
    assert_every_check_passes(platform, instance)


def test_a_payment_hbase_refuses_when_back_is_taken_out_of_postgres_too(platform, private_hbase, instance,  # noqa: F811
                                                                       monkeypatch):
    ranges = hbase_backlog(platform, private_hbase, seed=32)
    private_hbase.start()
    poison = platform.payment_ids[POISON_AT + 3]
    break_hbase_conversion(monkeypatch, {poison})  # HBase back, but this payment's row cannot be built

    run = replay_through_dagster(platform, instance, "hbase")

    landed = [m for m in run.get_asset_materialization_events() if m.asset_key.path == ["hbase", "payments"]]
    assert landed[0].materialization.metadata["landed"].value == 19
    assert landed[0].materialization.metadata["quarantined_removed_from_postgres"].value == 1
    assert_landed_nowhere(platform, poison, ranges[1].start + 3, "hbase", "UnicodeEncodeError")
    assert_every_other_payment_in_both_stores(platform, poison)
    assert_every_check_passes(platform, instance)


def test_a_copy_written_from_another_kafka_position_is_not_removed(platform, monkeypatch):  # noqa: F811
    """Postgres holds the payment from offset 5 (its own message); the backup holds it for HBase from offset 9, and
    HBase refuses that one. Quarantining offset 9 must not take offset 5's row; a Postgres backup entry from
    offset 5 stays too."""
    doc = payment_doc(1, platform.namespace)
    payment = decode(raw(doc))
    kept = PaymentRecord(payment, raw(doc), KafkaPosition(platform.topic, 0, 5))
    refused = PaymentRecord(payment, raw(doc), KafkaPosition(platform.topic, 0, 9))
    assert platform.postgres().write_payments([kept]) == 1
    backup = platform.backup()
    backup.record_failures("hbase", [refused], "hbase unreachable: ConnectionRefusedError")
    backup.record_failures("postgres", [kept], "an earlier outage (its own message, offset 5)")
    break_hbase_conversion(monkeypatch, {payment.payment_id})

    result = replayer_for(platform.backup(), platform.hbase(), platform.postgres(), redis=platform.redis()
                          ).drain(["hbase"])

    assert result.stores["hbase"].quarantined == 1 and result.stores["hbase"].removed_elsewhere == {}
    [entry] = platform.postgres().quarantined()
    assert entry["kafka_offset"] == 9 and "UnicodeEncodeError" in entry["reason"]
    row = platform.postgres().get_payment(payment.payment_id)
    assert row is not None and row["kafka_offset"] == 5  # the other message's copy stays
    assert platform.backup().stored_ids("hbase", [payment.payment_id]) == set()
    assert platform.backup().find(payment.payment_id, "postgres").position.offset == 5


class KilledAt:
    """The backup, with the process 'killed' when the payment's entry for `store` is about to be dropped."""

    def __init__(self, backup, store: str):
        self._backup, self._store = backup, store

    def __getattr__(self, name):
        return getattr(self._backup, name)

    def remove(self, payment_id, store):
        if store == self._store:
            raise SystemExit("killed")
        return self._backup.remove(payment_id, store)


def test_a_replay_stopped_between_its_steps_finishes_the_job_next_time(platform, instance, monkeypatch):  # noqa: F811
    ranges, poison, offset = publish_with_the_poison_alone(platform, seed=33)
    break_postgres_server(monkeypatch, {poison})
    for offset_range in ranges:
        platform.ingest(offset_range)
    settings = ReplaySettings(connection_retries=1, retry_backoff_s=0.05)

    # 1. quarantined, then HBase cannot be reached to give its copy back: the drain stops, nothing is dropped
    dead_hbase = platform.hbase(port=free_port())
    first = replayer_for(platform.backup(), dead_hbase, platform.postgres(), settings, redis=platform.redis()
                         ).drain(["postgres"])
    assert "could not be taken back out of the other stores" in first.stores["postgres"].stopped
    assert first.stores["postgres"].quarantined == 0 and first.stores["postgres"].left_in_backup == 1
    assert platform.postgres().count_quarantine() == 1
    assert platform.hbase().existing_ids([poison]) == {poison}
    assert platform.backup().stored_ids("postgres", [poison]) == {poison}
    assert platform.redis().landed_ids([poison]) == {poison}

    # 2. HBase reachable: its copy is removed, Redis forgets, then the process dies before the backup entry goes
    killed = replayer_for(KilledAt(platform.backup(), "postgres"), platform.hbase(), platform.postgres(), settings,
                          redis=platform.redis())
    with pytest.raises(SystemExit):
        killed.drain(["postgres"])
    assert platform.hbase().existing_ids([poison]) == set()
    assert platform.backup().stored_ids("postgres", [poison]) == {poison}

    # 3. the platform's own replay meets the same refusal and finishes: one quarantine row, nothing left behind
    replay_through_dagster(platform, instance, "postgres")
    assert platform.postgres().count_quarantine() == 1
    assert_landed_nowhere(platform, poison, offset, "postgres", "numeric")
    assert_every_other_payment_in_both_stores(platform, poison)
    assert_every_check_passes(platform, instance)
