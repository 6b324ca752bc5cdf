"""HBase: the `payments` wide-row table and its index tables, through happybase (Thrift1).

Works unchanged against a real HBase Thrift server and against the project's embedded gateway.

Layout (docs/architecture.md, "Stores"):
- `payments`, family `cf`, row key `{yyyyMMddHHmmss}_{paymentType}_{originatorId}_{paymentId}`
  (`payment_platform.domain.rowkeys.row_key`), one version per cell. Qualifiers (UTF-8 values):
  `paymentId`, `paymentType`, `amountValue` (decimal string, exact), `amountCurrency`, `originatorId`,
  `originatorName`, `beneficiaryId`, `beneficiaryName`, `createdAt` (ISO 8601 UTC, `...Z`), plus `status`,
  `valueDate` (only when the message has one), `raw` (the message bytes as received), `kafkaPosition`
  (`{topic}:{partition}:{offset}`, only when known; one cell, not three: the gateway's cost is per cell).
- `payments_by_id`, family `cf`: row = payment id, `cf:rowKey` = the `payments` row key. Lookup by id is two gets,
  never a scan.
- `payments_by_originator` / `payments_by_beneficiary`, family `cf`: row = `{partyId}_{yyyyMMddHHmmss}_{paymentId}`,
  `cf:rowKey` = the `payments` row key: one party's payments over a time window are one range scan.
- Salted layout (HBASE_SALT_BUCKETS = N > 0, `domain.rowkeys`): `payments` keys start with `{bucket:02d}_`; every
  index points at the salted key. Every reader of `payments` by time goes through `scan_time_range` (the store's
  `scan_time_window`), which scans each bucket and merges the rows back into time order. Thrift1 cannot pre-split
  a table at creation: `ensure_schema` creates it unsplit (fine for the embedded gateway, which has no regions);
  on a real cluster create it first with `rowkeys.hbase_shell_create(N)` (`payment-platform scaling`).
Write order per chunk: payment rows, then the party indexes, then `payments_by_id` last. `existing_ids` reads
`payments_by_id`, so a payment counted as stored has its row and both party index rows; a chunk whose write fails
part-way goes whole to the backup, and replay rewrites all four rows (the same keys and cells: idempotent).

Writes are idempotent: a payment always maps to the same row key and the same cells, and `write_payments`
skips nothing itself (the loader decides what is new); re-putting a row only rewrites identical values.
"""
from __future__ import annotations

import heapq
from functools import partial
from typing import Iterable, Iterator, Mapping, Sequence

import happybase
from Hbase_thrift import BatchMutation, Mutation  # registered by `import happybase` (its Thrift IDL)
from thriftpy2.transport import TBufferedTransport

from payment_platform.domain.rowkeys import (COLUMN_FAMILY, PARTY_INDEX_TABLES, PAYMENTS_BY_BENEFICIARY_TABLE,
                                             PAYMENTS_BY_ID_TABLE, PAYMENTS_BY_ORIGINATOR_TABLE, PAYMENTS_TABLE,
                                             check_salt_buckets, party_index_key, row_key, salt_prefixes,
                                             stamp_in_row_key, unsalted)
from payment_platform.stores.records import PaymentRecord

FAMILY_SPEC = {COLUMN_FAMILY: dict(max_versions=1)}
INDEX_COLUMN = f"{COLUMN_FAMILY}:rowKey".encode()
_CF = COLUMN_FAMILY.encode() + b":"
TABLES = (PAYMENTS_TABLE, PAYMENTS_BY_ORIGINATOR_TABLE, PAYMENTS_BY_BENEFICIARY_TABLE, PAYMENTS_BY_ID_TABLE)
TRANSPORT_BUFFER_BYTES = 4 << 20  # Thrift read and write buffer of a buffered connection (see _connect)


def _q(name: str) -> bytes:
    return _CF + name.encode()


Q_PAYMENT_ID, Q_PAYMENT_TYPE, Q_AMOUNT_VALUE, Q_AMOUNT_CURRENCY = (
    _q("paymentId"), _q("paymentType"), _q("amountValue"), _q("amountCurrency"))
Q_ORIGINATOR_ID, Q_ORIGINATOR_NAME, Q_BENEFICIARY_ID, Q_BENEFICIARY_NAME = (
    _q("originatorId"), _q("originatorName"), _q("beneficiaryId"), _q("beneficiaryName"))
