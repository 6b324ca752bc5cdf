"""Small, valid schema-v1 payments for store and loader tests (the generator has its own tests)."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

from payment_platform.domain.validation import parse_and_validate
from payment_platform.stores.records import KafkaPosition, PaymentRecord

_ANCHOR = datetime(2026, 11, 24, 14, 0, 0, tzinfo=timezone.utc)


def payment_doc(i: int, namespace: str = "tests", payment_id: str | None = None) -> dict:
    """Payment number i: ACH (USD, ABA) or SEPA (EUR, IBAN+BIC), alternating; ids derived from namespace + i."""
    pid = payment_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{i}"))
    created = _ANCHOR + timedelta(seconds=i // 3, microseconds=i)
    if i % 2 == 0:
        rail, currency, value = "ACH", "USD", f"{100 + i % 9000}.{i % 100:02d}"
        originator = {"party_id": f"PTY-{i % 50:06d}", "name": f"Acme {i % 50} LLC", "country": "US",
                      "account_number": f"{100000 + i}", "routing_number": "021000021"}
        beneficiary = {"party_id": f"PTY-{100 + i % 70:06d}", "name": f"Globex {i % 70} Inc", "country": "US",
                       "account_number": f"{900000 + i}", "routing_number": "011000015"}
    else:
        rail, currency, value = "SEPA", "EUR", f"{50 + i % 5000}.{i % 100:02d}"
        originator = {"party_id": f"PTY-{200 + i % 40:06d}", "name": f"Müller {i % 40} GmbH", "country": "DE",
                      "iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}
        beneficiary = {"party_id": f"PTY-{300 + i % 30:06d}", "name": f"Dupont {i % 30} SA", "country": "FR",
                       "iban": "FR1420041010050500013M02606", "bic": "PSSTFRPPXXX"}
    return {"schema_version": 1, "payment_id": pid, "payment_type": rail,
            "amount": {"value": value, "currency": currency}, "originator": originator,
            "beneficiary": beneficiary, "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "value_date": created.date().isoformat(), "status": "ACSP"}


def raw(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def record(i: int, namespace: str = "tests", topic: str = "t", partition: int = 0) -> PaymentRecord:
    data = raw(payment_doc(i, namespace))
    return PaymentRecord(parse_and_validate(data), data, KafkaPosition(topic, partition, i))


# Malformed or invalid messages, each with the field its quarantine reason should name (None: not JSON).
def bad_messages(namespace: str = "tests") -> list[tuple[bytes, str | None]]:
    negative = payment_doc(10_001, namespace)
    negative["amount"]["value"] = "-5.00"
    wrong_currency = payment_doc(10_003, namespace)  # SEPA in USD
    wrong_currency["amount"] = {"value": "10.00", "currency": "USD"}
    missing = payment_doc(10_005, namespace)
    del missing["status"]
    bad_iban = payment_doc(10_007, namespace)
    bad_iban["originator"]["iban"] = "DE00370400440532013000"
    return [(b"{not json", None), (raw(negative), "amount.value"), (raw(wrong_currency), "amount.currency"),
            (raw(missing), "status"), (raw(bad_iban), "originator.iban")]
