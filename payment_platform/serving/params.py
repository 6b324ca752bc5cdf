"""Parameters of the read side, parsed and checked once for every face (Python, REST, command line).

Each parser takes the raw value (text from a URL or a command line, or a Python value) and returns the typed
value, or raises InvalidParameter naming the parameter and saying what is wrong with it.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation

from payment_platform.domain.schema import CURRENCY_MINOR_UNITS, RAILS, STATUS_CODES
from payment_platform.errors import UsageError

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_PARTY_ID_LENGTH = 200


class InvalidParameter(UsageError, ValueError):
    """A caller's mistake: `parameter` names the parameter, the message says what is wrong (HTTP 400; the command
    line prints it as one line and exits 2)."""

    def __init__(self, parameter: str, problem: str):
        self.parameter, self.problem = parameter, problem
        super().__init__(f"{parameter}: {problem}")


def _text(name: str, value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    value = value.strip()
    return value or None


def payment_id(value, name: str = "payment_id") -> str:
    text = _text(name, value)
    if text is None:
        raise InvalidParameter(name, "is required (a payment UUID)")
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise InvalidParameter(name, f"not a UUID: {text[:80]!r}") from None


def party_id(value, name: str) -> str | None:
    text = _text(name, value)
    if text is None:
        return None
    if len(text) > MAX_PARTY_ID_LENGTH or any(ord(c) < 32 for c in text):
        raise InvalidParameter(name, f"not a party id (at most {MAX_PARTY_ID_LENGTH} printable characters): "
                                     f"{text[:80]!r}")
    return text


def rail(value, name: str = "payment_type") -> str | None:
    text = _text(name, value)
    if text is None:
        return None
    if text.upper() not in RAILS:
        raise InvalidParameter(name, f"unknown rail {text[:40]!r}; expected one of {', '.join(RAILS)}")
    return text.upper()


def currency_code(value, name: str = "currency") -> str | None:
    text = _text(name, value)
    if text is None:
        return None
    if text.upper() not in CURRENCY_MINOR_UNITS:
        raise InvalidParameter(name, f"unknown currency {text[:40]!r}; expected an ISO 4217 code the platform "
                                     f"handles ({', '.join(sorted(CURRENCY_MINOR_UNITS))})")
    return text.upper()


def status_code(value, name: str = "status") -> str | None:
    text = _text(name, value)
    if text is None:
        return None
    if text.upper() not in STATUS_CODES:
        raise InvalidParameter(name, f"unknown status {text[:40]!r}; expected an ISO 20022 code "
                                     f"({', '.join(STATUS_CODES)})")
    return text.upper()


def amount(value, name: str) -> Decimal | None:
    text = _text(name, value)
    if text is None:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise InvalidParameter(name, f"not a decimal amount: {text[:40]!r} (e.g. 1250.00)") from None
    if not number.is_finite() or number < 0:
        raise InvalidParameter(name, f"must be a finite amount >= 0, got {text[:40]!r}")
    return number


def moment(value, name: str) -> datetime | None:
    """ISO 8601 date or date-time; one without a zone is UTC. Returned in UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time(0))
    else:
        text = _text(name, value)
        if text is None:
            return None
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise InvalidParameter(name, f"not an ISO 8601 date or time: {text[:60]!r} "
                                         f"(e.g. 2026-11-24 or 2026-11-24T14:00:00Z)") from None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def window(created_from, created_to, from_name: str = "created_from", to_name: str = "created_to"):
    start, end = moment(created_from, from_name), moment(created_to, to_name)
    if start is not None and end is not None and end <= start:
        raise InvalidParameter(to_name, f"the window ends ({end.isoformat()}) at or before it starts "
                                        f"({start.isoformat()}); {to_name} is exclusive and must be later")
    return start, end


def limit(value, name: str = "limit", default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidParameter(name, f"not an integer: {str(value)[:40]!r}") from None
    if not 1 <= number <= maximum:
        raise InvalidParameter(name, f"must be between 1 and {maximum}, got {number}")
    return number


@dataclass(frozen=True)
class PaymentFilter:
    """What `list_payments` selects: a party (or none: every party), a window and value filters."""

    originator_id: str | None = None
    beneficiary_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    payment_type: str | None = None
    currency: str | None = None
    status: str | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None

    @classmethod
    def parse(cls, *, originator_id=None, beneficiary_id=None, created_from=None, created_to=None,
              payment_type=None, currency=None, status=None, min_amount=None, max_amount=None) -> "PaymentFilter":
        low, high = amount(min_amount, "min_amount"), amount(max_amount, "max_amount")
        if low is not None and high is not None and high < low:
            raise InvalidParameter("max_amount", f"is below min_amount ({high} < {low})")
        start, end = window(created_from, created_to)
        return cls(party_id(originator_id, "originator_id"), party_id(beneficiary_id, "beneficiary_id"), start, end,
                   rail(payment_type), currency_code(currency), status_code(status), low, high)

    def scope(self) -> str:
        """A stable text of the whole selection (a cursor is only valid for the selection that made it)."""
        return "|".join("" if v is None else str(v) for v in (
            self.originator_id, self.beneficiary_id, self.created_from and self.created_from.isoformat(),
            self.created_to and self.created_to.isoformat(), self.payment_type, self.currency, self.status,
            self.min_amount, self.max_amount))
