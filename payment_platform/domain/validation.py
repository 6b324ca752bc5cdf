"""Rail rules on a structurally valid payment: what ingestion checks before a payment may land.

`schema.decode` checks the structure of a message; `validate` checks it against the rail it travels on
(`rails.RAIL_RULES`): currency allowed on the rail, positive amount within the rail's limit, identifiers
fit for the rail with correct check digits (IBAN mod-97 and country layout, BIC, ABA 3-7-1), no full card
number anywhere in a party, a known ISO 20022 status, a created_at and a value date inside the valid window
(`ValidityWindow`), and text every store can hold (UTF-8, no NUL, no unpaired surrogate).
Each failure raises `schema.InvalidMessage(reason, field)`; `reason` is shown to a person in quarantine.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Mapping

from payment_platform.domain import business_calendar, identifiers as ids
from payment_platform.domain.rails import RAIL_RULES, SEPA_COUNTRIES, RailRule
from payment_platform.domain.schema import STATUS_CODES, InvalidMessage, Party, Payment, decode

# Fields that may only hold card data in its safe form, and names under which a full card number hides.
CARD_FIELDS = ("card_token", "card_bin", "card_last4")
PAN_FIELD_NAMES = frozenset({"card_number", "pan", "primary_account_number", "card_no", "cardnumber"})


@dataclass(frozen=True)
class ValidityWindow:
    """When a payment may have been created and may settle. A `created_at` in year 9999 parses, but it is not a
    payment: it would sit past every time window the checks and summaries compute.

    - created_at in [earliest_created_at, now + max_clock_skew]: no payment system of record predates 2000, and a
      producer's clock may run ahead a little, not by days;
    - value_date in [the creation date, the creation date + max_value_date_days], the creation date taken in the
      rail's booking time zone (`RailRule.calendar_for`): rails accept future-dated payments up to about a year
      ahead (SEPA, ACH warehousing); a value date before its creation is refused.
    """

    earliest_created_at: datetime = datetime(2000, 1, 1, tzinfo=timezone.utc)
    max_clock_skew: timedelta = timedelta(days=1)
    max_value_date_days: int = 365

    def __post_init__(self) -> None:
        if self.earliest_created_at.tzinfo is None:
            raise ValueError(f"earliest_created_at needs a time zone, got {self.earliest_created_at.isoformat()}")
        if self.max_clock_skew < timedelta(0):
            raise ValueError(f"max_clock_skew must be >= 0, got {self.max_clock_skew}")
        if self.max_value_date_days < 0:
            raise ValueError(f"max_value_date_days must be >= 0, got {self.max_value_date_days}")

    def latest_created_at(self, now: datetime | None = None) -> datetime:
        return (now or datetime.now(timezone.utc)) + self.max_clock_skew


DEFAULT_WINDOW = ValidityWindow()


def validate(payment: Payment, rules: Mapping[str, RailRule] = RAIL_RULES, window: ValidityWindow = DEFAULT_WINDOW,
             now: datetime | None = None) -> None:
    """Raises InvalidMessage naming the first rail rule the payment breaks; returns None if it is fine."""
    rule = rules.get(payment.payment_type)
    if rule is None:
        raise InvalidMessage(f"payment_type {payment.payment_type!r} has no rail rules", "payment_type")
    _check_amount(payment, rule)
    _check_party(payment.originator, "originator", rule.originator_ids, rule, payment.doc["originator"])
    _check_party(payment.beneficiary, "beneficiary", rule.beneficiary_ids, rule, payment.doc["beneficiary"])
    if payment.status not in STATUS_CODES:
        raise InvalidMessage(f"status {payment.status!r} is not an ISO 20022 transaction status code", "status")
    _check_dates(payment, rule, window, now)


def parse_and_validate(raw: bytes, rules: Mapping[str, RailRule] = RAIL_RULES, window: ValidityWindow = DEFAULT_WINDOW,
                       now: datetime | None = None) -> Payment:
    """Kafka message bytes to a Payment that passed the schema and the rail rules; raises InvalidMessage."""
    try:
        raw.decode("utf-8")  # json.loads would also take UTF-16/32 and CESU-8 surrogates, which no store keeps as sent
    except UnicodeDecodeError as error:
        raise InvalidMessage(f"not UTF-8: {error}") from None
    payment = decode(raw)
    if b"\\u" in raw:  # NUL and lone surrogates only arrive as JSON escapes (a cheap test before walking the doc)
        _check_text(payment.doc, "")
    validate(payment, rules, window, now)
    return payment


def _check_text(value, where: str) -> None:
    """Text every store can hold: PostgreSQL refuses NUL in text and jsonb; an unpaired UTF-16 surrogate
    (`"\\ud800"`, valid JSON) has no UTF-8 form, so neither HBase's cells nor Postgres can store it."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidMessage(f"{where or 'a text field'} holds a NUL character (\\u0000), which PostgreSQL "
                                 f"cannot store", where or None)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InvalidMessage(f"{where or 'a text field'} holds an unpaired UTF-16 surrogate "
                                 f"({value[error.start]!r} at character {error.start}): it has no UTF-8 form, so no "
                                 f"store can keep it; the producer must send valid Unicode", where or None) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{where}.{key!r}" if where else "a field name")
            _check_text(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{where}[{index}]")


def _check_dates(payment: Payment, rule: RailRule, window: ValidityWindow, now: datetime | None) -> None:
    created = payment.created_at
    latest = window.latest_created_at(now)
    if created < window.earliest_created_at:
        raise InvalidMessage(f"created_at {created.isoformat()} is before {window.earliest_created_at.isoformat()}, "
                             f"the earliest a payment may be created", "created_at")
    if created > latest:
        raise InvalidMessage(f"created_at {created.isoformat()} is in the future (later than now plus the "
                             f"{window.max_clock_skew} clock-skew allowance, {latest.isoformat(timespec='seconds')})",
                             "created_at")
    if payment.value_date is None:
        return
    try:
        value_date = date.fromisoformat(payment.value_date)
    except ValueError:
        raise InvalidMessage(f"value_date {payment.value_date} is not a calendar date", "value_date") from None
    # The creation date where the rail books it: an RTP payment created at 00:30 UTC was created the evening
    # before in New York, and settles that evening (its value date is the day before the UTC date).
    _, zone = rule.calendar_for(payment.currency)
    created_on = business_calendar.booking_date(created, zone)
    if value_date < created_on:
        raise InvalidMessage(f"value_date {payment.value_date} is before the creation date "
                             f"{created_on.isoformat()} ({zone}, where {rule.rail} books it)", "value_date")
    if value_date > created_on + timedelta(days=window.max_value_date_days):
        raise InvalidMessage(f"value_date {payment.value_date} is more than {window.max_value_date_days} days after "
                             f"the creation date {created_on.isoformat()} ({zone})", "value_date")


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
