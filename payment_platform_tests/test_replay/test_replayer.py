"""Replay logic with in-memory fakes for the backup and the stores (the real stores: test_healing)."""
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest

from payment_platform.domain.schema import decode
from payment_platform.replay.replayer import ReplaySettings, Replayer
from payment_platform.stores.records import KafkaPosition, PaymentRecord


def message(i: int, amount: str = "10.00") -> bytes:
    return json.dumps({
        "schema_version": 1, "payment_id": str(uuid.UUID(int=i + 1)), "payment_type": "WIRE",
        "amount": {"value": amount, "currency": "USD"},
        "originator": {"party_id": "P1", "name": "A", "account_number": "1234567", "routing_number": "021000021"},
        "beneficiary": {"party_id": "P2", "name": "B", "account_number": "7654321", "routing_number": "021000021"},
        "created_at": "2026-11-24T10:00:00Z", "status": "ACSC"}).encode()


@dataclass(frozen=True)
class Entry:
    payment_id: str
    store: str
    raw: bytes
    first_attempt_at: datetime
    position: object = None

    def record(self):
        return PaymentRecord(decode(self.raw), self.raw, self.position)


class FakeBackup:
    def __init__(self, entries):
        self.entries = list(entries)
        self.failures = []

    def list_oldest(self, limit, store=None):
        return sorted((e for e in self.entries if store in (None, e.store)), key=lambda e: e.first_attempt_at)[:limit]

    def remove(self, payment_id, store):
        before = len(self.entries)
        self.entries = [e for e in self.entries if not (e.payment_id == payment_id and e.store == store)]
        return len(self.entries) < before

    def size(self, store=None):
        return len([e for e in self.entries if store in (None, e.store)])

    def record_failures(self, store, records, error):
        self.failures.append((store, len(records), error))


class FakeStore:
    def __init__(self, reject_amount=None, down_for=0):
        self.rows = {}
        self.calls = 0
        self.reject_amount = reject_amount
        self.down_for = down_for

    def write(self, records):
        self.calls += 1
        if self.down_for:
            self.down_for -= 1
            raise ConnectionRefusedError("store down")
        for r in records:
            if self.reject_amount and r.payment.doc["amount"]["value"] == self.reject_amount:
                raise psycopg2.DataError("numeric field overflow")
        for r in records:
            self.rows.setdefault(r.payment_id, r)
        return len(records)


def entries(n, store="hbase", start=0):
    base = datetime(2026, 11, 24, tzinfo=timezone.utc)
    return [Entry(str(uuid.UUID(int=i + 1)), store, message(i), base + timedelta(seconds=n - i)) for i in range(start, start + n)]


def make(backup, stores, quarantined, probes=None, **settings):
    return Replayer(backup, {name: s.write for name, s in stores.items()}, lambda rej: quarantined.extend(rej) or len(rej),
                    ReplaySettings(**{"retry_backoff_s": 0, **settings}), sleep=lambda s: None, probes=probes)


def test_drains_oldest_first_in_batches_and_says_what_landed():
    backup = FakeBackup(entries(7))
    store = FakeStore()
    order = []
    replayer = make(backup, {"hbase": store}, [], batch_size=3)
    replayer.writers["hbase"] = lambda recs: order.extend(r.payment_id for r in recs) or store.write(recs)
    result = replayer.drain(["hbase"])
    assert backup.size() == 0
    assert len(store.rows) == 7 and store.calls == 3
    expected = [e.payment_id for e in sorted(entries(7), key=lambda e: e.first_attempt_at)]
    assert order == expected
    meta = result.as_metadata()
    assert meta["landed"] == 7 and meta["landed_hbase"] == 7 and meta["left_in_backup_hbase"] == 0
    assert meta["landed_sample_hbase"] == expected


