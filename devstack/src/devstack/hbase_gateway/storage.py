"""The gateway's durable store: HBase's data model (tables, families, versioned cells) kept in SQLite.

One SQLite database in WAL mode with synchronous=NORMAL: a committed transaction survives `kill -9`
of the gateway. Each HBase table is one SQLite table clustered on (row, family, qualifier, ts DESC),
so a scan is an index walk in HBase's own order (byte-wise, newest version first) and reads stream.

Semantics follow HBase's region server:
- versions beyond the family's max versions are invisible at once and removed by compaction;
- TTL (seconds) hides cells older than now - ttl;
- delete markers are inclusive of their timestamp and keep masking later puts at or below it until a
  major compaction (a delete "now" masks puts written before this millisecond only, see below).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import struct
import threading
import time
from dataclasses import dataclass, field, replace

LATEST_TIMESTAMP = (1 << 63) - 1  # HConstants.LATEST_TIMESTAMP: "now" on the server
FOREVER = 2147483647  # HColumnDescriptor's TTL when none is set
VALID_COMPRESSIONS = {"NONE", "GZ", "LZO", "SNAPPY", "LZ4", "BZIP2", "ZSTD"}
VALID_BLOOM_TYPES = {"NONE", "ROW", "ROWCOL", "ROWPREFIX_FIXED_LENGTH"}


# What HBase says when a region server is stopping: clients (ingestion, replay) class it as an outage, not as the
# server refusing the payment (payment_platform.stores.refusals).
SHUTTING_DOWN = "RegionServerStoppedException: the gateway is shutting down"


class StoreError(Exception):
    """Base of errors the handler maps onto HBase's Thrift exceptions."""


class TableNotFound(StoreError):
    pass


class TableExists(StoreError):
    pass


class NoSuchFamily(StoreError):
    pass


class TableStateError(StoreError):
    """TableNotEnabledException / TableNotDisabledException."""


class BadArgument(StoreError):
    """HBase's IllegalArgumentException."""


class NotACounter(StoreError):
    """The cell an increment targets does not hold 8 bytes."""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Family:
    name: bytes
    max_versions: int = 3
    compression: str = "NONE"
    in_memory: bool = False
    bloom_filter_type: str = "NONE"
    bloom_filter_vector_size: int = 0
    bloom_filter_nb_hashes: int = 0
    block_cache_enabled: bool = False
    time_to_live: int = FOREVER


@dataclass(frozen=True)
class TableMeta:
    name: bytes
    id: int
    enabled: bool
    created_ms: int
    families: dict = field(default_factory=dict)  # name -> Family

    @property
    def cells(self) -> str:
        return f"cells_{self.id}"


@dataclass
class ReadSpec:
    """What a get or scan returns from each row (before filters)."""

    columns: dict | None = None  # family -> None (whole family) | set of qualifiers; None = all
    max_ts: int = LATEST_TIMESTAMP  # exclusive upper bound, as HBase's setTimeRange(0, ts)
    versions: int = 1


_SCHEMA = """
CREATE TABLE IF NOT EXISTS hb_tables(
    name BLOB PRIMARY KEY, id INTEGER NOT NULL UNIQUE, enabled INTEGER NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS hb_families(
    table_id INTEGER NOT NULL, name BLOB NOT NULL, max_versions INTEGER NOT NULL, compression TEXT NOT NULL,
    in_memory INTEGER NOT NULL, bloom_filter_type TEXT NOT NULL, bloom_filter_vector_size INTEGER NOT NULL,
    bloom_filter_nb_hashes INTEGER NOT NULL, block_cache_enabled INTEGER NOT NULL, time_to_live INTEGER NOT NULL,
    PRIMARY KEY(table_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hb_markers(
    table_id INTEGER NOT NULL, row BLOB NOT NULL, family BLOB NOT NULL, whole_family INTEGER NOT NULL,
    qualifier BLOB NOT NULL, ts INTEGER NOT NULL,
    PRIMARY KEY(table_id, row, family, whole_family, qualifier)) WITHOUT ROWID;
"""

