"""HBase row keys (design.md): `{yyyyMMddHHmmss}_{paymentType}_{originatorId}_{paymentId}`.

The seed's key plus the payment id, so two payments in the same second never overwrite each other.
The index table `payments_by_id` maps a payment id to this key, so a lookup by id needs no scan.
"""
from __future__ import annotations

from datetime import datetime, timezone

from payment_platform.domain.schema import Payment

PAYMENTS_TABLE = "payments"
PAYMENTS_BY_ID_TABLE = "payments_by_id"
COLUMN_FAMILY = "cf"


def row_key(payment: Payment) -> bytes:
    stamp = payment.created_at.astimezone(timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"{stamp}_{payment.payment_type}_{payment.originator.party_id}_{payment.payment_id}".encode()


def time_prefix(moment: datetime, resolution: str = "%Y%m%d%H%M%S") -> bytes:
    """The row-key prefix of a moment, for time-window scans (e.g. resolution "%Y%m%d" for a day)."""
    return moment.astimezone(timezone.utc).strftime(resolution).encode()


def payment_id_of(key: bytes) -> str:
    return key.rsplit(b"_", 1)[1].decode()
