"""HBaseStore against the embedded stack's HBase Thrift gateway (through happybase, as against real HBase)."""
import pytest

from payment_platform.domain.rowkeys import row_key, time_key, unsalted
from payment_platform.stores.hbase import HBaseStore, HBaseUnavailable

from .payments import record

pytestmark = pytest.mark.stack


def test_round_trip_by_payment_id(hbase_store):
    records = [record(i) for i in range(20)]
    assert hbase_store.write_payments(records) == 20
    assert hbase_store.existing_ids([r.payment_id for r in records] + ["not-there"]) == {r.payment_id for r in records}
    row = hbase_store.get_payment(records[3].payment_id)
    p = records[3].payment
    assert row["paymentId"] == p.payment_id and row["paymentType"] == p.payment_type
    assert row["amountValue"] == p.doc["amount"]["value"] and row["amountCurrency"] == p.currency
    assert row["originatorId"] == p.originator.party_id and row["beneficiaryName"] == p.beneficiary.name
    assert row["createdAt"].endswith("Z") and row["status"] == p.status and row["valueDate"] == p.value_date
    assert row["raw"] == records[3].raw
    assert row["kafkaPosition"] == "t:0:3"
    assert hbase_store.row_key_for(p.payment_id) == row_key(p, hbase_store.salt_buckets)  # the real key, salted or not
    assert hbase_store.get_payment("00000000-0000-4000-8000-000000000000") is None


def test_writes_are_idempotent(hbase_store):
    records = [record(i) for i in range(10)]
    hbase_store.write_payments(records)
    before = list(hbase_store.scan_payments())
    hbase_store.write_payments(records)
    assert list(hbase_store.scan_payments()) == before
    assert len(before) == 10 and hbase_store.count_index() == 10


def test_rows_are_time_ordered_and_prefix_scannable(hbase_store):
    records = [record(i) for i in range(12)]
    hbase_store.write_payments(list(reversed(records)))
    keys = [unsalted(key, hbase_store.salt_buckets) for key, _ in hbase_store.scan_payments()]  # any layout
    assert keys == sorted(time_key(r.payment) for r in records)
    first_second = keys[0][:14]
    in_second = [unsalted(k, hbase_store.salt_buckets) for k, _ in hbase_store.scan_payments(row_prefix=first_second)]
    assert in_second and all(k.startswith(first_second) for k in in_second)


def test_ensure_schema_is_idempotent_and_health_lists_tables(hbase_store):
    hbase_store.ensure_schema()
    hbase_store.ensure_schema()
    assert {"payments", "payments_by_id"} <= set(hbase_store.health()["tables"])


def test_unreachable_server_raises_quickly(unused_port):
    store = HBaseStore("127.0.0.1", unused_port, timeout_ms=1000, health_timeout_ms=1000)
    with pytest.raises(HBaseUnavailable, match=f"127.0.0.1:{unused_port}"):
        store.health()
    with pytest.raises(HBaseUnavailable):
        store.write_payments([record(1)])
