"""Every check against what the stores can actually hold: a fresh platform with no tables at all (consistent:
"nothing ingested yet"), and a payment that landed with a created_at of 9999-12-31 (before ingestion refused such
dates): a finding in the time-window check, never a crash (OverflowError) of any check. Private HBase gateway,
MongoDB and Postgres schema; the shared stack for Kafka and Postgres."""
from __future__ import annotations

import uuid

import pytest

from payment_platform.defs.checks.checks import (
    CROSS_STORE_CONSISTENCY,
    INGESTED_RANGES_CONSISTENCY,
    QUARANTINE_RATE,
    RECENT_DAYS_CONSISTENCY,
)
from payment_platform.domain.schema import decode
from payment_platform.stores import kafka
from payment_platform.stores.records import KafkaPosition, PaymentRecord

from ..test_healing.conftest import Platform, instance, private_hbase, private_mongo  # noqa: F401 - fixtures
from ..test_stores.payments import payment_doc, raw

pytestmark = [pytest.mark.stack]


@pytest.fixture
def fresh_platform(stack, private_hbase, private_mongo, tmp_path):  # noqa: F811 - fixtures imported above
    """Nothing created: no HBase table, no Postgres schema, no topic content."""
    namespace = f"c{uuid.uuid4().hex[:10]}"
    topic = f"test-checks-{namespace}"
    kafka.ensure_topic(stack.endpoints.kafka, topic, partitions=1)
    return Platform(stack, namespace, topic, private_hbase.port, f"mongodb://127.0.0.1:{private_mongo.port}",
                    tmp_path / "failed_payments")


def test_every_check_passes_on_a_fresh_empty_platform(fresh_platform, instance):  # noqa: F811
    assert "payments" not in {t.decode() for t in fresh_platform.hbase().connection().tables()}
    evaluations = fresh_platform.run_checks(instance)
    assert len(evaluations) >= 10  # every check of ALL_CHECKS evaluated
    failed = {key: e.description for key, e in evaluations.items() if not e.passed}
    assert not failed
    for key in (("hbase/payments", CROSS_STORE_CONSISTENCY), ("postgres/payments", RECENT_DAYS_CONSISTENCY),
                ("hbase/payments", INGESTED_RANGES_CONSISTENCY), ("postgres/payments_quarantine", QUARANTINE_RATE)):
        evaluation = evaluations[key]
        assert evaluation.metadata["nothing_ingested_yet"].value is True, key
    assert "nothing ingested yet" in evaluations[("hbase/payments", CROSS_STORE_CONSISTENCY)].description


def land_unchecked(platform, docs):
    """Write payments into both stores the way ingestion did before the valid window existed (schema only)."""
    records = [PaymentRecord(decode(raw(doc)), raw(doc), KafkaPosition(platform.topic, 0, n))
               for n, doc in enumerate(docs)]
    hbase, ledger = platform.hbase(), platform.postgres()
    hbase.ensure_schema()
    ledger.ensure_schema()
    assert hbase.write_payments(records) == ledger.write_payments(records) == len(records)
    assert ledger.record_progress(platform.topic, 0, 0, len(records))  # settled: below the checks' cut


def test_a_stored_year_9999_payment_is_a_finding_not_a_crash(fresh_platform, instance):  # noqa: F811
    docs = [payment_doc(i, fresh_platform.namespace) for i in range(4)]
    docs[3]["created_at"], docs[3]["value_date"] = "9999-12-31T23:59:59.999999Z", "9999-12-31"
    land_unchecked(fresh_platform, docs)
    evaluations = fresh_platform.run_checks(instance)
    assert not [e.description for e in evaluations.values() if "could not evaluate" in e.description]
    recent = evaluations[("postgres/payments", RECENT_DAYS_CONSISTENCY)]
    assert not recent.passed and recent.severity.value == "WARN"
    assert recent.metadata["out_of_window_count"].value == 1
    assert docs[3]["payment_id"] in recent.description and "9999-12-31" in recent.description
    # the newest hour holding payments and this run's slice of the rotation over the two days' hours
    assert recent.metadata["windows"].value == recent.metadata["hours_compared"].value >= 1
    assert recent.metadata["windows_differing"].value == 0 and recent.metadata["hours_in_window"].value == 48
    assert recent.metadata["postgres_rows"].value == 3  # the three in the valid window: below the cut, compared
    # the stores agree on every payment, the odd one included: the blocking checks pass
    assert evaluations[("hbase/payments", CROSS_STORE_CONSISTENCY)].passed
    assert evaluations[("postgres/payments", CROSS_STORE_CONSISTENCY)].passed