Q_CREATED_AT, Q_STATUS, Q_VALUE_DATE, Q_RAW = _q("createdAt"), _q("status"), _q("valueDate"), _q("raw")
Q_KAFKA_POSITION = _q("kafkaPosition")


# `probe_writes`: a row no payment has (payment row keys start with a digit, index keys with a party or payment id)
WRITE_PROBE_ROW = b"~payment_platform:write-probe"
WRITE_PROBE_EXPECTED = b"payment_platform: a value nothing ever writes"
WRITE_PROBE_VALUE = b"payment_platform: never written (the probe's condition never holds)"


class HBaseUnavailable(ConnectionError):
    """HBase (or its Thrift server) did not answer; the message says where and why."""


def payment_cells(record: PaymentRecord) -> dict[bytes, bytes]:
    """The `cf:*` cells of one payment row."""
    p = record.payment
    cells = {
        Q_PAYMENT_ID: p.payment_id.encode(),
        Q_PAYMENT_TYPE: p.payment_type.encode(),
        Q_AMOUNT_VALUE: record.amount_text.encode(),
        Q_AMOUNT_CURRENCY: p.currency.encode(),
        Q_ORIGINATOR_ID: p.originator.party_id.encode(),
        Q_ORIGINATOR_NAME: p.originator.name.encode(),
        Q_BENEFICIARY_ID: p.beneficiary.party_id.encode(),
        Q_BENEFICIARY_NAME: p.beneficiary.name.encode(),
        Q_CREATED_AT: record.created_at_text.encode(),
        Q_STATUS: p.status.encode(),
        Q_RAW: record.raw,
    }
    if p.value_date:
        cells[Q_VALUE_DATE] = p.value_date.encode()
    if record.position is not None:
        cells[Q_KAFKA_POSITION] = payment_cells_position(record)
    return cells


def payment_cells_position(record: PaymentRecord) -> bytes | None:
    """The `cf:kafkaPosition` cell of a payment row: topic:partition:offset."""
    position = record.position
    return f"{position.topic}:{position.partition}:{position.offset}".encode() if position else None


def decode_row(cells: dict[bytes, bytes]) -> dict[str, str | bytes]:
    """A `payments` row as {qualifier: value}: text values decoded, `raw` kept as bytes."""
    out: dict[str, str | bytes] = {}
    for column, value in cells.items():
        qualifier = column.split(b":", 1)[1].decode()
        out[qualifier] = value if qualifier == "raw" else value.decode()
    return out


def _bucket_end(prefix: bytes) -> bytes | None:
    """The first key past every key starting with `prefix` (None: no bound)."""
    prefix = prefix.rstrip(b"\xff")
    return prefix[:-1] + bytes([prefix[-1] + 1]) if prefix else None


