"""HBase row keys (design.md): `{yyyyMMddHHmmss}_{paymentType}_{originatorId}_{paymentId}`.

The seed's key plus the payment id, so two payments in the same second never overwrite each other.
The index table `payments_by_id` maps a payment id to this key, so a lookup by id needs no scan.

Salted layout (HBASE_SALT_BUCKETS = N > 0): the key gets a prefix `{bucket:02d}_`, bucket = a stable hash of
the payment id mod N. Time-first keys send every write of a real cluster to the one region holding "now";
with the prefix, writes spread over N key ranges (regions, when the table is pre-split at the bucket
boundaries, `split_keys`). The price: a time window is N scans, one per bucket, merged by the unsalted key
(`stores.hbase.scan_time_range`). N = 0 is the original layout, unchanged.
"""
from __future__ import annotations

import zlib
from datetime import datetime, timezone

from payment_platform.domain.schema import Payment

PAYMENTS_TABLE = "payments"
PAYMENTS_BY_ID_TABLE = "payments_by_id"
COLUMN_FAMILY = "cf"
MAX_SALT_BUCKETS = 100  # the prefix has two digits
SALT_PREFIX_LENGTH = 3  # "NN_"


def check_salt_buckets(buckets: int) -> int:
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 0 <= buckets < MAX_SALT_BUCKETS:
        raise ValueError(f"HBASE_SALT_BUCKETS: must be an integer between 0 and {MAX_SALT_BUCKETS - 1}, "
                         f"got {buckets!r}")
    return buckets


def salt_bucket(payment_id: str, buckets: int) -> int:
    """The bucket of a payment: CRC-32 of its lower-case id mod `buckets` (the same in every process and
    Python version, unlike hash())."""
    return zlib.crc32(payment_id.lower().encode()) % buckets


def salt_prefix(bucket: int) -> bytes:
    return f"{bucket:02d}_".encode()


def salt_prefixes(buckets: int) -> list[bytes]:
    """The key prefix of every bucket, in key order; [b""] for the unsalted layout."""
    return [salt_prefix(b) for b in range(buckets)] if buckets else [b""]


def split_keys(buckets: int) -> list[bytes]:
    """Region boundaries that pre-split a salted table into one region per bucket (none when unsalted)."""
    return [salt_prefix(b) for b in range(1, buckets)]


def time_key(payment: Payment) -> bytes:
    """The unsalted key: time first, as the seed had it."""
    stamp = payment.created_at.astimezone(timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"{stamp}_{payment.payment_type}_{payment.originator.party_id}_{payment.payment_id}".encode()


def salted(key: bytes, payment_id: str, buckets: int) -> bytes:
    """An unsalted key with its bucket's prefix (the key itself when `buckets` is 0)."""
    return salt_prefix(salt_bucket(payment_id, buckets)) + key if buckets else key


def row_key(payment: Payment, salt_buckets: int = 0) -> bytes:
    """The payment's key in the `payments` table of a layout with `salt_buckets` buckets (0 = unsalted)."""
    return salted(time_key(payment), payment.payment_id, salt_buckets)


def unsalted(key: bytes, salt_buckets: int) -> bytes:
    """The time-first part of a key of a layout with `salt_buckets` buckets: what salted keys are ordered by."""
    return key[SALT_PREFIX_LENGTH:] if salt_buckets else key


def time_prefix(moment: datetime, resolution: str = "%Y%m%d%H%M%S") -> bytes:
    """The unsalted row-key prefix of a moment, for time-window scans (e.g. resolution "%Y%m%d" for a day)."""
    return moment.astimezone(timezone.utc).strftime(resolution).encode()


def payment_id_of(key: bytes) -> str:
    return key.rsplit(b"_", 1)[1].decode()


def hbase_shell_create(buckets: int, table_prefix: str | None = None) -> str:
    """The HBase shell commands that create the tables of a layout, pre-split at the bucket boundaries.

    Thrift1 (what the platform speaks) cannot pre-split: `createTable` takes no split keys. On a real cluster
    run these once before the first ingestion; the platform then finds the tables and leaves them as they are.
    """
    def name(table: str) -> str:
        return f"{table_prefix}_{table}" if table_prefix else table

    splits = split_keys(buckets)
    family = f"{{NAME => '{COLUMN_FAMILY}', VERSIONS => 1}}"
    payments = f"create '{name(PAYMENTS_TABLE)}', {family}"
    if splits:
        payments += ", SPLITS => [" + ", ".join(f"'{s.decode()}'" for s in splits) + "]"
    # the by-id index is keyed by a random UUID: uniform already; split it on hex digits for the same spread
    index = f"create '{name(PAYMENTS_BY_ID_TABLE)}', {family}"
    if buckets > 1:
        hexes = [format(i * 16 // buckets, "x") for i in range(1, buckets)]
        index += ", SPLITS => [" + ", ".join(f"'{h}'" for h in dict.fromkeys(hexes)) + "]"
    return payments + "\n" + index
