"""Check verdicts and settings (pure), and the SQL mirror of the rail rules against a real Postgres."""
import uuid
from decimal import Decimal

import pytest

from payment_platform.config import ConfigError
from payment_platform.defs.checks.settings import ChecksSettingsResource
from payment_platform.reconciliation import evaluate
from payment_platform.reconciliation.digest import make_record
from payment_platform.reconciliation.validity import rail_problem


def stats(size=0, age=None, hbase=0, postgres=0):
    return {"size": size, "by_store": {"hbase": hbase, "postgres": postgres}, "oldest_age_s": age, "mongo_error": None}


def test_backup_empty_passes():
    verdict = evaluate.backup_verdict(stats(), max_age_s=60)
    assert verdict.passed and verdict.metadata["backup_size"] == 0


def test_backup_holding_payments_warns_with_size_and_age():
    verdict = evaluate.backup_verdict(stats(5, 12.5, hbase=5), max_age_s=60)
    assert not verdict.passed and verdict.severity == evaluate.WARN
    assert verdict.metadata["backup_size"] == 5 and verdict.metadata["oldest_age_s"] == 12.5
    assert "5 payments" in verdict.description


def test_backup_past_max_age_is_an_error():
    verdict = evaluate.backup_verdict(stats(2, 61.0, postgres=2), max_age_s=60)
    assert not verdict.passed and verdict.severity == evaluate.ERROR
    assert "past the 60 s limit" in verdict.description


@pytest.mark.parametrize("quarantined,messages,passed", [(0, 0, True), (5, 100, True), (6, 100, False)])
def test_quarantine_rate(quarantined, messages, passed):
    verdict = evaluate.quarantine_verdict(quarantined, messages, max_rate=0.05, window_s=3600)
    assert verdict.passed is passed
    assert verdict.metadata["quarantine_rate"] == (quarantined / messages if messages else 0)


@pytest.mark.parametrize("setting,value", [("quarantine_max_rate", 1.5), ("window_days", 0),
                                           ("backup_max_age_seconds", 0), ("recent_ranges", 0)])
def test_bad_check_settings_name_the_setting(setting, value):
    with pytest.raises(ConfigError, match=f"checks_settings.{setting}"):
        ChecksSettingsResource(**{setting: value}).validated()


@pytest.mark.parametrize("rail,currency,amount,problem", [
    ("WIRE", "USD", "10.00", None), ("SEPA", "USD", "10.00", "not allowed on SEPA"),
    ("ACH", "USD", "-1.00", "must be positive"), ("ACH", "USD", "0", "must be positive"),
    ("WIRE", "JPY", "10.5", "more than 0 decimals"), ("RTP", "USD", "99999999.00", "over the RTP limit"),
    ("NOPE", "USD", "1.00", "unknown rail"), ("WIRE", "USD", "abc", "not a number")])
