"""Canonical form and hash of a payment as both stores must agree on it.

A record is (payment_id, rail, currency, amount). Its canonical line is
`payment_id|rail|currency|amount` with the amount's trailing fractional zeros removed (PostgreSQL's
`trim_scale`), so "12500.00" in HBase and numeric 12500.00 in Postgres give the same line. The hash is the
first 8 bytes of the line's MD5 as a signed 64-bit integer: Postgres computes exactly the same value in SQL
(`('x' || substr(md5(line), 1, 16))::bit(64)::bigint`), so its segment checksums never leave the server.
A segment checksum is the plain sum of its records' hashes: independent of order (HBase is time-ordered,
Postgres id-ordered) and, unlike XOR, a duplicated record changes it.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Iterable, NamedTuple

DEFAULT_SEGMENT_DEPTH = 2  # hex characters of the payment id: 256 segments


class PaymentRecord(NamedTuple):
    """What reconciliation compares: the identity and the money of one payment in one store."""

    payment_id: str
    rail: str
    currency: str
    amount: str  # canonical decimal text (see canonical_amount)


_PLAIN_DECIMAL = re.compile(r"(-?)([1-9]\d*|0)(?:\.(\d+))?")


def canonical_amount(value: object) -> str:
    """Decimal text without trailing fractional zeros; text that is no number is kept, marked, so it mismatches."""
    text = value.decode() if isinstance(value, bytes) else str(value)
    plain = _PLAIN_DECIMAL.fullmatch(text)
    if plain:  # the common case, without building a Decimal: "12500.00" -> "12500", "0.50" -> "0.5"
        sign, whole, fraction = plain.groups()
        fraction = (fraction or "").rstrip("0")
        if whole == "0" and not fraction:
            return "0"
        return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        return f"not-a-number:{text}"
    if not number.is_finite():
        return f"not-a-number:{text}"
    if number == 0:
        return "0"
    return format(number.normalize(), "f")


def make_record(payment_id: object, rail: object, currency: object, amount: object) -> PaymentRecord:
    def text(value: object) -> str:
        if value is None:
            return ""
        return value.decode() if isinstance(value, bytes) else str(value)

    return PaymentRecord(text(payment_id).lower(), text(rail), text(currency), canonical_amount(amount if amount is not None else ""))


def canonical_line(record: PaymentRecord) -> str:
    return f"{record.payment_id}|{record.rail}|{record.currency}|{record.amount}"


def record_hash(record: PaymentRecord) -> int:
    digest = hashlib.md5(canonical_line(record).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class SegmentDigest:
    """Count and order-independent checksum of the records in one payment-id segment."""

    count: int = 0
    checksum: int = 0

    def add(self, record: PaymentRecord) -> None:
        self.count += 1
        self.checksum += record_hash(record)


@dataclass
class RailCurrencyTotal:
    count: int = 0
    amount: Decimal = Decimal(0)


@dataclass
class StoreSummary:
    """One pass over a store's records: digests per segment and totals per (rail, currency)."""

    segments: dict[str, SegmentDigest] = field(default_factory=dict)
    totals: dict[tuple[str, str], RailCurrencyTotal] = field(default_factory=dict)
    rows: int = 0
    track_duplicates: bool = False  # remember every id seen (about 100 bytes each) to name duplicates
    duplicates: set[str] = field(default_factory=set)
    invalid: dict[str, str] = field(default_factory=dict)  # payment id -> rail problem (see validity)
    _seen: set[str] = field(default_factory=set, repr=False)

    def add(self, record: PaymentRecord, depth: int) -> None:
        """Count the record in its segment (the first `depth` characters of its id: UUIDs spread evenly)."""
        self.rows += 1
        if self.track_duplicates:
            if record.payment_id in self._seen:
                self.duplicates.add(record.payment_id)
            else:
                self._seen.add(record.payment_id)
        segment = self.segments.get(record.payment_id[:depth])
        if segment is None:
            segment = self.segments[record.payment_id[:depth]] = SegmentDigest()
        segment.add(record)
        total = self.totals.get((record.rail, record.currency))
        if total is None:
            total = self.totals[(record.rail, record.currency)] = RailCurrencyTotal()
        total.count += 1
        if not record.amount.startswith("not-a-number"):
            total.amount += Decimal(record.amount)


def summarize(records: Iterable[PaymentRecord], depth: int = DEFAULT_SEGMENT_DEPTH,
              track_duplicates: bool = False) -> StoreSummary:
    summary = StoreSummary(track_duplicates=track_duplicates)
    for record in records:
        summary.add(record, depth)
    return summary