log = logging.getLogger("devstack.hbase_gateway")
_pack_i64 = struct.Struct(">q")
CHECKPOINT_INTERVAL_S = 1.0  # how often the background thread copies the WAL into the database (when written)
WAL_LIMIT_PAGES = 4096  # 64 MiB of 16 KiB pages: past this the writer checkpoints too (see Store.__init__)
WAL_LIMIT_BYTES = 64 << 20
SQLITE_HEAP_LIMIT_BYTES = 64 << 20  # all connections' page caches together (SQLite's soft heap limit)
GET_ROWS_PER_QUERY = 512  # well under SQLite's 32,766 bound parameters, with room for the column clause


def padded_size(n: int) -> int:
    """How many row keys a multi-get query binds for `n` rows: the next power of two (at most GET_ROWS_PER_QUERY).

    Each connection keeps its last 128 prepared statements, and an `IN (?, ?, ...)` of n keys is a statement of its
    own for every n: multi-gets of every size from 1 to 500 filled each reader's cache with statements of up to
    ~100 KB (~6 MB a connection, never given back: SQLite's heap limit frees only page caches). Padded to powers of
    two, a connection prepares at most ten shapes per table and column selection."""
    return min(GET_ROWS_PER_QUERY, 1 << max(0, n - 1).bit_length())


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    # 16 KiB pages (a no-op on an existing file): a payment row's cells repeat its ~80-byte key and carry the raw
    # message, so 4 KiB leaves split often (docs/decisions.md, "HBase gateway").
    conn.execute("PRAGMA page_size=16384")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-16000")  # 16 MB page cache per connection
    return conn


