"""End to end: a full card number (PAN) in a card field, a name or a remittance text never shows again, through any
path: the API (lookup, listings, quarantine, backup), the stores (HBase cells, Postgres rows, the backup in MongoDB
and in files), the log lines and the run metadata. Rows stored before redaction existed are migrated, once."""
from __future__ import annotations

import json
import logging
import uuid

import psycopg2
import pytest

from payment_platform.config import pan_hash_key_from_env
from payment_platform.domain.redaction import fingerprint
from payment_platform.serving.api import create_app
from payment_platform.stores import kafka
from payment_platform.stores.backup import FailedPaymentBackup
from payment_platform.stores.postgres import QuarantineEntry
from payment_platform.stores.records import KafkaPosition

from ..test_loader.conftest import free_port
from ..test_stores.payments import payment_doc, raw
from .conftest import ApiServer, Served

pytestmark = pytest.mark.stack

PANS = {"card": "4111111111111111", "name": "5555555555554444", "remittance": "378282246310005",
        "spaced": "6011 0009 9013 9424", "down": "4012888888881881"}


def digits(pan: str) -> str:
    return pan.replace(" ", "")


def leaks(text: str) -> list[str]:
    """The PANs (any of them, with or without separators) found in `text`."""
    flat = text.replace(" ", "").replace("-", "")
    return [name for name, pan in PANS.items() if digits(pan) in flat]


@pytest.fixture
def slice_(stack, tmp_path):
    namespace = f"r{uuid.uuid4().hex[:10]}"
    topic = f"test-serving-{namespace}"
    kafka.ensure_topic(stack.endpoints.kafka, topic, partitions=1)
    return Served(stack, namespace, topic, [], 0, tmp_path / "failed_payments")


def every_postgres_text(served: Served) -> str:
    with psycopg2.connect(served.stack.endpoints.postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (served.namespace,))
        text = []
        for (table,) in cur.fetchall():
            cur.execute(f'SELECT * FROM {served.namespace}."{table}"')
            text += [bytes(v).decode("utf-8", "replace") if isinstance(v, memoryview) else str(v)
                     for row in cur.fetchall() for v in row]
        return "\n".join(text)


def every_hbase_cell(served: Served) -> str:
    hbase = served.hbase()
    connection = hbase.connection()
    text = []
    for table in connection.tables():
        if table.decode().startswith(served.namespace):
            for key, cells in connection.table(table.decode()[len(served.namespace) + 1:]).scan():
                text += [key.decode("utf-8", "replace")] + [v.decode("utf-8", "replace") for v in cells.values()]
    return "\n".join(text)


def every_backup_entry(backup: FailedPaymentBackup) -> str:
    docs = [json.dumps(d, default=str) for d in backup._collection().find({})]
    files = [p.read_text() for p in backup._files()]
    return "\n".join(docs + files)


def test_a_pan_never_shows_again_through_any_path(slice_, caplog):
    card = payment_doc(1, slice_.namespace)
    card["payment_type"] = "CARD"
    card["beneficiary"].update(card_token=PANS["card"], card_bin="411111", card_last4="1111")  # quarantined
    named = payment_doc(2, slice_.namespace)
    named["originator"]["name"] = f"Acme card {PANS['name']} Ltd"
    remitted = payment_doc(4, slice_.namespace)
    remitted["remittance_info"] = f"refund to card {PANS['remittance']} / {PANS['spaced']}"
    malformed = f'{{"payment_id": "broken", "pan": "{PANS["card"]}", '.encode()
    caplog.set_level(logging.INFO)  # every line the platform writes (drivers log payloads only at DEBUG)
    result = slice_.ingest([raw(card), raw(named), raw(remitted), malformed])
    assert result.quarantined == 2 and result.written["postgres"] == 2

    # an HBase outage: the remittance payment goes to the backup (MongoDB), then to the folder with Mongo down too
    down = payment_doc(6, slice_.namespace)
    down["remittance_info"] = f"card {PANS['down']}"
    dead = slice_.hbase(port=free_port(), timeout_ms=500)
    slice_.ingest([raw(down)], hbase=dead)
    folder_only = FailedPaymentBackup(f"mongodb://127.0.0.1:{free_port()}", slice_.fallback_dir,
                                      database=slice_.namespace, timeout_ms=300)
    later = payment_doc(8, slice_.namespace)
    later["beneficiary"]["name"] = f"Globex {PANS['down']}"
    slice_.ingest([raw(later)], hbase=dead, backup=folder_only)
    assert slice_.backup().size("hbase") == 2 and list(slice_.fallback_dir.glob("*.json"))

    seen = []
    with ApiServer(create_app(slice_.queries)) as api:
        for doc in (named, remitted, down, later):
            status, _, body = api.get(f"/payments/{doc['payment_id']}")
            assert status == 200
            seen.append(json.dumps(body))
        seen += [json.dumps(api.get("/payments", {"originator_id": d["originator"]["party_id"]})[2])
                 for d in (named, remitted)]
        seen.append(json.dumps(api.get("/payments", {"created_from": "2026-11-24", "limit": 1000})[2]))
        quarantine = api.get("/quarantine")[2]
        seen += [json.dumps(quarantine), json.dumps(api.get("/backup")[2])]
    everywhere = {"api": "\n".join(seen), "postgres": every_postgres_text(slice_), "hbase": every_hbase_cell(slice_),
                  "backup": every_backup_entry(slice_.backup()), "logs": caplog.text,
                  "metadata": json.dumps(result.as_metadata())}
    assert {where: leaks(text) for where, text in everywhere.items()} == dict.fromkeys(everywhere, [])

    # redacted, not dropped: the payments landed with a fingerprint an operator can match to a report
    key = pan_hash_key_from_env()
    assert f"Acme card [PAN REDACTED hmac:{fingerprint(PANS['name'], key)}] Ltd" in everywhere["api"]
    assert fingerprint(PANS["spaced"], key) in everywhere["postgres"]
    assert fingerprint(PANS["card"], key) in json.dumps(quarantine)
    assert named["originator"]["account_number"] in everywhere["api"]  # the rail's identifiers stay intact


