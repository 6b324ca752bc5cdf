"""HBase row keys (docs/architecture.md): every key the platform builds lives here, so a change of layout (a salt prefix,
say) is made in one place.

- `payments`: `{yyyyMMddHHmmss}_{paymentType}_{originatorId}_{paymentId}`: second, rail and originator plus the
  payment id, so two payments in the same second never overwrite each other. Time first: a time window is a
  row-key range.
- `payments_by_id`: row = payment id, one cell pointing at the `payments` key, so a lookup by id needs no scan.
- `payments_by_originator` / `payments_by_beneficiary`: `{partyId}_{yyyyMMddHHmmss}_{paymentId}`, one cell
  pointing at the `payments` key (the real, salted one). Party first: one party's payments over a time window are
  one key range; party ids spread the writes already, so the party indexes need no salt.

Salted layout (HBASE_SALT_BUCKETS = N > 0): `payments` keys get a prefix `{bucket:02d}_`, bucket = CRC-32 of the
payment id mod N. Time-first keys send every write of a real cluster to the one region holding "now"; with the
prefix, writes spread over N key ranges (regions, when the table is pre-split at `split_keys`). The price: a time
window is N scans, one per bucket, merged by the unsalted key (`stores.hbase.scan_time_range`). N = 0 is the
original layout, unchanged.
"""
from __future__ import annotations

import zlib
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
MAX_SALT_BUCKETS = 100  # the salt prefix has two digits
SALT_PREFIX_LENGTH = 3  # "NN_"


def stamp_of(moment: datetime) -> str:
    """A moment's `yyyyMMddHHmmss` in UTC (the time part of every key)."""
    return moment.astimezone(timezone.utc).strftime(STAMP_FORMAT)


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
    """The unsalted `payments` key: time first, as the seed had it."""
    return f"{stamp_of(payment.created_at)}_{payment.payment_type}_{payment.originator.party_id}_{payment.payment_id}".encode()


def salted(key: bytes, payment_id: str, buckets: int) -> bytes:
    """An unsalted key with its bucket's prefix (the key itself when `buckets` is 0)."""
    return salt_prefix(salt_bucket(payment_id, buckets)) + key if buckets else key


def row_key(payment: Payment, salt_buckets: int = 0) -> bytes:
    """The payment's key in the `payments` table of a layout with `salt_buckets` buckets (0 = unsalted)."""
    return salted(time_key(payment), payment.payment_id, salt_buckets)


def unsalted(key: bytes, salt_buckets: int) -> bytes:
    """The time-first part of a key of a layout with `salt_buckets` buckets: what salted keys are ordered by."""
    return key[SALT_PREFIX_LENGTH:] if salt_buckets else key


def hbase_shell_create(buckets: int, table_prefix: str | None = None) -> str:
    """The HBase shell commands that create the tables of a layout, `payments` pre-split at the bucket boundaries.

    Thrift1 (what the platform speaks) cannot pre-split: `createTable` takes no split keys. On a real cluster
    run these once before the first ingestion; the platform then finds the tables and leaves them as they are.
    """
    def name(table: str) -> str:
        return f"{table_prefix}_{table}" if table_prefix else table

    family = f"{{NAME => '{COLUMN_FAMILY}', VERSIONS => 1}}"
    splits = split_keys(buckets)
    lines = [f"create '{name(PAYMENTS_TABLE)}', {family}"
             + (", SPLITS => [" + ", ".join(f"'{s.decode()}'" for s in splits) + "]" if splits else "")]
    # the by-id index is keyed by a random UUID: uniform already; split it on hex digits for the same spread
    hexes = list(dict.fromkeys(format(i * 16 // buckets, "x") for i in range(1, buckets))) if buckets > 1 else []
    lines.append(f"create '{name(PAYMENTS_BY_ID_TABLE)}', {family}"
                 + (", SPLITS => [" + ", ".join(f"'{h}'" for h in hexes) + "]" if hexes else ""))
    # party-first keys spread by party already; a real cluster splits them as they grow
    lines += [f"create '{name(t)}', {family}" for t in (PAYMENTS_BY_ORIGINATOR_TABLE, PAYMENTS_BY_BENEFICIARY_TABLE)]
    return "\n".join(lines)


def party_index_key(party_id: str, created_at: datetime | str, payment_id: str) -> bytes:
    """`{partyId}_{yyyyMMddHHmmss}_{paymentId}`: a row of `payments_by_originator` / `payments_by_beneficiary`.
    `created_at` may be a datetime or a stamp already computed (14 digits)."""
    stamp = created_at if isinstance(created_at, str) else stamp_of(created_at)
    return f"{party_id}_{stamp}_{payment_id}".encode()


def party_prefix(party_id: str) -> bytes:
    """The key prefix of one party's rows in a party index."""
    return f"{party_id}_".encode()


def time_prefix(moment: datetime, resolution: str = STAMP_FORMAT) -> bytes:
    """The unsalted row-key prefix of a moment, for time-window scans (e.g. resolution "%Y%m%d" for a day)."""
    return moment.astimezone(timezone.utc).strftime(resolution).encode()


def payment_id_of(key: bytes) -> str:
    """The payment id at the end of a `payments` or party-index key."""
    return key.rsplit(b"_", 1)[1].decode()


def stamp_in_row_key(key: bytes) -> str:
    """The `yyyyMMddHHmmss` of a `payments` row key, salted (`NN_` first: a stamp never has '_' third) or not."""
    start = SALT_PREFIX_LENGTH if key[2:3] == b"_" else 0
    return key[start:start + STAMP_LENGTH].decode()


def stamp_in_party_key(key: bytes) -> str:
    """The `yyyyMMddHHmmss` of a party-index key (the party id may itself hold '_': read from the right)."""
    return key.rsplit(b"_", 2)[1].decode()
