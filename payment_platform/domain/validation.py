"""Rail rules on a structurally valid payment: what ingestion checks before a payment may land.

`schema.decode` checks the structure of a message; `validate` checks it against the rail it travels on
(`rails.RAIL_RULES`): currency allowed on the rail, positive amount within the rail's limit, identifiers
fit for the rail with correct check digits (IBAN mod-97 and country layout, BIC, ABA 3-7-1), no full card
number anywhere in a party, a known ISO 20022 status, a value date not before the creation date.
Each failure raises `schema.InvalidMessage(reason, field)`; `reason` is shown to a person in quarantine.
"""
from __future__ import annotations

from typing import Mapping

from payment_platform.domain import identifiers as ids
from payment_platform.domain.rails import RAIL_RULES, SEPA_COUNTRIES, RailRule
from payment_platform.domain.schema import STATUS_CODES, InvalidMessage, Party, Payment, decode

# Fields that may only hold card data in its safe form, and names under which a full card number hides.
CARD_FIELDS = ("card_token", "card_bin", "card_last4")
PAN_FIELD_NAMES = frozenset({"card_number", "pan", "primary_account_number", "card_no", "cardnumber"})


def validate(payment: Payment, rules: Mapping[str, RailRule] = RAIL_RULES) -> None:
    """Raises InvalidMessage naming the first rail rule the payment breaks; returns None if it is fine."""
    rule = rules.get(payment.payment_type)
    if rule is None:
        raise InvalidMessage(f"payment_type {payment.payment_type!r} has no rail rules", "payment_type")
    _check_amount(payment, rule)
    _check_party(payment.originator, "originator", rule.originator_ids, rule, payment.doc["originator"])
    _check_party(payment.beneficiary, "beneficiary", rule.beneficiary_ids, rule, payment.doc["beneficiary"])
    if payment.status not in STATUS_CODES:
        raise InvalidMessage(f"status {payment.status!r} is not an ISO 20022 transaction status code", "status")
    if payment.value_date is not None and payment.value_date < payment.created_at.date().isoformat():
        raise InvalidMessage(f"value_date {payment.value_date} is before the creation date "
                             f"{payment.created_at.date().isoformat()}", "value_date")


def parse_and_validate(raw: bytes, rules: Mapping[str, RailRule] = RAIL_RULES) -> Payment:
    """Kafka message bytes to a Payment that passed the schema and the rail rules; raises InvalidMessage."""
    payment = decode(raw)
    validate(payment, rules)
    return payment


def _check_amount(payment: Payment, rule: RailRule) -> None:
    if payment.currency not in rule.currencies:
        raise InvalidMessage(f"currency {payment.currency} is not allowed on {rule.rail} "
                             f"(allowed: {', '.join(rule.currencies)})", "amount.currency")
    if payment.amount <= 0:
        raise InvalidMessage(f"amount {payment.amount} {payment.currency} must be positive", "amount.value")
    limit = rule.limit_in(payment.currency)
    if limit is not None and payment.amount > limit:
        shown = f"{rule.limit:,} {rule.limit_currency}"
        raise InvalidMessage(f"amount {payment.amount:,} {payment.currency} is over the {rule.rail} limit of "
                             f"{shown} ({rule.limit_source})", "amount.value")


def _check_no_card_number(raw_party: dict, role: str) -> None:
    """PCI DSS 3.4: a full card number (PAN) must never travel, whatever field it hides in."""
    for key, value in raw_party.items():
        if key in PAN_FIELD_NAMES and value:
            raise InvalidMessage(f"{role}.{key} is present: a full card number must never travel, only a token, "
                                 f"the BIN and the last four digits (PCI DSS 3.4)", f"{role}.{key}")
        if key in CARD_FIELDS and isinstance(value, str) and ids.is_card_number(value):
            raise InvalidMessage(f"{role}.{key} holds a full card number: only a token, the BIN and the last "
                                 f"four digits may travel (PCI DSS 3.4)", f"{role}.{key}")


def _check_party(party: Party, role: str, accepted: tuple[tuple[str, ...], ...], rule: RailRule,
                 raw_party: dict) -> None:
    found = party.identifiers
    _check_no_card_number(raw_party, role)
    usable = [group for group in accepted if all(f in found for f in group)]
    if not usable:
        wanted = " or ".join("+".join(group) for group in accepted)
        raise InvalidMessage(f"{role} needs {wanted} on {rule.rail}", role)
    for group in usable:
        for key in group:
            problem = _identifier_problem(key, found)
            if problem:
                raise InvalidMessage(f"{role}.{key}: {problem}", f"{role}.{key}")
    if ("iban", "bic") in usable:
        country = ids.iban_country(found["iban"])
        if party.country and party.country != country:
            raise InvalidMessage(f"{role}.country {party.country} does not match the IBAN's country {country}",
                                 f"{role}.country")
        if rule.rail in ("SEPA", "DIRECT_DEBIT") and country not in SEPA_COUNTRIES:
            raise InvalidMessage(f"{role}.iban is from {country}, outside the SEPA area", f"{role}.iban")


def _identifier_problem(key: str, found: dict[str, str]) -> str | None:
    if key == "iban":
        return ids.iban_problem(found["iban"])
    if key == "bic":
        return ids.bic_problem(found["bic"])
    if key == "routing_number":
        return ids.routing_number_problem(found["routing_number"])
    if key == "account_number":
        return ids.account_number_problem(found["account_number"])
    if key == "card_token":
        return ids.card_problem(found["card_token"], found.get("card_bin", ""), found.get("card_last4", ""))
    return None
