"""Poison messages (docs/architecture.md, guarantee 6): a payment that passed validation but that a store refuses is
isolated by bisection and quarantined with the store's error, alone; the rest of its range lands once, the range's
progress moves on. A store that is down is an outage (backup), never a poison message.

Each store's write path is broken for one payment id in a way validation did not foresee, through the store
module's row conversion (monkeypatched): HBase's row cannot be built, HBase's server refuses the row, Postgres's
server refuses the row, Postgres's row cannot be built."""
from __future__ import annotations

import pytest

from payment_platform.stores import hbase as hbase_module
from payment_platform.stores import postgres as postgres_module

from ..test_stores.payments import payment_doc, raw
from .conftest import free_port

pytestmark = pytest.mark.stack

COUNT = 40


def publish_payments(lane, count=COUNT):
    docs = [payment_doc(i, lane.namespace) for i in range(count)]
    rng = lane.publish([raw(d) for d in docs])
    return rng, [d["payment_id"] for d in docs]


def break_hbase_conversion(monkeypatch, poison: set[str]):
    real = hbase_module.payment_cells

    def cells(record):
        if record.payment_id in poison:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real(record)
    monkeypatch.setattr(hbase_module, "payment_cells", cells)


def break_hbase_server(monkeypatch, poison: set[str]):
    """A cell in a column family the table does not have: the server refuses the row (IOError)."""
    real = hbase_module.payment_cells

    def cells(record):
        out = real(record)
        if record.payment_id in poison:
            out[b"nosuchfamily:x"] = b"1"
        return out
    monkeypatch.setattr(hbase_module, "payment_cells", cells)


def break_postgres_server(monkeypatch, poison: set[str]):
    """An amount Postgres's numeric cannot read: the server refuses the COPY (DataError)."""
    real = postgres_module.payment_csv_row

    def row(record):
        out = real(record)
        return (*out[:2], "12,50", *out[3:]) if record.payment_id in poison else out
    monkeypatch.setattr(postgres_module, "payment_csv_row", row)


def break_postgres_conversion(monkeypatch, poison: set[str]):
    real = postgres_module.payment_csv_row

    def row(record):
        if record.payment_id in poison:
            raise KeyError("beneficiary")
        return real(record)
    monkeypatch.setattr(postgres_module, "payment_csv_row", row)


@pytest.mark.parametrize("breaker,store,words", [
    (break_hbase_conversion, "hbase", "UnicodeEncodeError"),
    (break_hbase_server, "hbase", "IOError"),
    (break_postgres_server, "postgres", "numeric"),
    (break_postgres_conversion, "postgres", "KeyError"),
])
def test_a_payment_one_store_refuses_is_quarantined_alone_and_lands_nowhere(lane, monkeypatch, breaker, store,
                                                                              words):
    rng, ids = publish_payments(lane)
    poison = {ids[5], ids[21], ids[22]}  # in the first chunk, and two side by side in a later one
    breaker(monkeypatch, poison)
    ingestor = lane.ingestor()
    result = ingestor.ingest(rng, chunk_size=16)

    assert (result.quarantined, result.poison_isolated) == (3, 3)
    assert result.backed_up == {"hbase": 0, "postgres": 0} and ingestor.backup.size() == 0
    assert result.progress_recorded and lane.postgres().read_progress(lane.topic) == {0: rng.end}
    good = set(ids) - poison
    assert ingestor.postgres.existing_ids(ids) == good  # the other store gave the poison back too
    assert ingestor.hbase.existing_ids(ids) == good
    assert all(ingestor.hbase.get_payment(pid) is None for pid in poison)
    quarantined = {q["kafka_offset"]: q for q in ingestor.postgres.quarantined()}
    assert sorted(quarantined) == [rng.start + ids.index(pid) for pid in sorted(poison, key=ids.index)]
    for entry in quarantined.values():
        assert entry["payment_id"] in poison and store in entry["reason"].lower() and words in entry["reason"]
        assert entry["raw"] == raw(payment_doc(ids.index(entry["payment_id"]), lane.namespace))
    assert ingestor.redis.landed_ids(ids) == good

    again = lane.ingestor().ingest(rng, chunk_size=16)  # a re-run of the range changes nothing
    assert again.written == {"hbase": 0, "postgres": 0, "redis": 0} and not again.progress_recorded
    assert ingestor.postgres.count_quarantine() == 3 and ingestor.postgres.existing_ids(ids) == good
    assert ingestor.hbase.existing_ids(ids) == good


