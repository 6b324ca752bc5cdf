"""Payment message schema version 1: the contract between producers and ingestion (docs/architecture.md).

One UTF-8 JSON object per Kafka message:

    {
      "schema_version": 1,
      "payment_id": "6f1c...-uuid",
      "payment_type": "WIRE",                     # a Rail
      "amount": {"value": "12500.00", "currency": "USD"},   # decimal string, the currency's minor units
      "originator":  {"party_id": "PTY-000042", "name": "Acme Holdings LLC", "country": "US",
                      "account_number": "...", "routing_number": "021000021"},
      "beneficiary": {"party_id": "PTY-001377", "name": "Globex GmbH", "country": "DE",
                      "iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
      "created_at": "2026-11-24T14:03:05.123456Z",   # ISO 8601, UTC
      "value_date": "2026-11-24",                     # optional: settlement date (a business day)
      "status": "ACSP",                               # ISO 20022 transaction status code
      "reference": "E2E-...",                         # optional: end-to-end reference
      "remittance_info": "Invoice INV-2026-00042"     # optional
    }

A party carries account identifiers fit for the rail: `iban` + `bic`, or `account_number` +
`routing_number` (ABA), or a card token: `card_token` + `card_bin` + `card_last4` (never a full card
number: PCI DSS 3.4/3.5). This module checks the structure only; rail rules (currencies per rail, limits,
check digits) live in `payment_platform.domain.validation`.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

SCHEMA_VERSION = 1


class Rail(str, Enum):
    ACH = "ACH"
    WIRE = "WIRE"
    RTP = "RTP"
    SEPA = "SEPA"
    CARD = "CARD"
    DIRECT_DEBIT = "DIRECT_DEBIT"
    CHECK = "CHECK"


RAILS = tuple(r.value for r in Rail)

# ISO 20022 ExternalPaymentTransactionStatus1Code values a payment can carry.
STATUS_CODES = {
    "RCVD": "Received",
    "PDNG": "Pending",
    "ACTC": "AcceptedTechnicalValidation",
    "ACCP": "AcceptedCustomerProfile",
    "ACSP": "AcceptedSettlementInProcess",
    "ACWC": "AcceptedWithChange",
    "ACWP": "AcceptedWithoutPosting",
    "ACCC": "AcceptedSettlementCompletedCreditorAccount",
    "ACSC": "AcceptedSettlementCompleted",
    "BLCK": "Blocked",
    "CANC": "Cancelled",
    "RJCT": "Rejected",
}

# ISO 4217 minor units of the currencies the platform handles.
CURRENCY_MINOR_UNITS = {
    "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "CAD": 2, "AUD": 2, "NZD": 2, "SEK": 2, "NOK": 2, "DKK": 2,
    "PLN": 2, "CZK": 2, "HUF": 2, "SGD": 2, "HKD": 2, "CNY": 2, "INR": 2, "MXN": 2, "BRL": 2, "ZAR": 2,
    "AED": 2, "ILS": 2, "JPY": 0, "KRW": 0, "KWD": 3, "BHD": 3,
}

PARTY_ACCOUNT_SETS = (("iban", "bic"), ("account_number", "routing_number"), ("card_token", "card_bin", "card_last4"))
PARTY_FIELDS = ("party_id", "name", "country") + tuple(f for group in PARTY_ACCOUNT_SETS for f in group)
REQUIRED_FIELDS = ("schema_version", "payment_id", "payment_type", "amount", "originator", "beneficiary",
                   "created_at", "status")

_AMOUNT_RE = re.compile(r"^-?\d{1,15}(\.\d{1,3})?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class InvalidMessage(ValueError):
    """A message that cannot be ingested; `reason` is a sentence a person can act on."""

    def __init__(self, reason: str, field: str | None = None):
        self.reason = reason
        self.field = field
        super().__init__(reason)


@dataclass(frozen=True)
class Party:
    party_id: str
    name: str
    country: str | None
    identifiers: dict[str, str]  # the account identifiers present, by field name


@dataclass(frozen=True)
class Payment:
    """A structurally valid payment message, with typed values and the original document."""

    payment_id: str
    payment_type: str
    amount: Decimal
    currency: str
    originator: Party
    beneficiary: Party
    created_at: datetime  # timezone-aware, UTC
    status: str
    value_date: str | None
    doc: dict[str, Any]


def _require(doc: dict, name: str, kind: type, where: str = "") -> Any:
    label = f"{where}{name}"
    if name not in doc or doc[name] is None:
        raise InvalidMessage(f"missing field '{label}'", label)
    value = doc[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidMessage(f"field '{label}' must be {kind.__name__}, got {type(value).__name__}", label)
    if kind is str and not value.strip():
        raise InvalidMessage(f"field '{label}' is empty", label)
    return value


def parse_amount(value: Any, currency: str) -> Decimal:
    """The amount as a Decimal; a float or a value with the wrong number of minor units is refused."""
    if not isinstance(value, str):
        raise InvalidMessage(f"amount.value must be a decimal string, got {type(value).__name__} {value!r}", "amount.value")
    if not _AMOUNT_RE.match(value):
        raise InvalidMessage(f"amount.value is not a decimal number: {value!r}", "amount.value")
    minor = CURRENCY_MINOR_UNITS.get(currency)
    if minor is None:
        raise InvalidMessage(f"amount.currency {currency!r} is not a supported ISO 4217 currency", "amount.currency")
    decimals = len(value.partition(".")[2])
    if decimals != minor:
        raise InvalidMessage(f"amount.value {value!r} must have {minor} decimal places for {currency}", "amount.value")
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the regex already guarantees a decimal
        raise InvalidMessage(f"amount.value is not a decimal number: {value!r}", "amount.value") from None


def parse_timestamp(value: str, field: str = "created_at") -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidMessage(f"{field} is not an ISO 8601 timestamp: {value!r}", field) from None
    if parsed.tzinfo is None:
        raise InvalidMessage(f"{field} has no time zone (must be UTC): {value!r}", field)
    return parsed.astimezone(timezone.utc)


def parse_party(doc: dict, role: str) -> Party:
    party = _require(doc, role, dict)
    where = f"{role}."
    party_id = _require(party, "party_id", str, where)
    name = _require(party, "name", str, where)
    identifiers = {k: party[k] for k in PARTY_FIELDS[3:] if party.get(k) is not None}
    for key, value in identifiers.items():
        if not isinstance(value, str) or not value.strip():
            raise InvalidMessage(f"field '{where}{key}' must be a non-empty string", where + key)
    if not any(all(f in identifiers for f in group) for group in PARTY_ACCOUNT_SETS):
        raise InvalidMessage(
            f"{role} has no complete account identifiers (iban+bic, account_number+routing_number, "
            f"or card_token+card_bin+card_last4)", role)
    return Party(party_id, name, party.get("country"), identifiers)


def parse_document(doc: Any) -> Payment:
    """Checks a decoded message against schema v1; raises InvalidMessage naming the first problem."""
    if not isinstance(doc, dict):
        raise InvalidMessage(f"message must be a JSON object, got {type(doc).__name__}")
    version = _require(doc, "schema_version", int)
    if version != SCHEMA_VERSION:
        raise InvalidMessage(f"unsupported schema_version {version} (this platform reads {SCHEMA_VERSION})", "schema_version")
    payment_id = _require(doc, "payment_id", str)
    try:
        if str(uuid.UUID(payment_id)) != payment_id.lower():
            raise ValueError
    except ValueError:
        raise InvalidMessage(f"payment_id is not a UUID: {payment_id!r}", "payment_id") from None
    payment_type = _require(doc, "payment_type", str)
    if payment_type not in RAILS:
        raise InvalidMessage(f"payment_type {payment_type!r} is not one of {', '.join(RAILS)}", "payment_type")
    amount = _require(doc, "amount", dict)
    currency = _require(amount, "currency", str, "amount.")
    value = parse_amount(amount.get("value"), currency) if "value" in amount else None
    if value is None:
        raise InvalidMessage("missing field 'amount.value'", "amount.value")
    originator = parse_party(doc, "originator")
    beneficiary = parse_party(doc, "beneficiary")
    created_at = parse_timestamp(_require(doc, "created_at", str))
    status = _require(doc, "status", str)
    if status not in STATUS_CODES:
        raise InvalidMessage(f"status {status!r} is not an ISO 20022 transaction status code", "status")
    value_date = doc.get("value_date")
    if value_date is not None and (not isinstance(value_date, str) or not _DATE_RE.match(value_date)):
        raise InvalidMessage(f"value_date is not a YYYY-MM-DD date: {value_date!r}", "value_date")
    return Payment(payment_id.lower(), payment_type, value, currency, originator, beneficiary, created_at,
                   status, value_date, doc)


def decode(raw: bytes) -> Payment:
    """Bytes from Kafka to a structurally valid Payment; raises InvalidMessage otherwise."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidMessage(f"not UTF-8 JSON: {error}") from None
    return parse_document(doc)


def encode(doc: dict[str, Any]) -> bytes:
    """The canonical wire form of a message document: compact JSON, keys in insertion order."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
