"""The demo's accounting: every generated message is in both stores, in the backup for a store it missed,
in quarantine, or a deliberate duplicate; anything else is unaccounted and fails the demo (unit tests with
hand-written fake stores)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from devstack.demo import flow as demo_flow
from devstack.demo.accounting import account


@dataclass(frozen=True)
class Msg:
    payment_id: str
    value: bytes


class FakeStore:
    def __init__(self, ids=()):
        self.ids = set(ids)

    def existing_ids(self, ids):
        return {i for i in ids if i in self.ids}

    def close(self):
        pass


class FakeLedger(FakeStore):
    def __init__(self, ids=(), quarantined=()):
        super().__init__(ids)
        self.rows = [{"raw": raw} for raw in quarantined]

    def count_quarantine(self):
        return len(self.rows)

    def quarantined(self, limit=100):
        return self.rows[:limit]


class FakeBackup(FakeStore):
    def __init__(self, by_store=None):
        super().__init__()
        self.by_store = by_store or {}

    def stored_ids(self, store, ids):
        return {i for i in ids if i in self.by_store.get(store, set())}


def batch(n):
    return [Msg(str(uuid.UUID(int=i + 1)), f"payment {i}".encode()) for i in range(n)]


def test_everything_landed():
    messages = batch(5)
    ids = [m.payment_id for m in messages]
    result = account(messages, 5, FakeStore(ids), FakeLedger(ids), FakeBackup())
    assert (result.hbase, result.postgres, result.unaccounted, result.backed_up) == (5, 5, 0, 0)
    assert result.complete


def test_quarantined_backed_up_and_duplicates_are_accounted_for():
    messages = batch(6)
    bad = Msg("not-a-uuid", b"{truncated")
    dup = Msg(messages[0].payment_id, b"another payment reusing an id")
    messages = messages + [bad, dup]
    ids = [m.payment_id for m in messages[:6]]
    hbase = FakeStore(ids[:5])  # the 6th missed HBase ...
    backup = FakeBackup({"hbase": {ids[5]}})  # ... and is in the backup for HBase
    result = account(messages, 8, hbase, FakeLedger(ids, quarantined=[bad.value]), backup)
    assert result.as_summary() == {"generated": 8, "published": 8, "hbase": 5, "postgres": 6, "backed_up": 1,
                                   "quarantined": 1, "duplicates": 1, "unaccounted": 0, "unaccounted_sample": []}
    assert result.complete


def test_a_payment_found_nowhere_is_unaccounted_and_named():
    messages = batch(3)
    ids = [m.payment_id for m in messages]
    result = account(messages, 3, FakeStore(ids[:2]), FakeLedger(ids), FakeBackup())
    assert result.unaccounted == 1 and result.unaccounted_sample == [ids[2]]
    assert not result.complete


def test_unpublished_messages_make_the_accounting_incomplete():
    messages = batch(2)
    ids = [m.payment_id for m in messages]
    assert not account(messages, 1, FakeStore(ids), FakeLedger(ids), FakeBackup()).complete


def test_the_wait_step_fails_the_demo_when_something_stays_unaccounted(monkeypatch):
    messages = batch(2)
    ids = [m.payment_id for m in messages]

    class Daemon:
        log_path = "daemon.log"

        def check(self):
            pass

    class Run:
        options = type("Options", (), {"count": 2})()
        summary: dict = {}

    run = Run()
    run.messages, run.published, run.published_at, run.daemon = messages, 2, 0.0, Daemon()
    monkeypatch.setattr(demo_flow, "_stores", lambda run: (FakeStore(ids[:1]), FakeLedger(ids), FakeBackup()))
    with pytest.raises(RuntimeError, match="1 of 2 generated payments unaccounted"):
        demo_flow.wait_for_ingestion(run, timeout_s=0)
    assert run.summary["unaccounted"] == 1


def test_the_demo_batch_is_exactly_what_payment_platform_generate_writes(tmp_path):
    from payment_platform.cli import main

    out = tmp_path / "batch.jsonl"
    assert main(["generate", "--count", "120", "--seed", "42", "--bad-fraction", str(demo_flow.DEMO_BAD_FRACTION),
                 "--output", str(out)]) == 0
    demo_batch = demo_flow.demo_batch(120, 42)  # what publish_demo_batch publishes
    assert out.read_bytes() == b"".join(m.value + b"\n" for m in demo_batch)
    assert any(m.defect for m in demo_batch)  # the demo really carries some labelled bad records
