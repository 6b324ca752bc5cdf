"""Full card numbers made unreadable (domain.redaction): what counts as one, what stays intact, the keyed hash."""
from __future__ import annotations

import json

import pytest

from payment_platform.config import ConfigError, pan_hash_key_from_env
from payment_platform.domain.redaction import fingerprint, marker, redact_document, redact_message, redact_text

KEY = bytes(range(32))
PAN = "4111111111111111"  # Luhn-valid
NOT_LUHN = "4111111111111112"


@pytest.mark.parametrize("text", [f"pay {PAN} now", "4111 1111 1111 1111", "4111-1111-1111-1111",
                                  "Acme 378282246310005 Ltd", "6011000990139424"])
def test_luhn_valid_runs_in_free_text_are_redacted(text):
    redacted = redact_text(text, KEY)
    assert not any(c.isdigit() for c in redacted.replace("[PAN REDACTED hmac:", "")) or redacted.count("[PAN") == 1
    digits = "".join(c for c in text if c.isdigit())
    assert digits not in redacted.replace(" ", "").replace("-", "")
    assert marker(digits, KEY) in redacted


@pytest.mark.parametrize("text", [f"invoice {NOT_LUHN}", "order 123456789012", "E2E20261102503830C404F5", "41111111111111111111 (20 digits)",
                                  "amount 4111111111111111.00", "2026-11-24T14:00:00.000123Z", "tel +1 212 555 0100"])
def test_what_is_not_a_card_number_stays(text):
    assert redact_text(text, KEY) == text


def test_the_fingerprint_is_keyed_ignores_separators_and_never_holds_a_digit():
    assert fingerprint("4111 1111-1111 1111", KEY) == fingerprint(PAN, KEY)
    assert fingerprint(PAN, KEY) != fingerprint(PAN, bytes(32))
    assert len(fingerprint(PAN, KEY)) == 16 and not any(c.isdigit() for c in fingerprint(PAN, KEY))


def message(**changes) -> dict:
    doc = {"payment_id": "6f1c1d36-9a39-4c43-a1a5-0c0d2b0b0b0b", "payment_type": "ACH",
           "amount": {"value": "4111111111111111.00", "currency": "USD"},
           "originator": {"party_id": "PTY-1", "name": "Acme", "account_number": "4111111111111111",
                          "routing_number": "021000021"},
           "beneficiary": {"party_id": "PTY-2", "name": "Globex", "iban": "DE89370400440532013000",
                           "card_token": "tok_" + "a" * 24, "card_bin": "411111", "card_last4": "1111"},
           "remittance_info": "invoice 17"}
    for path, value in changes.items():
        node = doc
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return doc


def test_a_clean_message_is_returned_as_the_same_bytes():
    raw = json.dumps(message()).encode()
    assert redact_message(raw, KEY) is raw  # account number, IBAN, amount, safe card fields: all intact


@pytest.mark.parametrize("path, value", [
    ("remittance_info", f"card {PAN} lost"), ("originator.name", f"Acme {PAN}"),
    ("beneficiary.card_token", PAN), ("beneficiary.card_bin", NOT_LUHN), ("beneficiary.card_number", NOT_LUHN),
    ("beneficiary.pan", 4111111111111111),
])
def test_pans_in_free_text_and_card_fields_are_redacted_and_the_json_stays_valid(path, value):
    raw = json.dumps(message(**{path: value})).encode()
    redacted = redact_message(raw, KEY)
    doc = json.loads(redacted)
    assert PAN.encode() not in redacted.replace(b"4111111111111111.00", b"").replace(b'"4111111111111111"', b"") \
        or path.startswith("beneficiary")
    shown = str(value)
    assert shown not in json.dumps(doc["remittance_info"]) + json.dumps(doc["beneficiary"]) + doc["originator"]["name"]
    assert "[PAN REDACTED hmac:" in redacted.decode()
    # the rail's identifiers and the amount are untouched
    assert doc["originator"]["account_number"] == PAN and doc["amount"]["value"] == "4111111111111111.00"
    assert doc["beneficiary"]["iban"] == "DE89370400440532013000"
    assert redact_message(redacted, KEY) == redacted  # twice changes nothing


def test_text_that_is_not_json_and_documents():
    raw = f"not json {PAN} \xff".encode("latin-1")
    redacted = redact_message(raw, KEY)
    assert PAN.encode() not in redacted and redacted.endswith(b"\xff")
    assert redact_document({"a": [f"x {PAN}"]}, KEY) == {"a": [f"x {marker(PAN, KEY)}"]}


def test_the_key_setting():
    assert pan_hash_key_from_env({}) == pan_hash_key_from_env({"PAN_HASH_KEY": " "})  # the development key
    assert pan_hash_key_from_env({"PAN_HASH_KEY": "ab" * 32}) == bytes([0xAB]) * 32
    with pytest.raises(ConfigError, match="PAN_HASH_KEY: not hexadecimal") as bad:
        pan_hash_key_from_env({"PAN_HASH_KEY": "secret-but-not-hex"})
    assert "secret-but-not-hex" not in str(bad.value)  # a secret is never echoed
    with pytest.raises(ConfigError, match="PAN_HASH_KEY: too short: 64 bits"):
        pan_hash_key_from_env({"PAN_HASH_KEY": "00" * 8})


@pytest.mark.parametrize("uuid_text", ["b02f19fa-df1b-41eb-4111-111111111111", "41111111-1111-1111-aaaa-bbbbbbbbbbbb"])
def test_a_uuid_whose_groups_form_a_luhn_valid_run_is_an_identifier_not_a_card_number(uuid_text):
    # about 1 payment id in 17,000 has two digit-only groups adding up to a Luhn-valid 16-digit run: it must land,
    # not be rewritten (and then quarantined as "payment_id is not a UUID")
    raw = json.dumps({"payment_id": uuid_text, "remittance_information": "card 4111 1111 1111 1111"}).encode()
    redacted = json.loads(redact_message(raw, KEY))
    assert redacted["payment_id"] == uuid_text
    assert "4111 1111 1111 1111" not in redacted["remittance_information"]
    assert redact_text(f"payment {uuid_text} failed", KEY) == f"payment {uuid_text} failed"
