"""validate / parse_and_validate: each rail rule refused with a reason a person can act on."""
import copy
import json
from datetime import datetime, timedelta, timezone

import pytest
from stdnum import luhn

from payment_platform.domain import schema, validation
from payment_platform.domain.rails import rail_rules

ACH = {
    "schema_version": 1, "payment_id": "6f1c0a4e-8e1a-4c1e-9a4b-1c2d3e4f5a6b", "payment_type": "ACH",
    "amount": {"value": "12500.00", "currency": "USD"},
    "originator": {"party_id": "PTY-000001", "name": "Acme LLC", "country": "US",
                   "account_number": "123456789", "routing_number": "021000021"},
    "beneficiary": {"party_id": "PTY-000002", "name": "Globex Inc", "country": "US",
                    "account_number": "987654321", "routing_number": "011000015"},
    "created_at": "2026-11-24T14:03:05.123456Z", "value_date": "2026-11-24", "status": "ACSC",
}
SEPA_PARTY = {"party_id": "PTY-000003", "name": "Muster GmbH", "country": "DE",
              "iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}


def message(**changes) -> dict:
    doc = copy.deepcopy(ACH)
    for path, value in changes.items():
        target = doc
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        if value is None:
            del target[leaf]
        else:
            target[leaf] = value
    return doc


def refused(doc: dict, **kwargs) -> schema.InvalidMessage:
    with pytest.raises(schema.InvalidMessage) as caught:
        validation.parse_and_validate(schema.encode(doc), **kwargs)
    return caught.value


def test_a_valid_payment_passes_and_comes_back_typed():
    payment = validation.parse_and_validate(schema.encode(ACH))
    assert payment.payment_id == ACH["payment_id"] and str(payment.amount) == "12500.00"


@pytest.mark.parametrize("changes, field, words", [
    (dict(amount__currency="EUR", amount__value="10.00"), "amount.currency", "not allowed on ACH"),
    (dict(amount__value="-5.00"), "amount.value", "must be positive"),
    (dict(amount__value="0.00"), "amount.value", "must be positive"),
    (dict(amount__value="1000000.01"), "amount.value", "over the ACH limit"),
    (dict(originator__routing_number="021000022"), "originator.routing_number", "3-7-1 check digit"),
    (dict(beneficiary__account_number="12ab"), "beneficiary.account_number", "4 to 17 digits"),
    (dict(originator__pan="4111111111111111"), "originator.pan", "full card number"),
    (dict(value_date="2026-11-23"), "value_date", "before the creation date"),
    (dict(status="DONE"), "status", "ISO 20022"),
])
def test_rail_rule_violations_are_refused_with_field_and_reason(changes, field, words):
    error = refused(message(**changes))
    assert error.field == field and words in error.reason


def test_sepa_needs_ibans_with_good_check_digits_and_respects_the_cap():
    sepa = message(payment_type="SEPA", amount={"value": "5000.00", "currency": "EUR"},
                   originator=SEPA_PARTY, beneficiary=dict(SEPA_PARTY, party_id="PTY-000004"))
    validation.parse_and_validate(schema.encode(sepa))
    assert "needs iban+bic" in refused(dict(sepa, originator=ACH["originator"])).reason
    bad = copy.deepcopy(sepa)
    bad["beneficiary"]["iban"] = "DE88370400440532013000"
    assert refused(bad).field == "beneficiary.iban"
    assert "over the SEPA limit" in refused(sepa, rules=rail_rules("1000")).reason
    wrong_country = copy.deepcopy(sepa)
    wrong_country["originator"]["country"] = "FR"
    assert refused(wrong_country).field == "originator.country"


def test_card_payments_carry_a_token_never_the_number():
    card_party = {"party_id": "PTY-000005", "name": "Buyer Ltd", "country": "US",
                  "card_token": "tok_0123456789abcdef01234567", "card_bin": "448590", "card_last4": "1234"}
    card = message(payment_type="CARD", originator=card_party)
    validation.parse_and_validate(schema.encode(card))
    leaked = copy.deepcopy(card)
    body = "448590123456123"
    leaked["originator"]["card_token"] = body + luhn.calc_check_digit(body)
    error = refused(leaked)
    assert error.field == "originator.card_token" and "PCI DSS" in error.reason


def test_not_json_and_structural_problems_are_invalid_messages_too():
    with pytest.raises(schema.InvalidMessage, match="not UTF-8 JSON"):
        validation.parse_and_validate(b'{"schema_version":1,"payment_id":"6f1c')
    assert refused(message(amount=None)).field == "amount"


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def refused_raw(raw: bytes, **kwargs) -> schema.InvalidMessage:
    with pytest.raises(schema.InvalidMessage) as caught:
        validation.parse_and_validate(raw, now=NOW, **kwargs)
    return caught.value


@pytest.mark.parametrize("escape,where", [
    ("\\ud800", "beneficiary.name"), ("x\\udfff", "beneficiary.name"), ("\\uDBFF tail", "beneficiary.name")])
def test_an_unpaired_surrogate_in_any_string_is_refused_with_the_field(escape, where):
    text = schema.encode(ACH).decode().replace('"Globex Inc"', f'"{escape}"')
    error = refused_raw(text.encode())
    assert error.field == where and "unpaired UTF-16 surrogate" in error.reason and "UTF-8" in error.reason


def test_surrogates_anywhere_keys_and_optional_fields_included_and_a_real_pair_is_fine():
    for text in (schema.encode(dict(ACH, remittance_info="ok")).decode().replace('"ok"', '"\\udc00"'),
                 schema.encode(dict(ACH, extra={"k": ["a", "b"]})).decode().replace('"b"', '"\\ud800"'),
                 schema.encode(dict(ACH, extra={"k": 1})).decode().replace('"k"', '"\\ud800"')):
        assert "surrogate" in refused_raw(text.encode()).reason
    paired = schema.encode(ACH).decode().replace('"Globex Inc"', '"Globex \\ud83d\\ude00"')
    assert validation.parse_and_validate(paired.encode(), now=NOW).beneficiary.name == "Globex \U0001F600"


def test_nul_and_non_utf8_encodings_are_refused():
    assert "NUL" in refused(message(originator__name="Acme\u0000 LLC"), now=NOW).reason
    assert "not UTF-8" in refused_raw(json.dumps(ACH).encode("utf-16")).reason
    assert "not UTF-8" in refused_raw(schema.encode(ACH).replace(b"Globex", b"Glob\xed\xa0\x80")).reason


@pytest.mark.parametrize("created_at,ok", [
    ("2000-01-01T00:00:00Z", True), ("1999-12-31T23:59:59.999999Z", False),
    ("2026-11-26T11:59:59Z", True), ("2026-11-26T12:00:01Z", False),
    ("9999-12-31T23:59:59.999999Z", False), ("0001-01-01T00:00:00Z", False)])
def test_created_at_must_be_inside_the_valid_window(created_at, ok):
    doc = message(created_at=created_at, value_date=None)
    if ok:
        validation.parse_and_validate(schema.encode(doc), now=NOW)
    else:
        error = refused(doc, now=NOW)
        assert error.field == "created_at" and created_at[:10] in error.reason


@pytest.mark.parametrize("value_date,problem", [
    ("2026-11-24", None), ("2027-11-24", None), ("2027-11-25", "more than 365 days"),
    ("2026-11-23", "before the creation date"), ("2026-02-30", "not a calendar date"),
    ("9999-12-31", "more than 365 days")])
def test_value_date_must_be_a_real_date_inside_the_window(value_date, problem):
    doc = message(value_date=value_date)
    if problem is None:
        validation.parse_and_validate(schema.encode(doc), now=NOW)
    else:
        error = refused(doc, now=NOW)
        assert error.field == "value_date" and problem in error.reason


def test_the_creation_date_is_the_rails_booking_day_not_the_utc_day():
    # 00:30 UTC on 25 November is 19:30 on the 24th in New York, where ACH books: a value date of the 24th is right
    late = message(created_at="2026-11-25T00:30:00Z", value_date="2026-11-24")
    validation.parse_and_validate(schema.encode(late), now=NOW)
    error = refused(message(created_at="2026-11-25T00:30:00Z", value_date="2026-11-23"), now=NOW)
    assert error.field == "value_date" and "2026-11-24 (America/New_York" in error.reason
    # and a payment a rail books ahead of UTC (SEPA in Berlin): 23:30 UTC on the 24th is the 25th there
    sepa = message(payment_type="SEPA", amount__currency="EUR", amount__value="10.00", originator=SEPA_PARTY,
                   beneficiary={**SEPA_PARTY, "party_id": "PTY-000004"}, created_at="2026-11-24T23:30:00Z",
                   value_date="2026-11-24")
    assert "before the creation date 2026-11-25" in refused(sepa, now=NOW).reason


def test_the_window_is_a_setting():
    window = validation.ValidityWindow(earliest_created_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
                                       max_clock_skew=timedelta(0), max_value_date_days=0)
    assert refused(message(created_at="2025-12-31T00:00:00Z", value_date=None), now=NOW,
                   window=window).field == "created_at"
    assert "more than 0 days" in refused(message(value_date="2026-11-25"), now=NOW, window=window).reason
    with pytest.raises(ValueError, match="time zone"):
        validation.ValidityWindow(earliest_created_at=datetime(2000, 1, 1))
