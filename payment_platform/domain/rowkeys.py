"""HBase row keys (design.md): every key the platform builds lives here, so a change of layout (a salt prefix,
say) is made in one place.

- `payments`: `{yyyyMMddHHmmss}_{paymentType}_{originatorId}_{paymentId}`, the seed's key plus the payment id, so
  two payments in the same second never overwrite each other. Time first: a time window is a row-key range.
- `payments_by_id`: row = payment id, one cell pointing at the `payments` key, so a lookup by id needs no scan.
- `payments_by_originator` / `payments_by_beneficiary`: `{partyId}_{yyyyMMddHHmmss}_{paymentId}`, one cell
  pointing at the `payments` key. Party first: one party's payments over a time window are one key range.
"""
from __future__ import annotations

from datetime import datetime, timezone

from payment_platform.domain.schema import Payment

PAYMENTS_TABLE = "payments"
PAYMENTS_BY_ID_TABLE = "payments_by_id"
PAYMENTS_BY_ORIGINATOR_TABLE = "payments_by_originator"
PAYMENTS_BY_BENEFICIARY_TABLE = "payments_by_beneficiary"
PARTY_INDEX_TABLES = {"originator": PAYMENTS_BY_ORIGINATOR_TABLE, "beneficiary": PAYMENTS_BY_BENEFICIARY_TABLE}
COLUMN_FAMILY = "cf"
STAMP_FORMAT = "%Y%m%d%H%M%S"
STAMP_LENGTH = 14
# Above every character a key holds after a stamp ('_', digits, letters): `stamp + KEY_END` bounds that second.
KEY_END = b"\xff"


def stamp_of(moment: datetime) -> str:
    """A moment's `yyyyMMddHHmmss` in UTC (the time part of every key)."""
    return moment.astimezone(timezone.utc).strftime(STAMP_FORMAT)


def row_key(payment: Payment) -> bytes:
    return f"{stamp_of(payment.created_at)}_{payment.payment_type}_{payment.originator.party_id}_{payment.payment_id}".encode()


def party_index_key(party_id: str, created_at: datetime | str, payment_id: str) -> bytes:
    """`{partyId}_{yyyyMMddHHmmss}_{paymentId}`: a row of `payments_by_originator` / `payments_by_beneficiary`.
    `created_at` may be a datetime or a stamp already computed (14 digits)."""
    stamp = created_at if isinstance(created_at, str) else stamp_of(created_at)
    return f"{party_id}_{stamp}_{payment_id}".encode()


def party_prefix(party_id: str) -> bytes:
    """The key prefix of one party's rows in a party index."""
    return f"{party_id}_".encode()


def time_prefix(moment: datetime, resolution: str = STAMP_FORMAT) -> bytes:
    """The row-key prefix of a moment, for time-window scans (e.g. resolution "%Y%m%d" for a day)."""
    return moment.astimezone(timezone.utc).strftime(resolution).encode()


def payment_id_of(key: bytes) -> str:
    """The payment id at the end of a `payments` or party-index key."""
    return key.rsplit(b"_", 1)[1].decode()


def stamp_in_row_key(key: bytes) -> str:
    """The `yyyyMMddHHmmss` of a `payments` row key."""
    return key[:STAMP_LENGTH].decode()


def stamp_in_party_key(key: bytes) -> str:
    """The `yyyyMMddHHmmss` of a party-index key (the party id may itself hold '_': read from the right)."""
    return key.rsplit(b"_", 2)[1].decode()
