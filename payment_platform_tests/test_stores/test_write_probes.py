"""The stores' write probes (`probe_writes`): replay's proof that a table takes writes when a lone payment was
refused and nothing else was accepted. A probe passes on a table that takes writes and changes nothing in it; it
fails, with the server's error sorted as a refusal (`stores.refusals`), when the table refuses every write."""
import psycopg2
import pytest
from psycopg2 import sql

from payment_platform.domain.rowkeys import PAYMENTS_BY_ID_TABLE, PAYMENTS_TABLE
from payment_platform.stores.refusals import is_refusal

from .payments import record

pytestmark = pytest.mark.stack


def hbase_rows(store) -> dict[str, list]:
    return {table: list(store.table(table).scan()) for table in (PAYMENTS_TABLE, PAYMENTS_BY_ID_TABLE)}


def test_the_hbase_probe_passes_on_tables_that_take_writes_and_leaves_every_row_as_it_was(hbase_store):
    hbase_store.write_payments([record(i) for i in range(3)])
    before = hbase_rows(hbase_store)
    for _ in range(2):  # twice: the first probe left nothing a second one could find
        hbase_store.probe_writes()
    assert hbase_rows(hbase_store) == before and len(before[PAYMENTS_TABLE]) == 3


def test_the_hbase_probe_fails_when_a_table_refuses_writes(hbase_store):
    connection = hbase_store.connection()
    connection.disable_table(PAYMENTS_BY_ID_TABLE)  # any of the four tables a payment is written to
    try:
        with pytest.raises(Exception) as refused:
            hbase_store.probe_writes()
    finally:
        hbase_store.connection().enable_table(PAYMENTS_BY_ID_TABLE)
    assert "TableNotEnabledException" in str(refused.value) and is_refusal(refused.value)
    hbase_store.probe_writes()  # enabled again: it passes


def test_the_postgres_probe_passes_and_commits_nothing(ledger):
    ledger.write_payments([record(i) for i in range(3)])
    ledger.probe_writes()
    ledger.probe_writes()
    assert ledger.count_payments() == 3
    assert ledger.write_payments([record(3)]) == 1  # the connection is usable after the rollback


def test_the_postgres_probe_fails_when_the_table_refuses_inserts(ledger):
    def work(cur):  # a table that refuses every insert, whoever the user is (a superuser ignores a REVOKE)
        cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT refuses_everything CHECK (false) NOT VALID").format(
            ledger._t("payments")))
    ledger._run(work)
    with pytest.raises(psycopg2.Error) as refused:
        ledger.probe_writes()
    assert isinstance(refused.value, psycopg2.errors.CheckViolation) and is_refusal(refused.value)
    assert ledger.count_payments() == 0
