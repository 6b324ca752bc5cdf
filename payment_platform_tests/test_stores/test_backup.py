"""FailedPaymentBackup against the embedded MongoDB, and its local-folder fallback."""
import json
import os

import pytest

from payment_platform.stores.backup import BackupUnavailable, FailedPaymentBackup

from .payments import record

pytestmark = pytest.mark.stack


def test_mongo_round_trip_oldest_first(backup):
    first, second = [record(i) for i in range(3)], [record(i) for i in range(3, 5)]
    assert backup.record_failures("hbase", first, "hbase down") == {"mongo": 3, "files": 0}
    assert backup.record_failures("postgres", second, "pg down") == {"mongo": 2, "files": 0}
    assert backup.size() == 5 and backup.size("hbase") == 3
    listed = backup.list_oldest(10)
    assert [e.payment_id for e in listed[:3]] == [r.payment_id for r in first] or \
        {e.payment_id for e in listed[:3]} == {r.payment_id for r in first}
    entry = next(e for e in listed if e.payment_id == first[0].payment_id)
    assert entry.store == "hbase" and entry.error == "hbase down" and entry.attempts == 1
    assert entry.raw == first[0].raw and entry.position == first[0].position and entry.location == "mongo"
    assert entry.record().payment == first[0].payment
    assert backup.oldest_age_seconds() >= 0
    assert backup.stored_ids("hbase", [r.payment_id for r in first + second]) == {r.payment_id for r in first}


def test_same_payment_and_store_is_kept_once_with_attempts(backup):
    r = record(7)
    backup.record_failures("hbase", [r], "first error")
    backup.record_failures("hbase", [r], "second error")
    backup.record_failures("postgres", [r], "pg error")
    [entry] = backup.list_oldest(10, store="hbase")
    assert entry.attempts == 2 and entry.error == "second error" and entry.last_attempt_at >= entry.first_attempt_at
    assert backup.size() == 2
    assert backup.remove(r.payment_id, "hbase") is True
    assert backup.remove(r.payment_id, "hbase") is False
    assert backup.size("hbase") == 0 and backup.size("postgres") == 1


def test_folder_fallback_when_mongo_is_unreachable(tmp_path, unused_port):
    backup = FailedPaymentBackup(f"mongodb://127.0.0.1:{unused_port}/", tmp_path / "fp", timeout_ms=300)
    r1, r2 = record(1), record(2)
    assert backup.record_failures("postgres", [r1, r2], "pg down") == {"mongo": 0, "files": 2}
    backup.record_failures("postgres", [r1], "pg still down")
    files = sorted(os.listdir(tmp_path / "fp"))
    assert files == sorted(f"postgres__{r.payment_id}.json" for r in (r1, r2))  # no temp files left behind
    body = json.loads((tmp_path / "fp" / f"postgres__{r1.payment_id}.json").read_text())
    assert body["payment"] == r1.payment.doc and body["attempts"] == 2 and body["error"] == "pg still down"
    assert body["kafka"] == {"topic": "t", "partition": 0, "offset": 1}
    listed = backup.list_oldest(10)
    assert [e.location for e in listed] == ["file", "file"] and backup.size() == 2
    assert backup.stored_ids("postgres", [r1.payment_id, "x"]) == {r1.payment_id}
    assert backup.health()["mongo"].startswith("error")
    assert backup.remove(r1.payment_id, "postgres") and backup.size() == 1


def test_latest_failure_from_the_folder_is_the_newest_attempt(tmp_path, unused_port):
    backup = FailedPaymentBackup(f"mongodb://127.0.0.1:{unused_port}/", tmp_path / "fp", timeout_ms=300)
    r1, r2, r3 = record(1), record(2), record(3)
    assert backup.latest_failure() is None
    backup.record_failures("postgres", [r1, r2], "pg down")
    backup.record_failures("hbase", [r3], "hbase down")
    backup.record_failures("postgres", [r1], "pg refused it")  # r1's file rewritten last
    latest = backup.latest_failure()
    assert (latest.payment_id, latest.store, latest.attempts, latest.error) == (r1.payment_id, "postgres", 2,
                                                                                 "pg refused it")
    assert backup.stats()["latest_failure"]["payment_id"] == r1.payment_id


def test_unavailable_when_mongo_and_folder_both_fail(tmp_path, unused_port):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be")
    backup = FailedPaymentBackup(f"mongodb://127.0.0.1:{unused_port}/", blocker / "fp", timeout_ms=300)
    with pytest.raises(BackupUnavailable, match="not-a-dir"):
        backup.record_failures("hbase", [record(1)], "hbase down")
    with pytest.raises(BackupUnavailable):
        backup.health()


def test_health_and_schema(backup):
    backup.ensure_schema()
    assert backup.health()["mongo"] == "ok"


def test_fallback_dir_setting_order():
    from pathlib import Path

    from payment_platform.stores.backup import default_fallback_dir
    assert default_fallback_dir({"FAILED_PAYMENTS_DIR": "/x/fp", "PAYMENT_PLATFORM_DATA_DIR": "/d"}) == Path("/x/fp")
    assert default_fallback_dir({"PAYMENT_PLATFORM_DATA_DIR": "/d"}) == Path("/d/failed_payments")
    assert default_fallback_dir({}) == Path("failed_payments")
