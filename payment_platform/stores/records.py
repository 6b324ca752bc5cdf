"""What the store modules write: a validated payment with the exact bytes it arrived as and where it came from.

Shared by the HBase, Postgres and backup modules (and by replay, which rebuilds records from the backup), so
every store sees the same raw document and Kafka position for a payment.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timezone
from functools import cached_property

from payment_platform.domain.rowkeys import row_key
from payment_platform.domain.schema import Payment

STORE_HBASE = "hbase"
STORE_POSTGRES = "postgres"
STORE_REDIS = "redis"
DATA_STORES = (STORE_HBASE, STORE_POSTGRES)  # the stores of record; Redis is an optimisation and metrics sink


@dataclass(frozen=True)
class KafkaPosition:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class PaymentRecord:
    """A payment to land: the parsed payment, its raw message bytes, and its Kafka position (None on replay
    of a payment whose position is unknown)."""

    payment: Payment
    raw: bytes
    position: KafkaPosition | None = None
    salt_buckets: int = 0  # the HBase row-key layout (HBASE_SALT_BUCKETS) its `row_key` is for

    @property
    def payment_id(self) -> str:
        return self.payment.payment_id

    # Derived once per record and shared by the HBase and Postgres writes.
    @cached_property
    def row_key(self) -> bytes:
        """The HBase row key of the payment (domain.rowkeys.row_key) in the record's layout."""
        return row_key(self.payment, self.salt_buckets)

    @cached_property
    def created_at_text(self) -> str:
        """created_at in one canonical form (UTC, microseconds, `Z`), the same in every store."""
        return self.payment.created_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    @cached_property
    def amount_text(self) -> str:
        """The amount exactly as the message gave it (a decimal string with the currency's minor units)."""
        value = self.payment.doc.get("amount", {}).get("value")
        return value if isinstance(value, str) else str(self.payment.amount)