class Store:
    """Thread-safe: one writer connection behind a lock, one reader connection per thread (WAL readers)."""

    FILE_NAME = "hbase.sqlite3"

    def __init__(self, data_dir: str):
        self.path = os.path.join(data_dir, self.FILE_NAME)
        self._write_lock = threading.RLock()
        self._writer = _connect(self.path)
        self._writer.executescript(_SCHEMA)
        # Every connection may cache 16 MB, and a pool of readers grows to the busiest moment's concurrency: capped
        # together instead (process-wide), so the gateway's memory is bounded by design, not by its load's history.
        self._writer.execute(f"PRAGMA soft_heap_limit={SQLITE_HEAP_LIMIT_BYTES}")
        # The WAL is copied into the database by a background thread, not by the write that crosses SQLite's
        # 1,000-page threshold: that write's caller would wait for the copy and its fsync (docs/decisions.md).
        # Under sustained writes a background checkpoint never catches the last frame, and
        # only a complete checkpoint lets the WAL start over: so the writer still checkpoints past
        # WAL_LIMIT_PAGES (little is left to copy by then), and the file is cut back to WAL_LIMIT_BYTES after.
        self._writer.execute(f"PRAGMA wal_autocheckpoint={WAL_LIMIT_PAGES}")
        self._writer.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        self._readers: set = set()
        self._idle_readers: list = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self.tables: dict[bytes, TableMeta] = {}
        self._tables_with_markers: set[int] = set()
        self._load_metadata()
        self._written = threading.Event()  # set by each write, cleared by the checkpointer
        self._stopping = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="wal-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = _connect(self.path)
        try:
            while not self._stopping.wait(CHECKPOINT_INTERVAL_S):
                if not self._written.is_set():
                    continue
                self._written.clear()
                try:  # PASSIVE: copies what no reader still needs, never blocks the writer or the readers
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:  # busy or I/O: the next round retries; the data is safe in the WAL
                    log.warning("background WAL checkpoint failed, retrying later: %s", error)
                    self._written.set()
        finally:
            conn.close()

    # ---------------------------------------------------------------- lifecycle
    def _load_metadata(self) -> None:
        families: dict[int, dict] = {}
        for row in self._writer.execute("SELECT * FROM hb_families"):
            table_id, name, *rest = row
            families.setdefault(table_id, {})[name] = Family(
                name, rest[0], rest[1], bool(rest[2]), rest[3], rest[4], rest[5], bool(rest[6]), rest[7]
            )
        for name, table_id, enabled, created in self._writer.execute("SELECT name, id, enabled, created_ms FROM hb_tables"):
            self.tables[name] = TableMeta(name, table_id, bool(enabled), created, families.get(table_id, {}))
        self._tables_with_markers = {r[0] for r in self._writer.execute("SELECT DISTINCT table_id FROM hb_markers")}

    def close(self) -> None:
        self._stopping.set()
        if self._checkpointer.is_alive() and self._checkpointer is not threading.current_thread():
            self._checkpointer.join()
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            with self._readers_lock:
                for reader in self._idle_readers:
                    self._readers.discard(reader)
                    reader.close()
                self._idle_readers.clear()  # readers still borrowed close when they are given back
            try:  # a reader still in a transaction would hold this for the whole busy timeout: one second
                self._writer.execute("PRAGMA busy_timeout=1000")
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # a reader still busy: the WAL stays and is replayed on the next open
            self._writer.close()

    @contextlib.contextmanager
    def _transaction(self):
        """One write transaction on the writer connection (callers hold the write lock): committed, or rolled back
        and the error raised; a committed one is left for the background checkpointer."""
        w = self._writer
        w.execute("BEGIN IMMEDIATE")
        try:
            yield w
            w.execute("COMMIT")
        except BaseException:
            _rollback(w)
            raise
        self._written.set()

    @contextlib.contextmanager
    def reading(self):
        """Borrows an idle reader connection (WAL readers run alongside the writer)."""
        with self._readers_lock:
            conn = self._idle_readers.pop() if self._idle_readers else None
        if conn is None:
            if self._closed:
                raise StoreError(SHUTTING_DOWN)
            conn = _connect(self.path)
            with self._readers_lock:
                self._readers.add(conn)
        try:
            yield conn
        finally:
            with self._readers_lock:
                if self._closed:
                    self._readers.discard(conn)
                    conn.close()
                elif len(self._idle_readers) < 16:
                    self._idle_readers.append(conn)
                else:
                    self._readers.discard(conn)
                    conn.close()

    # ---------------------------------------------------------------- tables
    def table(self, name: bytes, *, must_be_enabled: bool = True) -> TableMeta:
        meta = self.tables.get(name)
        if meta is None:
            raise TableNotFound(f"TableNotFoundException: {name.decode('utf-8', 'replace')}")
        if must_be_enabled and not meta.enabled:
            raise TableStateError(f"TableNotEnabledException: {name.decode('utf-8', 'replace')} is disabled.")
        return meta

    def create_table(self, name: bytes, families: list[Family]) -> None:
        with self._write_lock:
            if name in self.tables:
                raise TableExists("table name already in use")
            created = now_ms()
            with self._transaction() as w:
                table_id = (w.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM hb_tables").fetchone()[0])
                w.execute("INSERT INTO hb_tables VALUES (?, ?, 1, ?)", (name, table_id, created))
                for fam in families:
                    w.execute(
                        "INSERT INTO hb_families VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (table_id, fam.name, fam.max_versions, fam.compression, int(fam.in_memory),
                         fam.bloom_filter_type, fam.bloom_filter_vector_size, fam.bloom_filter_nb_hashes,
                         int(fam.block_cache_enabled), fam.time_to_live),
                    )
                w.execute(
                    f"CREATE TABLE cells_{table_id}(row BLOB NOT NULL, family BLOB NOT NULL, qualifier BLOB NOT NULL,"
                    " ts INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY(row, family, qualifier, ts DESC)) WITHOUT ROWID"
                )
            self.tables[name] = TableMeta(name, table_id, True, created, {f.name: f for f in families})

    def delete_table(self, name: bytes) -> None:
        with self._write_lock:
            meta = self.table(name, must_be_enabled=False)
            if meta.enabled:
                raise TableStateError(f"TableNotDisabledException: {name.decode('utf-8', 'replace')}")
            with self._transaction() as w:
                w.execute("DELETE FROM hb_tables WHERE id = ?", (meta.id,))
                w.execute("DELETE FROM hb_families WHERE table_id = ?", (meta.id,))
                w.execute("DELETE FROM hb_markers WHERE table_id = ?", (meta.id,))
                w.execute(f"DROP TABLE {meta.cells}")
            del self.tables[name]
            self._tables_with_markers.discard(meta.id)

    def set_enabled(self, name: bytes, enabled: bool) -> None:
        with self._write_lock:
            meta = self.table(name, must_be_enabled=False)
            if meta.enabled == enabled:
                kind = "TableNotDisabledException" if enabled else "TableNotEnabledException"
                raise TableStateError(f"{kind}: {name.decode('utf-8', 'replace')}")
            self._writer.execute("UPDATE hb_tables SET enabled = ? WHERE id = ?", (int(enabled), meta.id))
            self.tables[name] = replace(meta, enabled=enabled)

    def compact(self, name: bytes, major: bool) -> None:
        """Drops versions beyond max versions and expired cells; a major compaction also drops delete markers."""
        with self._write_lock:
            meta = self.table(name, must_be_enabled=False)
            with self._transaction() as w:
                now = now_ms()
                for fam in meta.families.values():
                    if fam.time_to_live < FOREVER:
                        w.execute(f"DELETE FROM {meta.cells} WHERE family = ? AND ts < ?",
                                  (fam.name, now - fam.time_to_live * 1000))
                    # Keep the newest max_versions versions of every cell of the family.
                    w.execute(
                        f"DELETE FROM {meta.cells} AS c WHERE family = ? AND ts < COALESCE(("
                        f" SELECT ts FROM {meta.cells} AS n WHERE n.row = c.row AND n.family = c.family"
                        f" AND n.qualifier = c.qualifier ORDER BY ts DESC LIMIT 1 OFFSET ?), -9223372036854775808)",
                        (fam.name, fam.max_versions - 1),
                    )
                if major:
                    w.execute("DELETE FROM hb_markers WHERE table_id = ?", (meta.id,))
            if major:
                self._tables_with_markers.discard(meta.id)

    # ---------------------------------------------------------------- writes
    def mutate(self, name: bytes, rows: list, timestamp: int) -> None:
        """Applies [(row, puts, deletes)] in one transaction, as HBase's mutateRowsTs: all puts, then all deletes.

        puts: [(family, qualifier, value)]; deletes: [(family, qualifier | None)] (None = whole family,
        or a whole-row delete when family is None too).
        """
        meta = self.table(name)
        families = meta.families
        for _row, puts, deletes in rows:
            for fam, _q, _v in puts:
                if fam not in families:
                    self._check_family(meta, fam)
            for fam, _q in deletes:
                if fam is not None and fam not in families:
                    self._check_family(meta, fam)
        with self._write_lock:
            self._ensure_open()
            meta = self.table(name)
            explicit = timestamp != LATEST_TIMESTAMP
            ts = timestamp if explicit else now_ms()
            with self._transaction():
                self._insert_puts(meta, [(row, fam, q, v) for row, puts, _d in rows for fam, q, v in puts], ts)
                for row, _p, deletes in rows:
                    for fam, q in deletes:
                        self._delete(meta, row, fam, q, ts, explicit)

    def put(self, name: bytes, cells: list, families: set, timestamp: int) -> None:
        """Puts only, in one transaction (the batched-put path of mutateRows): cells are (row, family, qualifier,
        value), `families` the distinct families among them. The same effect as `mutate` with no deletes."""
        meta = self.table(name)
        for fam in families:
            if fam not in meta.families:
                self._check_family(meta, fam)
        with self._write_lock:
            self._ensure_open()
            meta = self.table(name)
            ts = timestamp if timestamp != LATEST_TIMESTAMP else now_ms()
            with self._transaction():
                self._insert_puts(meta, cells, ts)

    def _insert_puts(self, meta: TableMeta, cells: list, ts: int) -> None:
        """Writes (row, family, qualifier, value) cells at `ts`, minus those a delete marker hides (inside the
        caller's transaction)."""
        if not cells:
            return
        if meta.id in self._tables_with_markers:
            cells = self._unmasked(meta, [(row, fam, q, ts, v) for row, fam, q, v in cells])
            self._writer.executemany(f"INSERT OR REPLACE INTO {meta.cells} VALUES (?,?,?,?,?)", cells)
        else:
            # ts is an int computed here, so it can sit in the statement: no 5-tuple built per cell.
            self._writer.executemany(f"INSERT OR REPLACE INTO {meta.cells} VALUES (?,?,?,{int(ts)},?)", cells)

    def delete(self, name: bytes, row: bytes, family: bytes | None, qualifier: bytes | None, timestamp: int) -> None:
        """deleteAll / deleteAllRow: family None = the whole row; qualifier None = the whole family."""
        meta = self.table(name)
        if family is not None:
            self._check_family(meta, family)
        self.mutate(name, [(row, [], [(family, qualifier)])], timestamp)

    def _delete(self, meta: TableMeta, row, family, qualifier, ts: int, explicit: bool) -> None:
        w = self._writer
        if family is None:
            w.execute(f"DELETE FROM {meta.cells} WHERE row = ? AND ts <= ?", (row, ts))
            targets = [(fam, 1, b"") for fam in meta.families]
        elif qualifier is None:
            w.execute(f"DELETE FROM {meta.cells} WHERE row = ? AND family = ? AND ts <= ?", (row, family, ts))
            targets = [(family, 1, b"")]
        else:
            w.execute(
                f"DELETE FROM {meta.cells} WHERE row = ? AND family = ? AND qualifier = ? AND ts <= ?",
                (row, family, qualifier, ts),
            )
            targets = [(family, 0, qualifier)]
        # A marker keeps masking later puts with older timestamps, as HBase's tombstones do until a
        # major compaction. A delete at "now" marks one millisecond less, so that a put sent right after
        # it in the same millisecond is kept (HBase would mask it; nobody wants that race).
        marker_ts = ts if explicit else ts - 1
        w.executemany(
            "INSERT INTO hb_markers VALUES (?,?,?,?,?,?) ON CONFLICT DO UPDATE SET ts = MAX(ts, excluded.ts)",
            [(meta.id, row, fam, whole, q, marker_ts) for fam, whole, q in targets],
        )
        self._tables_with_markers.add(meta.id)

    def _unmasked(self, meta: TableMeta, cells: list) -> list:
        markers: dict = {}
        for row in {c[0] for c in cells}:
            for fam, whole, q, ts in self._writer.execute(
                "SELECT family, whole_family, qualifier, ts FROM hb_markers WHERE table_id = ? AND row = ?",
                (meta.id, row),
            ):
                markers[(row, fam, None if whole else q)] = ts
        if not markers:
            return cells
        kept = []
        for cell in cells:
            row, fam, q, ts, _v = cell
            family_mark = markers.get((row, fam, None))
            column_mark = markers.get((row, fam, q))
            if (family_mark is not None and ts <= family_mark) or (column_mark is not None and ts <= column_mark):
                continue
            kept.append(cell)
        return kept

    def increment(self, name: bytes, row: bytes, family: bytes, qualifier: bytes, amount: int) -> int:
        meta = self.table(name)
        fam = self._check_family(meta, family)
        with self._write_lock:
            self._ensure_open()
            with self._transaction() as w:
                current = 0
                newest_ts = None
                for ts, value in w.execute(
                    f"SELECT ts, value FROM {meta.cells} WHERE row = ? AND family = ? AND qualifier = ?"
                    " ORDER BY ts DESC LIMIT 1",
                    (row, family, qualifier),
                ):
                    if not _expired(fam, ts, now_ms()):
                        if len(value) != 8:
                            raise NotACounter(
                                f"DoNotRetryIOException: Field is not a long, it's {len(value)} bytes wide"
                            )
                        current = _pack_i64.unpack(value)[0]
                        newest_ts = ts
                result = (current + amount + (1 << 63)) % (1 << 64) - (1 << 63)  # Java long arithmetic
                ts = now_ms() if newest_ts is None else max(now_ms(), newest_ts)
                cells = [(row, family, qualifier, ts, _pack_i64.pack(result))]
                # A delete marker at or above `ts` (an explicit future timestamp) would hide the new value in
                # HBase; the counter stays visible here, which is what its caller expects.
                w.executemany(f"INSERT OR REPLACE INTO {meta.cells} VALUES (?,?,?,?,?)", cells)
                w.execute(
                    f"DELETE FROM {meta.cells} WHERE row = ? AND family = ? AND qualifier = ? AND ts < COALESCE(("
                    f"SELECT ts FROM {meta.cells} WHERE row = ? AND family = ? AND qualifier = ?"
                    " ORDER BY ts DESC LIMIT 1 OFFSET ?), -9223372036854775808)",
                    (row, family, qualifier, row, family, qualifier, fam.max_versions - 1),
                )
            return result

    def check_and_put(self, name: bytes, row: bytes, family: bytes, qualifier: bytes, expected: bytes | None,
                      put: tuple | None) -> bool:
        """put: (family, qualifier, value). expected None or b'' = the cell must be missing or empty."""
        meta = self.table(name)
        self._check_family(meta, family)
        with self._write_lock:
            current = self.get_rows(name, [row], ReadSpec(columns={family: {qualifier}}), conn=self._writer)
            value = None
            for _row, cells in current:
                value = cells[0][3]
            if not expected:  # as HRegion.checkAndMutate: an empty expected value matches a missing or empty cell
                if value:
                    return False
            elif value != expected:
                return False
            if put is not None:
                self.mutate(name, [(row, [put], [])], LATEST_TIMESTAMP)
            return True

    def _check_family(self, meta: TableMeta, family: bytes) -> Family:
        fam = meta.families.get(family)
        if fam is None:
            raise NoSuchFamily(
                f"NoSuchColumnFamilyException: Column family {family.decode('utf-8', 'replace')} does not exist"
                f" in table {meta.name.decode('utf-8', 'replace')}"
            )
        return fam

    def _ensure_open(self) -> None:
        if self._closed:
            raise StoreError(SHUTTING_DOWN)

    # ---------------------------------------------------------------- reads
    def check_columns(self, meta: TableMeta, spec: ReadSpec) -> None:
        if spec.columns:
            for fam in spec.columns:
                self._check_family(meta, fam)

    def get_rows(self, name: bytes, rows: list, spec: ReadSpec, conn=None) -> list:
        """[(row, cells)] for the rows that have cells; cells are (family, qualifier, ts, value)."""
        meta = self.table(name)
        self.check_columns(meta, spec)
        if conn is None:
            with self.reading() as reader:
                return self.get_rows(name, rows, spec, conn=reader)
        now = now_ms()
        column_sql, column_params = _column_clause(spec.columns)
        found: dict[bytes, list] = {}
        wanted = list(dict.fromkeys(rows))
        # One query per group of rows rather than per row: a multi-get of thousands of rows (an index lookup, a
        # range check) is then a few index walks, not thousands of statements.
        for i in range(0, len(wanted), GET_ROWS_PER_QUERY):
            group = wanted[i:i + GET_ROWS_PER_QUERY]
            size = padded_size(len(group))
            group += [group[-1]] * (size - len(group))  # the last key again: IN matches it once
            cur = conn.execute(
                f"SELECT row, family, qualifier, ts, value FROM {meta.cells}"
                f" WHERE row IN ({', '.join('?' * size)}){column_sql}"
                " ORDER BY row, family, qualifier, ts DESC", (*group, *column_params),
            )
            found.update(_rows(cur, meta, spec, now))
        # HBase answers in the order asked (a row asked twice comes back twice); rows without cells are left out.
        return [(row, found[row]) for row in rows if row in found]

    def iter_rows(self, name: bytes, start: bytes, stop: bytes | None, reverse: bool, spec: ReadSpec,
                  after: bytes | None = None, versions: int | None = None):
        """Streams (row, cells) from start (inclusive) to stop (exclusive), resuming after `after`.

        Reverse scans walk the index backwards (start is the highest row); cells of each row are still
        returned in HBase's order.
        """
        meta = self.table(name)
        clauses, params = [], []
        # (past `after`, from `start`, before `stop`) in the direction of the scan
        past, from_, before = ("<", "<=", ">") if reverse else (">", ">=", "<")
        if after is not None:
            clauses.append(f"row {past} ?")
            params.append(after)
        elif start:
            clauses.append(f"row {from_} ?")
            params.append(start)
        if stop:
            clauses.append(f"row {before} ?")
            params.append(stop)
        order = "row DESC, family DESC, qualifier DESC, ts" if reverse else "row, family, qualifier, ts DESC"
        column_sql, column_params = _column_clause(spec.columns)
        if column_sql:
            clauses.append(column_sql[len(" AND "):])
            params.extend(column_params)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        with self.reading() as conn:
            cur = conn.execute(
                f"SELECT row, family, qualifier, ts, value FROM {meta.cells} {where} ORDER BY {order}", params
            )
            try:
                yield from _rows(cur, meta, spec, now_ms(), reverse=reverse, versions=versions)
            finally:
                cur.close()