def test_replaying_twice_or_after_a_kill_lands_each_payment_once():
    backup = FakeBackup(entries(5))
    store = FakeStore()
    # killed after the write, before the removal: the entries stay in the backup
    original_remove = backup.remove
    backup.remove = lambda *a: (_ for _ in ()).throw(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        make(backup, {"hbase": store}, []).drain(["hbase"])
    assert len(store.rows) == 5 and backup.size() == 5
    backup.remove = original_remove
    make(backup, {"hbase": store}, []).drain(["hbase"])
    make(backup, {"hbase": store}, []).drain(["hbase"])
    assert len(store.rows) == 5 and backup.size() == 0


def test_store_down_is_retried_then_left_in_the_backup():
    backup = FakeBackup(entries(4))
    store = FakeStore(down_for=100)
    result = make(backup, {"hbase": store}, [], connection_retries=2).drain(["hbase"])
    assert store.calls == 3  # one try and two retries, then stop: no storm
    assert backup.size() == 4
    assert "unreachable" in result.stores["hbase"].stopped
    assert backup.failures and backup.failures[0][:2] == ("hbase", 4)


def test_transient_error_recovers_within_retries():
    backup = FakeBackup(entries(4))
    store = FakeStore(down_for=1)
    result = make(backup, {"hbase": store}, [], connection_retries=2).drain(["hbase"])
    assert result.landed == 4 and backup.size() == 0


def test_content_rejection_goes_to_quarantine_with_reason_and_the_rest_lands():
    items = entries(6, store="postgres")
    bad = Entry(str(uuid.UUID(int=999)), "postgres", message(998, amount="99999.99"), items[0].first_attempt_at)
    unreadable = Entry(str(uuid.UUID(int=1000)), "postgres", b"{not json", items[0].first_attempt_at)
    backup = FakeBackup(items + [bad, unreadable])
    store = FakeStore(reject_amount="99999.99")
    quarantined = []
    result = make(backup, {"postgres": store}, quarantined).drain(["postgres"])
    assert backup.size() == 0
    assert len(store.rows) == 6
    reasons = {e.payment_id: reason for e, reason in quarantined}
    assert set(reasons) == {bad.payment_id, unreadable.payment_id}
    assert "numeric field overflow" in reasons[bad.payment_id]
    assert "unreadable" in reasons[unreadable.payment_id]
    assert result.as_metadata()["quarantined_postgres"] == 2


def test_rate_bound_sleeps_between_batches():
    backup = FakeBackup(entries(10))
    slept = []
    replayer = Replayer(backup, {"hbase": FakeStore().write}, lambda r: 0,
                        ReplaySettings(batch_size=2, max_rate_per_s=1.0), sleep=slept.append,
                        clock=lambda: 0.0)
    replayer.drain(["hbase"])
    assert slept == [2.0, 4.0, 6.0, 8.0, 10.0]


def test_max_payments_per_run():
    backup = FakeBackup(entries(10))
    result = make(backup, {"hbase": FakeStore()}, [], batch_size=3, max_payments=5).drain(["hbase"])
    assert result.landed == 5 and backup.size() == 5


def test_replay_and_ingestion_share_one_classification():
    import happybase  # noqa: F401 - loads its Thrift IDL as the Hbase_thrift module
    import Hbase_thrift
    from thriftpy2.transport import TTransportException

    from payment_platform.ingestion import loader
    from payment_platform.replay import replayer
    from payment_platform.stores import refusals

    assert loader.is_outage is replayer.is_outage is refusals.is_outage
    refused = [psycopg2.DataError("x"), psycopg2.ProgrammingError("relation does not exist"),
               Hbase_thrift.IOError(message="NoSuchColumnFamilyException: nosuchfamily"),
               Hbase_thrift.IOError(message="TableNotEnabledException: payments is disabled."),
               Hbase_thrift.IllegalArgument(message="bad"), UnicodeEncodeError("utf-8", "x", 0, 1, "surrogate"),
               KeyError("beneficiary")]
    from devstack.hbase_gateway import handler, storage

    down = [psycopg2.OperationalError("x"), ConnectionRefusedError(), TimeoutError(), TTransportException(),
            Hbase_thrift.IOError(message=storage.SHUTTING_DOWN.encode()),  # the embedded gateway's own words
            Hbase_thrift.IOError(message=f"{handler.STORE_CANNOT_WRITE}: database is locked".encode()),
            Hbase_thrift.IOError(message="org.apache.hadoop.hbase.NotServingRegionException: payments,,1"),
            Hbase_thrift.IOError(message="SpaceLimitingException: Puts are disallowed due to a space quota.")]
    assert [refusals.is_refusal(e) for e in refused] == [True] * len(refused)
    assert [refusals.is_outage(e) for e in down] == [True] * len(down)


def never_called():
    raise AssertionError("the write probe is only asked when nothing else proves the store takes writes")


def test_a_payment_refused_alone_beside_accepted_ones_is_quarantined_without_probing():
    items = entries(5, store="hbase")
    bad = Entry(str(uuid.UUID(int=999)), "hbase", message(998, amount="99999.99"), items[2].first_attempt_at)
    backup = FakeBackup(items + [bad])
    quarantined = []
    result = make(backup, {"hbase": FakeStore(reject_amount="99999.99")}, quarantined,
                  probes={"hbase": never_called}).drain(["hbase"])
    assert [e.payment_id for e, _ in quarantined] == [bad.payment_id] and "numeric field overflow" in quarantined[0][1]
    assert result.stores["hbase"].landed == 5 and backup.size() == 0 and not result.stores["hbase"].stopped


def test_a_payment_refused_alone_in_the_backup_is_quarantined_when_the_write_probe_passes():
    bad = Entry(str(uuid.UUID(int=999)), "hbase", message(998, amount="99999.99"), datetime(2026, 11, 24))
    backup = FakeBackup([bad])
    quarantined, probed = [], []
    result = make(backup, {"hbase": FakeStore(reject_amount="99999.99")}, quarantined,
                  probes={"hbase": lambda: probed.append(1)}).drain(["hbase"])
    assert probed == [1] and [e.payment_id for e, _ in quarantined] == [bad.payment_id]
    assert backup.size() == 0 and result.stores["hbase"].quarantined == 1 and not result.stores["hbase"].stopped


def test_a_payment_refused_alone_stays_in_the_backup_when_the_write_probe_is_refused_too():
    bad = Entry(str(uuid.UUID(int=999)), "hbase", message(998, amount="99999.99"), datetime(2026, 11, 24),
                position=KafkaPosition("payments", 0, 41))
    backup = FakeBackup([bad])
    quarantined = []

    def table_disabled():
        raise psycopg2.ProgrammingError("permission denied for table payments")
    result = make(backup, {"hbase": FakeStore(reject_amount="99999.99")}, quarantined,
                  probes={"hbase": table_disabled}).drain(["hbase"])
    assert quarantined == [] and backup.size() == 1
    outcome = result.stores["hbase"]
    assert outcome.refused_unproven == [bad.payment_id] and result.as_metadata()["refused_unproven_hbase"] == [
        bad.payment_id]
    for text in (bad.payment_id, "payments[0]@41", "DataError: numeric field overflow", "no proof hbase takes writes",
                 "refused its write probe too: ProgrammingError: permission denied"):
        assert text in outcome.stopped, (text, outcome.stopped)
    [(store, count, error)] = backup.failures  # the entry's last error says why it waits
    assert (store, count) == ("hbase", 1) and "not quarantined: no proof hbase takes writes" in error
    assert "numeric field overflow" in error and "permission denied" in error


def test_a_store_refusing_every_payment_quarantines_none_even_if_its_probe_passes():
    backup = FakeBackup(entries(40, store="postgres"))
    store = FakeStore(reject_amount="10.00")  # every payment
    quarantined = []
    result = make(backup, {"postgres": store}, quarantined, probes={"postgres": never_called},
                  batch_size=20).drain(["postgres"])
    assert quarantined == [] and backup.size() == 40
    assert "refused 8 payments one by one and accepted none" in result.stores["postgres"].stopped
    assert len(result.stores["postgres"].refused_unproven) == 8
    assert store.calls < 40  # it stopped bisecting: no write per payment of the backlog


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(max_rate_per_s=0), dict(connection_retries=-1)])
def test_bad_settings(bad):
    with pytest.raises(ValueError):
        ReplaySettings(**bad)