def test_a_store_refusing_every_payment_is_failing_itself_and_the_backup_takes_them(lane, monkeypatch):
    rng, ids = publish_payments(lane, 20)
    break_postgres_server(monkeypatch, set(ids))
    ingestor = lane.ingestor()
    result = ingestor.ingest(rng, chunk_size=10)
    assert (result.quarantined, result.poison_isolated) == (0, 0)
    assert result.backed_up == {"hbase": 0, "postgres": 20}
    assert ingestor.backup.stored_ids("postgres", ids) == set(ids) and ingestor.hbase.existing_ids(ids) == set(ids)


def test_an_outage_is_not_poison_it_goes_to_the_backup(lane):
    rng, ids = publish_payments(lane, 20)
    ingestor = lane.ingestor(hbase=lane.hbase(port=free_port()))
    result = ingestor.ingest(rng, chunk_size=10)
    assert (result.quarantined, result.poison_isolated) == (0, 0)
    assert result.backed_up == {"hbase": 20, "postgres": 0} and result.progress_recorded
    assert ingestor.backup.stored_ids("hbase", ids) == set(ids)
    assert ingestor.postgres.existing_ids(ids) == set(ids)


def test_poison_for_one_store_while_the_other_is_down_is_quarantined_not_backed_up(lane, monkeypatch):
    rng, ids = publish_payments(lane, 20)
    break_postgres_server(monkeypatch, {ids[3]})
    ingestor = lane.ingestor(hbase=lane.hbase(port=free_port()))
    result = ingestor.ingest(rng, chunk_size=10)
    assert (result.quarantined, result.poison_isolated) == (1, 1)
    assert result.backed_up == {"hbase": 19, "postgres": 0}
    assert ids[3] not in ingestor.backup.stored_ids("hbase", ids)
    assert ingestor.postgres.existing_ids(ids) == set(ids) - {ids[3]}


def test_a_surrogate_validation_now_refuses_never_reaches_a_store(lane):
    doc = payment_doc(3, lane.namespace)
    text = raw(doc).decode().replace(doc["beneficiary"]["name"], "\\ud800")
    rng = lane.publish([raw(payment_doc(i, lane.namespace)) for i in range(3)] + [text.encode()])
    result = lane.ingestor().ingest(rng)
    assert (result.quarantined, result.poison_isolated, result.written["hbase"]) == (1, 0, 3)
    [entry] = lane.postgres().quarantined()
    assert entry["field"] == "beneficiary.name" and "surrogate" in entry["reason"]


def overflowing_payment(i: int, namespace: str) -> bytes:
    """Valid for the schema and every rail rule, but an extra field holds a number with 200,001 digits: JSON
    allows it, HBase keeps the bytes, and Postgres's jsonb refuses it ("value overflows numeric format")."""
    doc = payment_doc(i, namespace)
    doc["note"] = "NUMBER"
    return raw(doc).replace(b'"NUMBER"', b"1e200000")


def test_a_real_refusal_by_postgres_is_isolated_without_any_patching(lane):
    values = [raw(payment_doc(i, lane.namespace)) for i in range(12)]
    values[7] = overflowing_payment(7, lane.namespace)
    rng = lane.publish(values)
    ingestor = lane.ingestor()
    result = ingestor.ingest(rng, chunk_size=5)
    assert (result.quarantined, result.poison_isolated, result.backed_up["postgres"]) == (1, 1, 0)
    [entry] = ingestor.postgres.quarantined()
    assert entry["kafka_offset"] == rng.start + 7 and entry["raw"] == values[7]
    assert "postgres refused it" in entry["reason"] and "numeric" in entry["reason"]
    poison = payment_doc(7, lane.namespace)["payment_id"]
    ids = [payment_doc(i, lane.namespace)["payment_id"] for i in range(12)]
    assert ingestor.hbase.existing_ids(ids) == ingestor.postgres.existing_ids(ids) == set(ids) - {poison}


def test_a_lone_refusal_with_no_proof_the_store_works_waits_in_the_backup(lane, monkeypatch):
    """One payment in its range, refused: nothing shows the store takes anything at all, so it is not called
    poison (a store refusing everything must not quarantine a live stream one message at a time)."""
    rng, ids = publish_payments(lane, 1)
    break_postgres_server(monkeypatch, set(ids))
    result = lane.ingestor().ingest(rng)
    assert (result.quarantined, result.backed_up["postgres"], result.written["hbase"]) == (0, 1, 1)