def _column_clause(columns: dict | None) -> tuple[str, list]:
    """SQL selecting the requested columns, so SQLite skips the others before Python sees them.

    Only a prefilter: _visible applies the same selection (and counts versions per column, which this
    does not disturb since every version of a selected column is kept).
    """
    if not columns:
        return "", []
    terms, params = [], []
    for family, qualifiers in columns.items():
        if qualifiers is None:
            terms.append("family = ?")
            params.append(family)
        else:
            terms.append(f"(family = ? AND qualifier IN ({', '.join('?' * len(qualifiers))}))")
            params.append(family)
            params.extend(sorted(qualifiers))
    return " AND (" + " OR ".join(terms) + ")", params


def _rollback(conn: sqlite3.Connection) -> None:
    """Rolls back without hiding the error that led here (SQLite may have rolled back already)."""
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _expired(fam: Family, ts: int, now: int) -> bool:
    return fam.time_to_live < FOREVER and ts < now - fam.time_to_live * 1000


def cap_versions(cells: list, versions: int) -> list:
    """Keeps the newest `versions` cells of each column (cells in HBase order)."""
    out, last, taken = [], None, 0
    for cell in cells:
        if cell[:2] != last:
            last, taken = cell[:2], 0
        if taken < versions:
            taken += 1
            out.append(cell)
    return out