def test_a_store_back_empty_gets_its_schema_before_the_first_write():
    backup = FakeBackup(entries(3))
    store = FakeStore()
    calls = []
    replayer = make(backup, {"hbase": store}, [])
    replayer.prepare = {"hbase": lambda: calls.append("schema")}
    replayer.writers["hbase"] = lambda recs: calls.append("write") or store.write(recs)
    replayer.drain(["hbase"])
    assert calls == ["schema", "write"] and backup.size() == 0


def test_schema_that_cannot_be_created_leaves_the_backup_untouched():
    backup = FakeBackup(entries(3))

    def refuse():
        raise ConnectionRefusedError("down")
    replayer = make(backup, {"hbase": FakeStore()}, [], connection_retries=1)
    replayer.prepare = {"hbase": refuse}
    result = replayer.drain(["hbase"])
    assert backup.size() == 3 and "schema not ready" in result.stores["hbase"].stopped


# -- a quarantined payment lands nowhere (the real stores: test_replay_quarantine.py) -----------------------------

TAKES_WRITES = {"postgres": lambda: None}  # the store's write probe passes


class FindingBackup(FakeBackup):
    def find(self, payment_id, store):
        return next((e for e in self.entries if e.payment_id == payment_id and e.store == store), None)


def test_quarantine_then_take_back_then_forget_then_drop_the_backup_entry_in_that_order():
    bad = Entry(str(uuid.UUID(int=7)), "postgres", message(6, amount="99999.99"),
                datetime(2026, 11, 24, tzinfo=timezone.utc), position=KafkaPosition("topic", 0, 6))
    same_message = Entry(bad.payment_id, "hbase", bad.raw, bad.first_attempt_at, position=KafkaPosition("topic", 0, 6))
    other_message = Entry(str(uuid.UUID(int=8)), "hbase", message(7, amount="99999.99"), bad.first_attempt_at,
                          position=KafkaPosition("topic", 0, 9))
    backup = FindingBackup([bad, same_message, other_message])
    steps = []
    replayer = Replayer(backup, {"postgres": FakeStore(reject_amount="99999.99").write},
                        lambda rejected: steps.append(("quarantine", [e.payment_id for e, _ in rejected])) or 1,
                        ReplaySettings(retry_backoff_s=0), sleep=lambda s: None, probes=TAKES_WRITES,
                        removers={"hbase": lambda records: steps.append(("remove hbase", len(records))) or 1,
                                  "postgres": lambda records: steps.append(("remove postgres", len(records)))},
                        forget_landed=lambda ids: steps.append(("forget", list(ids))))
    backup_remove = backup.remove
    backup.remove = lambda pid, store: steps.append(("drop", store)) or backup_remove(pid, store)

    result = replayer.drain(["postgres"])

    assert steps == [("quarantine", [bad.payment_id]), ("remove hbase", 1), ("drop", "hbase"),
                     ("forget", [bad.payment_id]), ("drop", "postgres")]
    assert [e.position.offset for e in backup.entries] == [9]  # another message's backup entry stays
    assert result.stores["postgres"].removed_elsewhere == {"hbase": 2}  # its row and its backup entry
    assert result.as_metadata()["quarantined_postgres_removed_from_hbase"] == 2


