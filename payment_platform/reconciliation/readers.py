"""Read (payment_id, rail, currency, amount) out of HBase and Postgres for reconciliation.

Both readers use the store classes' own connections (`HBaseStore.table`, `PostgresLedger`'s DSN) and
implement `compare.PaymentSource`:
- HBase has no server-side computation over Thrift1, so `summarize` streams the `payments` table (three
  cells per row: paymentType, amountValue, amountCurrency; the payment id comes from the row key) and sums
  digests client-side. A time window is a row-key range (keys start with yyyyMMddHHmmss; with salted keys, one
  range per bucket, merged: `stores.hbase.scan_time_range`). Segment records
  are fetched through the `payments_by_id` index (a prefix scan of ids, then one multi-get), never a scan
  of the whole table again.
- Postgres computes every segment digest in SQL (the same MD5 formula as `digest.record_hash`), so only
  one row per segment leaves the server; segment records come from the primary key.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Callable, Collection, Iterable, Iterator, Sequence

import psycopg2
from psycopg2 import sql

from payment_platform.domain.rowkeys import (
    COLUMN_FAMILY,
    PAYMENTS_BY_ID_TABLE,
    PAYMENTS_TABLE,
    check_salt_buckets,
    salted,
    time_prefix,
)
from payment_platform.lib.read_ahead import in_batches, read_ahead
from payment_platform.reconciliation.compare import AllPayments, BelowCut, IdSegments, PaymentIds, Scope, TimeWindow
from payment_platform.reconciliation.cut import Cut, Throttle
from payment_platform.reconciliation.digest import (
    PaymentRecord,
    RailCurrencyTotal,
    SegmentDigest,
    StoreSummary,
    make_record,
)
from payment_platform.reconciliation.validity import RailChecker, allowed_table, rail_problem
from payment_platform.stores.postgres import lock_schema

_CF = COLUMN_FAMILY.encode() + b":"
Q_PAYMENT_TYPE, Q_AMOUNT_VALUE, Q_AMOUNT_CURRENCY = _CF + b"paymentType", _CF + b"amountValue", _CF + b"amountCurrency"
Q_INDEX_ROW_KEY = _CF + b"rowKey"
Q_KAFKA_POSITION = _CF + b"kafkaPosition"  # topic:partition:offset (stores.hbase.payment_cells_position)
RECORD_COLUMNS = [Q_PAYMENT_TYPE, Q_AMOUNT_VALUE, Q_AMOUNT_CURRENCY]
MULTI_GET = 2000  # row keys per getRows call
SCAN_BATCH = 5000  # rows per scannerGetList call


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]




def _window_bounds(window: TimeWindow) -> tuple[bytes, bytes]:
    return time_prefix(window.start), time_prefix(window.end)


class HBaseReader:
    """The `payments` table of HBase as a reconciliation source (see the module docstring)."""

    name = "hbase"

    def __init__(self, table: Callable[[str], object], scan_batch: int = SCAN_BATCH, salt_buckets: int = 0,
                 throttle: Throttle | None = None):
        self._table = table  # name -> happybase.Table, e.g. HBaseStore.table
        self.scan_batch = scan_batch
        self.throttle = throttle or Throttle()  # pauses between batches (checks_settings.busy_share)
        self.salt_buckets = check_salt_buckets(salt_buckets)  # the row-key layout (HBASE_SALT_BUCKETS)

    @classmethod
    def from_store(cls, store, scan_batch: int = SCAN_BATCH, throttle: Throttle | None = None) -> "HBaseReader":
        return cls(store.table, scan_batch, salt_buckets=store.salt_buckets, throttle=throttle)

    @staticmethod
    def _record(key: bytes, cells: dict[bytes, bytes]) -> PaymentRecord:
        return make_record(key.rsplit(b"_", 1)[-1], cells.get(Q_PAYMENT_TYPE), cells.get(Q_AMOUNT_CURRENCY),
                           cells.get(Q_AMOUNT_VALUE))

    def _scan(self, scope: AllPayments | TimeWindow, columns: list[bytes]) -> Iterator[tuple[bytes, dict]]:
        from payment_platform.stores.hbase import scan_time_range

        table = self._table(PAYMENTS_TABLE)
        if isinstance(scope, TimeWindow):
            start, stop = _window_bounds(scope)
            rows = scan_time_range(table, start, stop, self.salt_buckets, columns=columns,
                                   batch_size=self.scan_batch)
        else:  # the whole table, in any layout: one scan (digests do not depend on row order)
            rows = table.scan(columns=columns, batch_size=self.scan_batch)
        for batch in read_ahead(in_batches(rows, self.scan_batch), 4, name="hbase-scan-prefetch"):
            yield from batch
            self.throttle.tick()

    def row_keys(self, payment_ids: Iterable[str]) -> list[bytes]:
        """Row keys of these payments through the index table (ids without an entry are left out)."""
        index, keys = self._table(PAYMENTS_BY_ID_TABLE), []
        for chunk in _chunks(sorted(payment_ids), MULTI_GET):
            for _, cells in index.rows([i.encode() for i in chunk], columns=[Q_INDEX_ROW_KEY]):
                if cells.get(Q_INDEX_ROW_KEY):
                    keys.append(cells[Q_INDEX_ROW_KEY])
            self.throttle.tick()
        return keys

    def _fetch_rows(self, keys: Sequence[bytes], columns: list[bytes] = RECORD_COLUMNS
                    ) -> Iterator[tuple[bytes, dict]]:
        table = self._table(PAYMENTS_TABLE)
        for chunk in _chunks(keys, MULTI_GET):
            for key, cells in table.rows(list(chunk), columns=columns):
                if cells:
                    yield key, cells
            self.throttle.tick()

    def _fetch(self, keys: Sequence[bytes]) -> Iterator[PaymentRecord]:
        for key, cells in self._fetch_rows(keys):
            yield self._record(key, cells)

    def records_with_key_hints(self, hints: dict[str, bytes | None]) -> Iterator[PaymentRecord]:
        """The rows of these payments: first by the row key each message gives (unsalted, `rowkeys.time_key`; put
        in this reader's layout here), one multi-get, then through the index for the ids whose row was not under
        that key (a duplicated id first landed under another key)."""
        found: set[str] = set()
        keys = [salted(key, pid, self.salt_buckets) for pid, key in hints.items() if key]
        for record in self._fetch(keys):
            if record.payment_id in hints:
                found.add(record.payment_id)
                yield record
        missing = [pid for pid in hints if pid not in found]
        if missing:
            yield from self._fetch(self.row_keys(missing))

    def _ids_with_prefixes(self, prefixes: Collection[str]) -> list[str]:
        index, ids = self._table(PAYMENTS_BY_ID_TABLE), []
        for prefix in sorted(prefixes):
            for key, _ in index.scan(row_prefix=prefix.encode(), filter=b"KeyOnlyFilter()", batch_size=self.scan_batch):
                ids.append(key.decode())
            self.throttle.tick()
        return ids

    def _rows(self, scope: Scope, columns: list[bytes], wanted: Collection[str] | None = None, depth: int = 0
              ) -> Iterator[tuple[bytes, dict]]:
        """The rows of a scope (without a cut), only those of the `wanted` id segments when given."""
        def keep(pid: str) -> bool:
            return wanted is None or pid[:depth] in wanted

        if isinstance(scope, PaymentIds):
            yield from self._fetch_rows(self.row_keys(i for i in scope.ids if keep(i)), columns)
        elif isinstance(scope, IdSegments):
            ids = set(self._ids_with_prefixes(scope.prefixes)) | set(scope.ids)
            yield from self._fetch_rows(self.row_keys(i for i in ids if keep(i)), columns)
        elif isinstance(scope, AllPayments) and wanted is not None:  # narrowing: through the index, no rescan
            yield from self._fetch_rows(self.row_keys(self._ids_with_prefixes(wanted)), columns)
        else:  # a window is a key range: (re)scan it
            for key, cells in self._scan(scope, columns):
                if wanted is None or keep(self._record(key, cells).payment_id):
                    yield key, cells

    def _records(self, scope: Scope, wanted: Collection[str] | None = None, depth: int = 0
                 ) -> Iterator[PaymentRecord]:
        """The records of a scope; under a cut, the position cell is read too and rows at or past the cut (in
        flight) are left out."""
        cut = scope.cut if isinstance(scope, BelowCut) else None
        inner = scope.inner if cut is not None else scope
        columns = [*RECORD_COLUMNS, Q_KAFKA_POSITION] if cut is not None else RECORD_COLUMNS
        for key, cells in self._rows(inner, columns, wanted, depth):
            if cut is None or cut.below_cell(cells.get(Q_KAFKA_POSITION)):
                yield self._record(key, cells)

    def iter_records(self, scope: Scope) -> Iterator[PaymentRecord]:
        yield from self._records(scope)

    def summarize(self, scope: Scope, depth: int, check_rails: bool = True) -> StoreSummary:
        summary = StoreSummary(track_duplicates=True)
        checker = RailChecker()
        for record in self.iter_records(scope):
            summary.add(record, depth)
            if check_rails:
                problem = checker.problem(record)
                if problem:
                    summary.invalid[record.payment_id] = problem
        return summary

    def records(self, scope: Scope, segments: Collection[str], depth: int) -> Iterator[PaymentRecord]:
        yield from self._records(scope, set(segments), depth)



# -- Postgres ---------------------------------------------------------------------------------------------
def _as_uuid(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def uuid_bounds(prefix: str) -> tuple[str, str | None]:
    """The uuid range of a segment prefix of hex characters: [prefix 0..., next prefix 0...), None past ff...f."""
    digits = prefix.replace("-", "").lower()
    lower = _as_uuid(digits.ljust(32, "0"))
    value = int(digits, 16) + 1
    if value >= 16 ** len(digits):
        return lower, None
    return lower, _as_uuid(format(value, f"0{len(digits)}x").ljust(32, "0"))


def below_cut_condition(cut: Cut) -> tuple[sql.Composable, list]:
    """SQL true for a row stored from a Kafka position below the cut, or with no position (`Cut.below`)."""
    no_position = sql.SQL("kafka_topic IS NULL OR kafka_partition IS NULL OR kafka_offset IS NULL")
    if not cut.offsets:
        return sql.SQL("({})").format(no_position), []
    whens = sql.SQL(" ").join(sql.SQL("WHEN kafka_topic = %s AND kafka_partition = %s THEN %s::bigint")
                              for _ in cut.offsets)
    return (sql.SQL("({} OR kafka_offset < CASE {} ELSE 0 END)").format(no_position, whens),
            [v for offset in cut.offsets for v in offset])


_LINE = sql.SQL("payment_id::text || '|' || payment_type || '|' || currency || '|' || trim_scale(amount)::text")
_HASH = sql.SQL("('x' || substr(md5({line}), 1, 16))::bit(64)::bigint").format(line=_LINE)


class PostgresReader:
    """The `payments` table of the Postgres ledger as a reconciliation source (see the module docstring)."""

    name = "postgres"

    def __init__(self, connect: Callable[[], "psycopg2.extensions.connection"], schema: str = "public",
                 throttle: Throttle | None = None):
        self._connect = connect
        self.schema = schema
        self.throttle = throttle  # a store check's: each query waits its turn as the HBase batches do
        self.table = self._t("payments")
        self._created: set[str] = set()  # the tables of its own this reader has made sure of

    def _t(self, name: str) -> sql.Composable:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    @classmethod
    def from_dsn(cls, dsn: str, schema: str = "public", connect_timeout_s: int = 5,
                 statement_timeout_ms: int = 120_000, throttle: Throttle | None = None) -> "PostgresReader":
        return cls(lambda: psycopg2.connect(dsn, connect_timeout=connect_timeout_s, application_name="reconciliation",
                                            options=f"-c statement_timeout={int(statement_timeout_ms)}"), schema,
                   throttle)

    @classmethod
    def from_ledger(cls, ledger, throttle: Throttle | None = None) -> "PostgresReader":
        return cls.from_dsn(ledger.dsn, ledger.schema, throttle=throttle)

    def _query(self, query: sql.Composable, params: Sequence = ()) -> list[tuple]:
        if self.throttle is not None:
            self.throttle.tick()
        connection = self._connect()
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(query, params)
                return cursor.fetchall()
        finally:
            connection.close()

    def _create_table(self, name: str, columns: str) -> None:
        """CREATE TABLE IF NOT EXISTS, once per reader, under the schema's DDL lock: the lease runs of several
        partitions check their batches at the same moment, and two unlocked twins collide."""
        if name in self._created:
            return
        connection = self._connect()
        try:
            with connection, connection.cursor() as cursor:
                lock_schema(cursor, self.schema)
                cursor.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (" + columns + ")").format(self._t(name)))
        finally:
            connection.close()
        self._created.add(name)

    def _execute(self, query: sql.Composable, params: Sequence = ()) -> None:
        connection = self._connect()
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(query, params)
        finally:
            connection.close()

    def _where(self, scope: Scope) -> tuple[sql.Composable, list]:
        if isinstance(scope, BelowCut):
            inner, params = self._where(scope.inner)
            below, cut_params = below_cut_condition(scope.cut)
            return sql.SQL("({}) AND {}").format(inner, below), [*params, *cut_params]
        if isinstance(scope, IdSegments):
            ranges = [uuid_bounds(prefix) for prefix in sorted(scope.prefixes)]
            parts = [sql.SQL("(payment_id >= %s::uuid AND payment_id < %s::uuid)") if upper
                     else sql.SQL("payment_id >= %s::uuid") for _, upper in ranges]
            params = [b for lower, upper in ranges for b in ((lower, upper) if upper else (lower,))]
            if scope.ids:
                parts.append(sql.SQL("payment_id = ANY(%s::uuid[])"))
                params.append(sorted(scope.ids))
            return (sql.SQL(" OR ").join(parts) if parts else sql.SQL("FALSE")), params
        if isinstance(scope, TimeWindow):
            return sql.SQL("created_at >= %s AND created_at < %s"), [scope.start, scope.end]
        if isinstance(scope, PaymentIds):
            return sql.SQL("payment_id = ANY(%s::uuid[])"), [sorted(scope.ids)]
        return sql.SQL("TRUE"), []

    def summarize(self, scope: Scope, depth: int, check_rails: bool = True) -> StoreSummary:
        where, params = self._where(scope)
        summary = StoreSummary()
        digests = self._query(sql.SQL("SELECT left(payment_id::text, %s), count(*), sum({hash}) FROM {table} "
                                      "WHERE {where} GROUP BY 1").format(hash=_HASH, table=self.table, where=where),
                              [depth, *params])
        for segment, count, checksum in digests:
            summary.segments[segment] = SegmentDigest(int(count), int(checksum))
            summary.rows += int(count)
        totals = self._query(sql.SQL("SELECT payment_type, currency, count(*), sum(amount) FROM {table} "
                                     "WHERE {where} GROUP BY 1, 2").format(table=self.table, where=where), params)
        for rail, currency, count, amount in totals:
            summary.totals[(rail, currency)] = RailCurrencyTotal(int(count), amount)
        summary.duplicates = {row[0] for row in self._query(
            sql.SQL("SELECT payment_id::text FROM {table} WHERE {where} GROUP BY 1 HAVING count(*) > 1").format(
                table=self.table, where=where), params)}
        if check_rails:
            summary.invalid = self.invalid_for_rail(scope)
        return summary

    def invalid_for_rail(self, scope: Scope, limit: int = 1000) -> dict[str, str]:
        """Rows whose amount or currency breaks their rail's rule (evaluated in SQL), with the reason."""
        where, params = self._where(scope)
        allowed = sql.SQL(", ").join(sql.SQL("(%s, %s, %s, %s::numeric)") for _ in allowed_table())
        query = sql.SQL(
            "SELECT p.payment_id::text, p.payment_type, p.currency, p.amount::text FROM {table} p "
            "LEFT JOIN (VALUES {allowed}) AS r(rail, currency, minor, max_amount) "
            "ON r.rail = p.payment_type AND r.currency = p.currency "
            "WHERE ({where}) AND (r.rail IS NULL OR p.amount <= 0 OR scale(trim_scale(p.amount)) > r.minor "
            "OR (r.max_amount IS NOT NULL AND p.amount > r.max_amount)) LIMIT %s").format(
                table=self.table, allowed=allowed, where=where)
        flat = [value for row in allowed_table() for value in row]
        found = {}
        for pid, rail, currency, amount in self._query(query, [*flat, *params, limit]):
            found[pid] = rail_problem(make_record(pid, rail, currency, amount)) or "breaks its rail rule"
        return found

    def records(self, scope: Scope, segments: Collection[str], depth: int) -> Iterator[PaymentRecord]:
        """The segments' rows: each segment is a primary-key range [prefix000..., next prefix000...)."""
        where, params = self._where(scope)
        ranges = [uuid_bounds(prefix) for prefix in sorted(segments)]
        in_segments = sql.SQL(" OR ").join(
            sql.SQL("(payment_id >= %s::uuid AND payment_id < %s::uuid)") if upper else sql.SQL("payment_id >= %s::uuid")
            for _, upper in ranges)
        bounds = [b for lower, upper in ranges for b in ((lower, upper) if upper else (lower,))]
        rows = self._query(sql.SQL("SELECT payment_id::text, payment_type, currency, amount FROM {table} "
                                   "WHERE ({where}) AND ({segments})").format(
                                       table=self.table, where=where, segments=in_segments), [*params, *bounds])
        for row in rows:
            yield make_record(*row)

    def iter_records(self, scope: Scope) -> Iterator[PaymentRecord]:
        where, params = self._where(scope)
        for row in self._query(sql.SQL("SELECT payment_id::text, payment_type, currency, amount FROM {table} "
                                       "WHERE {where}").format(table=self.table, where=where), params):
            yield make_record(*row)

    def count(self) -> int:
        return int(self._query(sql.SQL("SELECT count(*) FROM {table}").format(table=self.table))[0][0])

    def latest_created_at(self, not_before: datetime | None = None, not_after: datetime | None = None
                          ) -> datetime | None:
        """The latest created_at, among those in [not_before, not_after] when given: bounded, the answer is always a
        date Python can hold and compute with (the column itself may hold 9999-12-31, even 'infinity')."""
        where, params = [sql.SQL("TRUE")], []
        for bound, op in ((not_before, ">="), (not_after, "<=")):
            if bound is not None:
                where.append(sql.SQL("created_at " + op + " %s"))
                params.append(bound)
        return self._query(sql.SQL("SELECT max(created_at) FROM {} WHERE {}").format(
            self.table, sql.SQL(" AND ").join(where)), params)[0][0]

    def created_at_outside(self, earliest: datetime, latest: datetime, limit: int) -> tuple[int, dict[str, str]]:
        """Payments whose created_at lies outside [earliest, latest]: how many, and a sample id -> created_at (as
        the database prints it: no conversion that could overflow)."""
        rows = self._query(sql.SQL("SELECT count(*) OVER (), payment_id::text, created_at::text FROM {} "
                                   "WHERE NOT (created_at >= %s AND created_at <= %s) "
                                   "ORDER BY created_at DESC LIMIT %s").format(self.table), [earliest, latest, limit])
        return (int(rows[0][0]) if rows else 0), {pid: text for _, pid, text in rows}

    # -- the cut and the incremental reconciliation's memory --------------------------------------------------
    def progress(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> next offset to ingest, every topic: what a `Cut` is taken from."""
        rows = self._query(sql.SQL("SELECT topic, partition, next_offset FROM {}").format(
            self._t("ingestion_progress")))
        return {(t, int(p)): int(o) for t, p, o in rows}

    def ids_landed(self, spans: Sequence[tuple[str, int, int, int]]) -> set[str]:
        """The payment ids stored from these Kafka positions: (topic, partition, start, end) each."""
        if not spans:
            return set()
        where = sql.SQL(" OR ").join(sql.SQL("(kafka_topic = %s AND kafka_partition = %s AND kafka_offset >= %s "
                                             "AND kafka_offset < %s)") for _ in spans)
        rows = self._query(sql.SQL("SELECT payment_id::text FROM {} WHERE {}").format(self.table, where),
                           [v for span in spans for v in span])
        return {r[0] for r in rows}

    def ensure_cuts(self) -> None:
        """`reconciliation_cuts`: each store reconciliation's cut, what it compared and whether the stores agreed
        (the last passing one is the last proven cut; the latest one holds the rotation's place)."""
        self._create_table("reconciliation_cuts", "id bigserial PRIMARY KEY, kind text NOT NULL, "
                           "cut jsonb NOT NULL, passed boolean NOT NULL, next_segment integer NOT NULL, "
                           "failing_segments jsonb NOT NULL DEFAULT '[]'::jsonb, summary text NOT NULL DEFAULT '', "
                           "checked_at timestamptz NOT NULL DEFAULT now()")

    def reconciliation_memory(self) -> tuple[dict | None, int, list[str]]:
        """(the last proven cut as stored, where the rotation continues, the segments still failing)."""
        self.ensure_cuts()
        proven = self._query(sql.SQL("SELECT cut FROM {} WHERE passed AND kind IN ('incremental', 'full') "
                                     "ORDER BY id DESC LIMIT 1").format(self._t("reconciliation_cuts")))
        table = self._t("reconciliation_cuts")
        rotation = self._query(sql.SQL("SELECT next_segment FROM {} WHERE kind = 'incremental' ORDER BY id DESC "
                                       "LIMIT 1").format(table))
        latest = self._query(sql.SQL("SELECT failing_segments FROM {} WHERE kind IN ('incremental', 'full') "
                                     "ORDER BY id DESC LIMIT 1").format(table))
        next_segment = int(rotation[0][0]) if rotation else 0
        failing = list(latest[0][0]) if latest else []
        return (proven[0][0] if proven else None), next_segment, failing

    def rotation_position(self, kind: str) -> int:
        """Where the rotation of this kind of run continues (0 at first)."""
        self.ensure_cuts()
        rows = self._query(sql.SQL("SELECT next_segment FROM {} WHERE kind = %s ORDER BY id DESC LIMIT 1").format(
            self._t("reconciliation_cuts")), [kind])
        return int(rows[0][0]) if rows else 0

    def last_cut(self, kind: str) -> tuple[dict, bool] | None:
        """The latest run of this kind: (its cut as stored, whether it passed); None before the first."""
        self.ensure_cuts()
        rows = self._query(sql.SQL("SELECT cut, passed FROM {} WHERE kind = %s ORDER BY id DESC LIMIT 1").format(
            self._t("reconciliation_cuts")), [kind])
        return (rows[0][0], bool(rows[0][1])) if rows else None

    def record_cut(self, kind: str, cut: dict, passed: bool, next_segment: int, failing: list[str],
                   summary: str) -> None:
        self.ensure_cuts()
        self._execute(sql.SQL("INSERT INTO {} (kind, cut, passed, next_segment, failing_segments, summary) "
                              "VALUES (%s, %s, %s, %s, %s, %s)").format(self._t("reconciliation_cuts")),
                      [kind, json.dumps(cut), passed, next_segment, json.dumps(failing), summary[:2000]])

    # -- what the range and quarantine checks need from the ledger's other tables ----------------------------
    _RANGE_COLUMNS = ("SELECT r.id, r.topic, r.partition, r.start_offset, r.end_offset, EXISTS (SELECT 1 FROM {resets} x "
                      "WHERE x.topic = r.topic AND x.partition = r.partition AND x.reset_at > r.recorded_at) ")

    def recent_ranges(self, limit: int) -> list[tuple[int, str, int, int, int, bool]]:
        """The most recently recorded ingested ranges, newest first: (id, topic, partition, start, end, reset_since).
        `reset_since`: the partition's progress was reset after the range (offsets went backwards), so Kafka's
        offsets no longer hold that range's messages."""
        return self._query(sql.SQL(self._RANGE_COLUMNS + "FROM {ranges} r ORDER BY r.id DESC LIMIT %s").format(
            resets=self._t("ingestion_resets"), ranges=self._t("ingested_ranges")), [limit])

    def ensure_range_checks(self) -> None:
        """`reconciled_ranges`: which ingested ranges the range check has proven (passed) or not yet."""
        self._create_table("reconciled_ranges", "range_id bigint PRIMARY KEY, passed boolean NOT NULL, "
                           "checked_at timestamptz NOT NULL DEFAULT now(), summary text NOT NULL DEFAULT ''")

    def ranges_to_check(self, limit: int) -> tuple[list[tuple[int, str, int, int, int, bool]], int]:
        """Ranges never proven consistent (unchecked, or failed last time), newest first, up to `limit`, and how
        many such ranges there are in all."""
        self.ensure_range_checks()
        pending = sql.SQL("FROM {ranges} r LEFT JOIN {checked} c ON c.range_id = r.id "
                          "WHERE c.range_id IS NULL OR NOT c.passed").format(
                              ranges=self._t("ingested_ranges"), checked=self._t("reconciled_ranges"))
        rows = self._query(sql.SQL(self._RANGE_COLUMNS).format(resets=self._t("ingestion_resets"))
                           + pending + sql.SQL(" ORDER BY r.id DESC LIMIT %s"), [limit])
        total = self._query(sql.SQL("SELECT count(*) ") + pending)[0][0]
        return rows, int(total)

    def record_range_checks(self, outcomes: list[tuple[int, bool, str]]) -> None:
        """Remember each range's verdict: (range id, passed, one-line summary)."""
        if not outcomes:
            return
        values = sql.SQL(", ").join(sql.SQL("(%s, %s, now(), %s)") for _ in outcomes)
        self._execute(sql.SQL("INSERT INTO {} (range_id, passed, checked_at, summary) VALUES {} ON CONFLICT (range_id) "
                              "DO UPDATE SET passed = EXCLUDED.passed, checked_at = EXCLUDED.checked_at, "
                              "summary = EXCLUDED.summary").format(self._t("reconciled_ranges"), values),
                      [v for outcome in outcomes for v in outcome])

    def quarantined_offsets(self, topic: str, partition: int, start: int, end: int) -> set[int]:
        rows = self._query(sql.SQL("SELECT kafka_offset FROM {} WHERE kafka_topic = %s AND kafka_partition = %s "
                                   "AND kafka_offset >= %s AND kafka_offset < %s").format(
                                       self._t("payments_quarantine")), [topic, partition, start, end])
        return {int(r[0]) for r in rows}

    def ids_at_positions(self, topic: str, partition: int, start: int, end: int) -> set[str]:
        rows = self._query(sql.SQL("SELECT payment_id::text FROM {} WHERE kafka_topic = %s AND kafka_partition = %s "
                                   "AND kafka_offset >= %s AND kafka_offset < %s").format(self.table),
                           [topic, partition, start, end])
        return {r[0] for r in rows}

    def quarantine_window(self, window_s: float) -> tuple[int, int]:
        """(messages quarantined, messages in ranges recorded) over the last window_s seconds."""
        quarantined = self._query(sql.SQL("SELECT count(*) FROM {} WHERE quarantined_at > now() - %s * interval '1 second'")
                                  .format(self._t("payments_quarantine")), [window_s])[0][0]
        messages = self._query(sql.SQL("SELECT coalesce(sum(end_offset - start_offset), 0) FROM {} "
                                       "WHERE recorded_at > now() - %s * interval '1 second'")
                               .format(self._t("ingested_ranges")), [window_s])[0][0]
        return int(quarantined), int(messages)

