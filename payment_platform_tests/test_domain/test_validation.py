"""validate / parse_and_validate: each rail rule refused with a reason a person can act on."""
import copy

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