def test_redis_failing_to_forget_does_not_stop_the_quarantine():
    bad = Entry(str(uuid.UUID(int=7)), "postgres", message(6, amount="99999.99"),
                datetime(2026, 11, 24, tzinfo=timezone.utc))
    backup = FindingBackup([bad])

    def redis_down(ids):
        raise ConnectionError("redis down")
    replayer = Replayer(backup, {"postgres": FakeStore(reject_amount="99999.99").write}, lambda rejected: 1,
                        ReplaySettings(retry_backoff_s=0), sleep=lambda s: None, forget_landed=redis_down,
                        probes=TAKES_WRITES)
    result = replayer.drain(["postgres"])
    assert result.stores["postgres"].quarantined == 1 and backup.size() == 0 and not result.stores["postgres"].stopped


def test_another_store_unreachable_keeps_the_payment_in_the_backup():
    bad = Entry(str(uuid.UUID(int=7)), "postgres", message(6, amount="99999.99"),
                datetime(2026, 11, 24, tzinfo=timezone.utc), position=KafkaPosition("topic", 0, 6))
    backup = FindingBackup([bad])
    quarantined = []

    def hbase_down(records):
        raise ConnectionRefusedError("hbase down")
    replayer = Replayer(backup, {"postgres": FakeStore(reject_amount="99999.99").write},
                        lambda rejected: quarantined.extend(rejected) or 1,
                        ReplaySettings(retry_backoff_s=0, connection_retries=1), sleep=lambda s: None,
                        removers={"hbase": hbase_down}, probes=TAKES_WRITES)
    result = replayer.drain(["postgres"])
    assert len(quarantined) == 1 and backup.size() == 1
    assert "could not be taken back out of the other stores" in result.stores["postgres"].stopped