def test_rail_problem(rail, currency, amount, problem):
    found = rail_problem(make_record("x", rail, currency, amount))
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.stack
def test_sql_rail_rules_match_the_python_rules(stack):
    """`PostgresReader.invalid_for_rail` (SQL) flags exactly the rows `rail_problem` (Python) flags."""
    from payment_platform.reconciliation.compare import AllPayments
    from payment_platform.reconciliation.readers import PostgresReader
    from payment_platform.stores.postgres import PostgresLedger

    ledger = PostgresLedger(stack.endpoints.postgres, schema=f"v{uuid.uuid4().hex[:10]}")
    ledger.ensure_schema()
    cases = [("WIRE", "USD", "10.00"), ("SEPA", "USD", "10.00"), ("ACH", "USD", "-1.00"), ("WIRE", "JPY", "10.5"),
             ("RTP", "USD", "99999999.00"), ("RTP", "USD", "1000000.00"), ("SEPA", "EUR", "0.01"),
             ("CARD", "JPY", "100"), ("NOPE", "USD", "1.00"), ("WIRE", "KWD", "1.125"), ("ACH", "USD", "1000000.01")]
    rows = [(str(uuid.uuid4()), *case) for case in cases]
    connection = ledger.connection()
    with connection.cursor() as cur:
        for pid, rail, currency, amount in rows:
            cur.execute(f'INSERT INTO "{ledger.schema}".payments (payment_id, payment_type, amount, currency, '
                        "originator_id, originator_name, beneficiary_id, beneficiary_name, status, created_at, "
                        "hbase_row_key, document) VALUES (%s, %s, %s, %s, 'a', 'A', 'b', 'B', 'ACSC', now(), 'k', '{}')",
                        (pid, rail, Decimal(amount), currency))
    connection.commit()
    sql_flags = PostgresReader.from_ledger(ledger).invalid_for_rail(AllPayments())
    python_flags = {pid for pid, *case in rows if rail_problem(make_record(pid, *case))}
    assert set(sql_flags) == python_flags
    valid = {pid for pid, *case in rows if tuple(case) in {("WIRE", "USD", "10.00"), ("SEPA", "EUR", "0.01"),
                                                        ("RTP", "USD", "1000000.00")}}
    assert len(valid) == 3 and not valid & python_flags
    assert len(python_flags) >= 7


@pytest.mark.stack
def test_ranges_recorded_before_a_reset_are_flagged(stack):
    """After offsets went backwards Kafka no longer holds an old range: the range check must not read it there."""
    from payment_platform.reconciliation.readers import PostgresReader
    from payment_platform.stores.postgres import PostgresLedger

    ledger = PostgresLedger(stack.endpoints.postgres, schema=f"r{uuid.uuid4().hex[:10]}")
    ledger.ensure_schema()
    ledger.record_progress("t", 0, 0, 10)
    ledger.record_progress("t", 1, 0, 5)
    ledger.reset_progress("t", 0, 0, "broker restarted: end offset 0 < progress 10")
    ledger.record_progress("t", 0, 0, 3)
    flags = {(row[2], row[3], row[4]): row[5] for row in PostgresReader.from_ledger(ledger).recent_ranges(10)}
    assert flags == {(0, 0, 10): True, (1, 0, 5): False, (0, 0, 3): False}


def test_stall_passes_while_the_topic_is_idle_however_old_its_last_payment():
    verdict = evaluate.stall_verdict({0: (0, None), 1: (0, None)}, max_age_s=300)
    assert verdict.passed and verdict.metadata["lag"] == 0 and "idle" in verdict.description


def test_stall_passes_while_waiting_payments_are_younger_than_the_limit():
    verdict = evaluate.stall_verdict({0: (40, 12.0), 1: (0, None)}, max_age_s=300)
    assert verdict.passed and verdict.metadata["lag"] == 40 and verdict.metadata["oldest_waiting_age_s"] == 12.0


def test_stall_fails_naming_the_partition_when_the_oldest_waits_too_long():
    verdict = evaluate.stall_verdict({0: (40, 12.0), 2: (5, 900.0)}, max_age_s=300)
    assert not verdict.passed and verdict.severity == evaluate.ERROR
    assert "partition(s) [2]" in verdict.description and verdict.metadata["partitions_waiting"] == 2
    assert verdict.metadata["oldest_waiting_age_s"] == 900.0


def test_offending_ids_become_one_table_with_what_is_wrong():
    from payment_platform.defs.checks.checks import offending_ids_table

    table = offending_ids_table({"mismatch_sample": ["a", "b"], "invalid_sample": ["c"],
                                 "invalid_reasons": {"c": "amount over the ACH limit"},
                                 "totals_difference_sample": [{"rail": "ACH"}]})
    rows = [(r.data["payment_id"], r.data["problem"]) for r in table.value.records]
    assert rows == [("a", "differs between HBase and Postgres (or missing from one)"),
                    ("b", "differs between HBase and Postgres (or missing from one)"),
                    ("c", "amount over the ACH limit")]
    assert offending_ids_table({"mismatch_count": 0, "mismatch_sample": []}) is None