def scan_time_range(table, start: bytes | None, stop: bytes | None, salt_buckets: int, *,
                    columns: Sequence[bytes] | None = None, filter: bytes | None = None,  # noqa: A002
                    batch_size: int = 1000, limit: int | None = None,
                    reverse: bool = False) -> Iterator[tuple[bytes, dict]]:
    """The rows of `payments` whose unsalted key is in [start, stop) (None: unbounded), as (real row key, cells),
    in unsalted-key order (newest first with `reverse`), whatever the layout.

    `table` is a happybase Table; `start`/`stop` are unsalted key bounds such as `rowkeys.time_prefix(moment)`.
    Unsalted, this is one scan. Salted, it is one scan per bucket, merged: at most `limit` rows are asked of
    each bucket, and `limit` rows are returned in all; each bucket is read batch_size / N (+1) rows at a time, so
    a small page costs about as many rows as unsalted (plus round trips) instead of N times as many.
    """
    scans = []
    if check_salt_buckets(salt_buckets):  # the merge takes about batch_size / N rows of each bucket per batch_size
        batch_size = -(-batch_size // salt_buckets) + 1
    for prefix in salt_prefixes(salt_buckets):
        low = prefix + start if start is not None else (prefix or None)
        high = prefix + stop if stop is not None else _bucket_end(prefix)
        # a reversed HBase scan starts at its (inclusive) high bound and stops before its low one
        bounds = dict(row_start=high, row_stop=low) if reverse else dict(row_start=low, row_stop=high)
        rows = table.scan(**bounds, columns=columns, filter=filter, batch_size=batch_size, limit=limit,
                          reverse=reverse)
        scans.append(_within(rows, prefix, start, stop, salt_buckets) if (reverse or prefix) else rows)
    merged = scans[0] if len(scans) == 1 else heapq.merge(
        *scans, key=lambda row: unsalted(row[0], salt_buckets), reverse=reverse)
    for count, row in enumerate(merged):
        if limit is not None and count >= limit:
            return
        yield row


def _within(rows, prefix: bytes, start: bytes | None, stop: bytes | None, salt_buckets: int):
    """Rows of one bucket with their unsalted key inside [start, stop) (an inclusive reversed start bound)."""
    for key, cells in rows:
        if not key.startswith(prefix):
            continue
        bare = unsalted(key, salt_buckets)
        if (start is None or bare >= start) and (stop is None or bare < stop):
            yield key, cells


class HBaseStore:
    """The payments tables in HBase. One Thrift connection, opened lazily, reopened after an error."""

    def __init__(self, host: str, port: int = 9090, transport: str = "buffered", protocol: str = "binary",
                 timeout_ms: int = 10_000, table_prefix: str | None = None, health_timeout_ms: int = 3_000,
                 salt_buckets: int | None = None):
        if salt_buckets is None:  # the row-key layout: HBASE_SALT_BUCKETS, 0 when unset
            from payment_platform.config import salt_buckets_from_env

            salt_buckets = salt_buckets_from_env()
        self.salt_buckets = check_salt_buckets(salt_buckets)
        self.host, self.port = host, int(port)
        self.transport, self.protocol = transport, protocol
        self.timeout_ms, self.health_timeout_ms = timeout_ms, health_timeout_ms
        self.table_prefix = table_prefix
        self._connection: happybase.Connection | None = None

    def __repr__(self) -> str:
        return (f"HBaseStore({self.host}:{self.port}, {self.transport}/{self.protocol}, prefix={self.table_prefix!r}, "
                f"salt_buckets={self.salt_buckets})")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _connect(self, timeout_ms: int) -> happybase.Connection:
        connection = happybase.Connection(self.host, self.port, timeout=timeout_ms, autoconnect=False,
                                          table_prefix=self.table_prefix, transport=self.transport,
                                          protocol=self.protocol)
        if self.transport == "buffered":
            # happybase's buffered transport holds 4 KiB: a chunk's mutateRows would go out as hundreds of socket
            # writes, each one handing the GIL to the parsing thread. One buffer the size of a chunk's request
            # (docs/decisions.md, "What made ingestion fast").
            connection._transport_class = partial(TBufferedTransport, buf_size=TRANSPORT_BUFFER_BYTES)
            connection._refresh_thrift_client()
        try:
            connection.open()
        except Exception as error:
            raise HBaseUnavailable(f"HBase Thrift server {self.address} unreachable: {error!r}") from error
        return connection

    def connection(self) -> happybase.Connection:
        if self._connection is None:
            self._connection = self._connect(self.timeout_ms)
        return self._connection

    def reset(self) -> None:
        """Drop the connection (after an error its transport state is unknown); the next call reconnects."""
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - closing a broken socket: nothing left to do
                pass

    close = reset

    def table(self, name: str) -> happybase.Table:
        return self.connection().table(name)

    # -- schema and health -----------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create the payments table and its three indexes (family `cf`, one version) if missing. Idempotent."""
        connection = self.connection()
        existing = {t.decode() if isinstance(t, bytes) else t for t in connection.tables()}
        for name in TABLES:
            if name not in existing:
                try:
                    connection.create_table(name, FAMILY_SPEC)
                except Exception as error:  # another process created it first: fine, anything else is not
                    if "AlreadyExists" not in type(error).__name__ and "exists" not in str(error).lower():
                        raise

    def health(self) -> dict:
        """Raises HBaseUnavailable unless the server answers within the health timeout; returns its tables."""
        connection = self._connect(self.health_timeout_ms)
        try:
            tables = sorted(t.decode() if isinstance(t, bytes) else t for t in connection.tables())
        except Exception as error:
            raise HBaseUnavailable(f"HBase Thrift server {self.address} did not answer: {error!r}") from error
        finally:
            connection.close()
        return {"address": self.address, "tables": tables}

    # -- writes ----------------------------------------------------------------------------------------
    def key_of(self, record: PaymentRecord) -> bytes:
        """The record's `payments` row key in this store's layout."""
        if record.salt_buckets == self.salt_buckets:
            return record.row_key
        return row_key(record.payment, self.salt_buckets)

    def prepare(self, records: Sequence[PaymentRecord]) -> dict[str, tuple[BatchMutation, ...]]:
        """The Thrift mutations of each record's rows, by payment id, one per table of `TABLES` in that order.

        Pure CPU work, separate from sending, so a caller can build the next chunk's rows while the server
        is still storing the previous one (`write_payments(records, prepared=...)`).
        """
        prepared = {}
        for record in records:
            key = self.key_of(record)
            p = record.payment
            stamp = stamp_in_row_key(key)
            pointer = [Mutation(False, INDEX_COLUMN, key, True)]
            prepared[record.payment_id] = (
                BatchMutation(key, [Mutation(False, column, value, True)
                                    for column, value in payment_cells(record).items()]),
                BatchMutation(party_index_key(p.originator.party_id, stamp, p.payment_id), pointer),
                BatchMutation(party_index_key(p.beneficiary.party_id, stamp, p.payment_id), pointer),
                BatchMutation(record.payment_id.encode(), pointer))
        return prepared

    def write_payments(self, records: Sequence[PaymentRecord],
                       prepared: Mapping[str, tuple[BatchMutation, ...]] | None = None) -> int:
        """Put the payment rows, then their party index rows, then their `payments_by_id` rows, each table as one
        mutateRows call (what happybase's `Table.batch()` sends, minus its per-cell bookkeeping).

        Raises on any failure (the caller backs the records up); on success every record is in HBase.
        """
        if not records:
            return 0
        if prepared is None:
            prepared = self.prepare(records)
        rows = [prepared[record.payment_id] for record in records]
        try:
            connection = self.connection()
            client = connection.client
            for position, table in enumerate(TABLES):
                client.mutateRows(self.table(table).name, [row[position] for row in rows], {})
        except Exception:
            self.reset()
            raise
        return len(records)

    def probe_writes(self) -> None:
        """Raises (the server's error) unless each table a payment is written to takes a put now; writes nothing.

        Proof that a lone payment the server refused is poison and not a table that refuses everything (replay's
        rule, `replay.replayer`). Each table gets a checkAndPut whose condition never holds: the server runs a
        put's checks (table exists and is enabled, column family, write permission, read-only table, space quota,
        memory pressure) before it compares, then applies nothing. A real put (and a delete of it) would show a row
        to every reader in between and leave it behind if the process died; a delete alone leaves a tombstone and
        passes a NO_INSERTS quota. It never touches a payment's row: no row key of a payment starts with `~`.
        """
        try:
            client = self.connection().client
            probe = Mutation(False, INDEX_COLUMN, WRITE_PROBE_VALUE, True)
            for table in TABLES:
                # the condition: the probe row's cell holds WRITE_PROBE_EXPECTED, which nothing ever writes (the
                # put would write WRITE_PROBE_VALUE, and only if the condition held)
                client.checkAndPut(self.table(table).name, WRITE_PROBE_ROW, INDEX_COLUMN, WRITE_PROBE_EXPECTED,
                                   probe, {})
        except Exception:
            self.reset()
            raise

    def remove_payments(self, records: Sequence[PaymentRecord]) -> int:
        """Delete the rows these very messages wrote (row and index entry), when the row still carries the
        message's Kafka position: a poison payment another store refused must land nowhere. Returns how many."""
        removed = 0
        try:
            payments = self.table(PAYMENTS_TABLE)
            for record in records:
                key = record.row_key
                cells = payments.row(key, columns=[Q_KAFKA_POSITION])
                if record.position is None or cells.get(Q_KAFKA_POSITION) != payment_cells_position(record):
                    continue
                rows = self.prepare([record])[record.payment_id]  # the payment row, then each index row
                for table, row in zip(TABLES[1:], rows[1:]):  # index rows that point at this payment row
                    index = self.table(table)
                    if index.row(row.row, columns=[INDEX_COLUMN]).get(INDEX_COLUMN) == key:
                        index.delete(row.row)
                payments.delete(key)
                removed += 1
        except Exception:
            self.reset()
            raise
        return removed

    def write_party_index(self, entries: Sequence[tuple[bytes, str, str, str, str]]) -> int:
        """Put party index rows for payments already stored: (row key, payment id, originator id, beneficiary id,
        stamp) each (backfill of payments written before the index existed; the same keys and cells as ingestion)."""
        if not entries:
            return 0
        try:
            client = self.connection().client
            for table, party in ((PAYMENTS_BY_ORIGINATOR_TABLE, 2), (PAYMENTS_BY_BENEFICIARY_TABLE, 3)):
                client.mutateRows(self.table(table).name, [
                    BatchMutation(party_index_key(entry[party], entry[4], entry[1]),
                                  [Mutation(False, INDEX_COLUMN, entry[0], True)]) for entry in entries], {})
        except Exception:
            self.reset()
            raise
        return len(entries)

    # -- reads -----------------------------------------------------------------------------------------
    def existing_ids(self, payment_ids: Iterable[str]) -> set[str]:
        """Which of these payment ids are already in HBase (one multi-get on the index table)."""
        ids = [i.encode() for i in payment_ids]
        if not ids:
            return set()
        try:
            found = self.table(PAYMENTS_BY_ID_TABLE).rows(ids, columns=[INDEX_COLUMN])
        except Exception:
            self.reset()
            raise
        return {key.decode() for key, cells in found if cells}

    def row_key_for(self, payment_id: str) -> bytes | None:
        cells = self.table(PAYMENTS_BY_ID_TABLE).row(payment_id.encode(), columns=[INDEX_COLUMN])
        return cells.get(INDEX_COLUMN)

    def get_payment(self, payment_id: str) -> dict[str, str | bytes] | None:
        """The payment row for an id via the index (no scan), decoded; None if absent."""
        key = self.row_key_for(payment_id)
        if key is None:
            return None
        cells = self.table(PAYMENTS_TABLE).row(key)
        return decode_row(cells) if cells else None

    def scan_payments(self, row_prefix: bytes | None = None, columns: Sequence[bytes] | None = None,
                      batch_size: int = 1000):
        """Stream (row_key, cells) of the payments table in time order; `row_prefix` is an unsalted key prefix
        (e.g. `rowkeys.time_prefix(day, "%Y%m%d")`), in any layout."""
        return self.scan_time_window(row_prefix or None, _bucket_end(row_prefix) if row_prefix else None,
                                     columns=columns, batch_size=batch_size)

    def scan_time_window(self, start: bytes | None, stop: bytes | None, *, newest_first: bool = False,
                         columns: Sequence[bytes] | None = None, filter: bytes | None = None,  # noqa: A002
                         batch_size: int = 1000, limit: int | None = None):
        """Stream (row_key, cells) of `payments` rows whose unsalted key k has start <= k < stop, oldest first or
        newest first, in this store's layout (the real, possibly salted keys are returned).

        The one place that range-scans the payments table by time (readers go through it): a salted layout fans
        out over its buckets and merges them back into time order (`scan_time_range`).
        """
        return scan_time_range(self.table(PAYMENTS_TABLE), start, stop, self.salt_buckets, columns=columns,
                               filter=filter, batch_size=batch_size, limit=limit, reverse=newest_first)

    def scan_party_index(self, role: str, start: bytes, stop: bytes, *, newest_first: bool = True,
                         batch_size: int = 1000):
        """Stream (index key, payments row key) of a party index (`role` "originator" or "beneficiary") with
        start <= key < stop, newest first by default."""
        table = self.table(PARTY_INDEX_TABLES[role])
        if newest_first:
            scan = table.scan(row_start=stop, row_stop=start, columns=[INDEX_COLUMN], batch_size=batch_size,
                              reverse=True)
            return ((key, cells[INDEX_COLUMN]) for key, cells in scan if key < stop and INDEX_COLUMN in cells)
        return ((key, cells[INDEX_COLUMN]) for key, cells in table.scan(
            row_start=start, row_stop=stop, columns=[INDEX_COLUMN], batch_size=batch_size) if INDEX_COLUMN in cells)

    def payment_rows(self, row_keys: Sequence[bytes], columns: Sequence[bytes] | None = None) -> dict[bytes, dict]:
        """Several `payments` rows by row key (one multi-get); a key with no row is absent from the answer."""
        if not row_keys:
            return {}
        return {key: cells for key, cells in self.table(PAYMENTS_TABLE).rows(list(row_keys), columns=columns)
                if cells}

    def count_index(self, batch_size: int = 5000) -> int:
        """Number of payments in the index table (a key-only scan)."""
        return sum(1 for _ in self.table(PAYMENTS_BY_ID_TABLE).scan(filter=b"KeyOnlyFilter()", batch_size=batch_size))