def _rows(cursor, meta: TableMeta, spec: ReadSpec, now: int, reverse: bool = False, versions: int | None = None):
    """Groups a cursor over (row, family, qualifier, ts, value) into visible rows."""
    current_row = None
    cells: list = []
    for row, fam, q, ts, value in _fetch(cursor):
        if row != current_row:
            if cells:
                visible = _visible(cells[::-1] if reverse else cells, meta, spec, now, versions)
                if visible:
                    yield current_row, visible
            current_row = row
            cells = []
        cells.append((fam, q, ts, value))
    if cells:
        visible = _visible(cells[::-1] if reverse else cells, meta, spec, now, versions)
        if visible:
            yield current_row, visible


def _fetch(cursor, size: int = 256):
    # Small chunks: a scanner call stops mid-chunk once it has its rows, and the rest is read again later.
    while True:
        chunk = cursor.fetchmany(size)
        if not chunk:
            return
        yield from chunk


def _visible(cells: list, meta: TableMeta, spec: ReadSpec, now: int, versions: int | None = None) -> list:
    """Applies column selection, max versions, TTL, the time range and the requested versions to one row.

    versions=0 keeps every version in range: a filter then sees them all and the requested number of
    versions is counted among the cells it lets through (HBase's ScanQueryMatcher order).
    """
    columns = spec.columns
    max_ts = spec.max_ts
    families = meta.families
    versions = spec.versions if versions is None else (versions or 1 << 62)
    out = []
    last_col = None
    seen = 0  # versions of the current column already looked at (stored order, newest first)
    taken = 0
    fam_meta = None
    for cell in cells:
        fam, q, ts, _v = cell
        col = (fam, q)
        if col != last_col:
            last_col = col
            seen = taken = 0
            fam_meta = families.get(fam)
        seen += 1
        if fam_meta is None or seen > fam_meta.max_versions:
            continue
        if columns:
            wanted = columns.get(fam, False)
            if wanted is False or (wanted is not None and q not in wanted):
                continue
        if ts >= max_ts or taken >= versions:
            continue
        if fam_meta.time_to_live < FOREVER and ts < now - fam_meta.time_to_live * 1000:
            continue
        taken += 1
        out.append(cell)
    return out