def test_rows_stored_before_redaction_are_migrated_once(slice_):
    ledger, backup = slice_.postgres(), slice_.backup()
    ledger.ensure_schema()
    # as an older version stored them: raw PANs in the quarantine table and in the backup (Mongo and a file)
    position = KafkaPosition(slice_.topic, 0, 7)
    with psycopg2.connect(slice_.stack.endpoints.postgres) as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO {slice_.namespace}.payments_quarantine (kafka_topic, kafka_partition, kafka_offset, "
                    f"raw, reason, pan_redacted) VALUES (%s, 0, 7, %s, %s, false)",
                    (slice_.topic, f'{{"pan": "{PANS["card"]}"}}'.encode(), f"card_bin got {PANS['card']!r}"))
    old = payment_doc(3, slice_.namespace)
    old["remittance_info"] = f"card {PANS['remittance']}"
    backup._collection().insert_one({"payment_id": old["payment_id"], "store": "hbase", "raw": json.dumps(old),
                                     "document": old, "error": f"refused {PANS['remittance']}", "attempts": 1,
                                     "first_attempt_at": "2026-11-24T00:00:00+00:00",
                                     "last_attempt_at": "2026-11-24T00:00:00+00:00"})
    slice_.fallback_dir.mkdir(parents=True, exist_ok=True)
    (slice_.fallback_dir / f"postgres__{old['payment_id']}.json").write_text(json.dumps({
        "payment_id": old["payment_id"], "store": "postgres", "payment": old, "raw": json.dumps(old),
        "error": "down", "attempts": 1, "first_attempt_at": "2026-11-24T00:00:00+00:00",
        "last_attempt_at": "2026-11-24T00:00:00+00:00", "kafka": None}))
    assert leaks(every_postgres_text(slice_)) == ["card"] and leaks(every_backup_entry(backup)) == ["remittance"]

    # the migration is run by ensure_schema (as every ingestion and the sensor call it)
    ledger.ensure_schema()
    backup.ensure_schema()
    assert leaks(every_postgres_text(slice_)) == [] and leaks(every_backup_entry(backup)) == []
    assert fingerprint(PANS["card"], pan_hash_key_from_env()) in every_postgres_text(slice_)
    # idempotent: nothing left to change when run again
    assert ledger.redact_quarantine() == {"examined": 0, "redacted": 0}
    assert backup.redact_stored() == {"mongo": 0, "files": 0}
    # still whole: the migrated backup entries replay as payments, the quarantine row keeps its position
    for store in ("hbase", "postgres"):
        assert backup.find(old["payment_id"], store).record().payment.payment_id == old["payment_id"]
    assert ledger.quarantine([QuarantineEntry(raw=b"again", position=position, reason="dup")]) == 0


def test_the_quarantine_migration_goes_batch_by_batch(slice_):
    ledger = slice_.postgres()
    ledger.ensure_schema()
    with psycopg2.connect(slice_.stack.endpoints.postgres) as conn, conn.cursor() as cur:
        for offset in range(5):
            cur.execute(f"INSERT INTO {slice_.namespace}.payments_quarantine (kafka_topic, kafka_partition, "
                        f"kafka_offset, raw, reason, pan_redacted) VALUES (%s, 0, %s, %s, 'r', false)",
                        (slice_.topic, offset, f"pan {PANS['card']}".encode() if offset % 2 else b"clean"))
    assert ledger.redact_quarantine(batch_size=2, max_batches=1) == {"examined": 2, "redacted": 1}
    assert ledger.redact_quarantine(batch_size=2) == {"examined": 3, "redacted": 1}
    assert leaks(every_postgres_text(slice_)) == []


def test_an_operator_computes_the_marker_of_a_reported_number(monkeypatch, capsys):
    import io

    from payment_platform.cli import main

    monkeypatch.setenv("PAN_HASH_KEY", "ab" * 32)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PANS['spaced']}\n\n1234\n"))
    assert main(["query", "pan-fingerprint"]) == 2  # one line was no card number
    out, err = capsys.readouterr()
    assert out.strip() == f"[PAN REDACTED hmac:{fingerprint(PANS['spaced'], bytes([0xAB]) * 32)}]"
    assert "line 3: not a card number" in err and PANS["spaced"] not in out + err
