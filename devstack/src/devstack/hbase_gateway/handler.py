"""The Hbase Thrift1 service (happybase's `Hbase.thrift`) implemented over the gateway's Store.

Mirrors HBase's ThriftServerRunner/ThriftHBaseServiceHandler: the same argument parsing
(`family:qualifier` columns), the same exception types (IOError for unknown tables/families and store
failures, IllegalArgument for bad arguments, AlreadyExists), the same defaults.
"""
from __future__ import annotations

import itertools
import logging
import re
import sqlite3
import sys
import threading
import time

from devstack.hbase_gateway import filters as hfilters
from devstack.hbase_gateway.filter_language import parse_filter
from devstack.hbase_gateway.storage import (
    FOREVER,
    LATEST_TIMESTAMP,
    VALID_BLOOM_TYPES,
    VALID_COMPRESSIONS,
    BadArgument,
    Family,
    ReadSpec,
    Store,
    StoreError,
    TableExists,
    cap_versions,
)

log = logging.getLogger(__name__)


def load_idl():
    """The Hbase_thrift module, shared with happybase when it is loaded in the same process."""
    module = sys.modules.get("Hbase_thrift")
    if module is None:
        import happybase  # noqa: F401  (loads happybase/Hbase.thrift as Hbase_thrift)

        module = sys.modules["Hbase_thrift"]
    return module


Hbase_thrift = load_idl()
TCell = Hbase_thrift.TCell
TColumn = Hbase_thrift.TColumn
TRowResult = Hbase_thrift.TRowResult
TRegionInfo = Hbase_thrift.TRegionInfo
ColumnDescriptor = Hbase_thrift.ColumnDescriptor
IOError_ = Hbase_thrift.IOError
IllegalArgument = Hbase_thrift.IllegalArgument
AlreadyExists = Hbase_thrift.AlreadyExists

_TABLE_NAME = re.compile(rb"^(?:[A-Za-z0-9_]+:)?[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def _need_bytes(value, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise BadArgument(f"{what} must be a binary string, got {type(value).__name__}")


def _need_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadArgument(f"{what} must be an integer, got {type(value).__name__}")
    return value


def _row_key(value) -> bytes:
    """A row key a mutation may write: HBase refuses empty keys and keys over Short.MAX_VALUE bytes."""
    row = _need_bytes(value, "row")
    if not row:
        raise BadArgument("Row length is 0")
    if len(row) > 32767:
        raise BadArgument(f"Row length {len(row)} is > 32767")
    return row


def _timestamp(value, what: str = "timestamp") -> int:
    value = _need_int(value, what)
    if value < 0:
        raise BadArgument(f"Timestamp cannot be negative. ts={value}")
    return value


def parse_column(column) -> tuple[bytes, bytes | None]:
    """KeyValue.parseColumn: b'cf' -> (cf, None); b'cf:' -> (cf, b''); b'cf:q' -> (cf, q)."""
    column = _need_bytes(column, "column")
    family, sep, qualifier = column.partition(b":")
    return family, (qualifier if sep else None)


def read_columns(columns) -> dict | None:
    """Column selection of a get or scan, as Get/Scan.addFamily/addColumn build it.

    A family alone (b'cf' or b'cf:', as happybase documents) selects the whole family.
    """
    if not columns:
        return None
    selection: dict = {}
    for column in columns:
        family, qualifier = parse_column(column)
        if not qualifier:
            selection[family] = None
        else:
            wanted = selection.get(family)
            if wanted is None:  # as HBase: addColumn after addFamily narrows to the listed columns
                wanted = selection[family] = set()
            wanted.add(qualifier)
    return selection


def _bytes_increment(prefix: bytes) -> bytes | None:
    data = bytearray(prefix)
    for i in range(len(data) - 1, -1, -1):
        if data[i] != 0xFF:
            data[i] += 1
            return bytes(data[: i + 1])
    return None


class _ColumnNames(dict):
    """(family, qualifier) -> b'family:qualifier', built once per distinct column (scans repeat them)."""

    def __missing__(self, key):
        if len(self) > 100_000:
            self.clear()
        name = self[key] = key[0] + b":" + key[1]
        return name


def _row_result(row: bytes, cells: list, sort_columns: bool, names: dict | None = None) -> TRowResult:
    names = _ColumnNames() if names is None else names
    if sort_columns:
        return TRowResult(
            row=row,
            sortedColumns=[TColumn(columnName=names[f, q], cell=TCell(value=v, timestamp=ts)) for f, q, ts, v in cells],
        )
    return TRowResult(row=row, columns={names[f, q]: TCell(value=v, timestamp=ts) for f, q, ts, v in cells})


class Scanner:
    """Server-side state of one Thrift scanner: where to resume, the filter's state, partial rows.

    It holds no database cursor between calls (each call resumes after the last row handed out), so an
    open scanner costs a few hundred bytes and never pins a WAL snapshot.
    """

    def __init__(self, store: Store, table: bytes, start: bytes, stop: bytes | None, reverse: bool,
                 spec: ReadSpec, filter_string: bytes | None, batch: int | None, sort_columns: bool):
        self.store, self.table, self.start, self.stop, self.reverse = store, table, start, stop, reverse
        self.spec, self.batch, self.sort_columns = spec, batch, sort_columns
        self.filter = None
        self.filter_error = None
        if filter_string:
            try:
                self.filter = parse_filter(filter_string, reverse=reverse)
            except hfilters.FilterError as error:
                # scannerOpenWithScan can only throw IOError; scannerGetList can throw IllegalArgument.
                self.filter_error = str(error)
        self.after: bytes | None = None
        self.pending: list = []
        self.finished = False
        self.lock = threading.Lock()
        self.owner = threading.current_thread()  # the thread serving the client's connection
        self.last_used = time.monotonic()

    def next(self, count: int) -> list:
        """Up to `count` (row, cells) results; a row may come in parts when scan batching is set."""
        with self.lock:
            self.last_used = time.monotonic()
            if self.filter_error:
                raise BadArgument(self.filter_error)
            out: list = []
            while len(out) < count:
                if self.pending:
                    take = min(count - len(out), len(self.pending))
                    out.extend(self.pending[:take])
                    del self.pending[:take]
                    continue
                if self.finished:
                    break
                self._fill(count - len(out))
            return out

    def _fill(self, wanted: int) -> None:
        flt = self.filter
        rows = self.store.iter_rows(self.table, self.start, self.stop, self.reverse, self.spec, after=self.after,
                                    versions=0 if flt is not None else None)
        got = 0
        try:
            for row, cells in rows:
                self.after = row
                if flt is not None:
                    # Filters see every version in range; versions are counted among what they keep.
                    cells = cap_versions(flt.apply(row, cells), self.spec.versions)
                if cells:
                    if self.batch and len(cells) > self.batch:
                        for i in range(0, len(cells), self.batch):
                            self.pending.append((row, cells[i : i + self.batch]))
                    else:
                        self.pending.append((row, cells))
                    got += 1
                if flt is not None and flt.done:
                    self.finished = True
                    return
                if got >= wanted:
                    return
            self.finished = True
        finally:
            rows.close()


class HbaseHandler:
    """One instance serves every connection; the Store and scanner registry are thread-safe."""

    ABANDONED_AFTER_S = 600.0

    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 9090):
        self.store = store
        self.host, self.port = host, port
        self._scanners: dict[int, Scanner] = {}
        self._scanner_ids = itertools.count(1)
        self._scanners_lock = threading.Lock()
        self._last_sweep = time.monotonic()

    # ---------------------------------------------------------------- tables
    def _name(self, table) -> bytes:
        return _need_bytes(table, "tableName")

    def enableTable(self, tableName):
        self.store.set_enabled(self._name(tableName), True)

    def disableTable(self, tableName):
        self.store.set_enabled(self._name(tableName), False)

    def isTableEnabled(self, tableName):
        return self.store.table(self._name(tableName), must_be_enabled=False).enabled

    def _table_of(self, table_or_region) -> bytes:
        name = self._name(table_or_region)
        if name not in self.store.tables and b"," in name:
            name = name.split(b",", 1)[0]  # a region name: "table,startKey,id.hash."
        return name

    def compact(self, tableNameOrRegionName):
        self.store.compact(self._table_of(tableNameOrRegionName), major=False)

    def majorCompact(self, tableNameOrRegionName):
        self.store.compact(self._table_of(tableNameOrRegionName), major=True)

    def getTableNames(self):
        return sorted(self.store.tables)

    def getColumnDescriptors(self, tableName):
        meta = self.store.table(self._name(tableName), must_be_enabled=False)
        return {
            fam.name + b":": ColumnDescriptor(
                name=fam.name + b":", maxVersions=fam.max_versions, compression=fam.compression,
                inMemory=fam.in_memory, bloomFilterType=fam.bloom_filter_type,
                bloomFilterVectorSize=fam.bloom_filter_vector_size, bloomFilterNbHashes=fam.bloom_filter_nb_hashes,
                blockCacheEnabled=fam.block_cache_enabled, timeToLive=fam.time_to_live,
            )
            for fam in meta.families.values()
        }

    def _region(self, meta) -> TRegionInfo:
        return TRegionInfo(
            startKey=b"", endKey=b"", id=meta.created_ms,
            name=meta.name + b",," + str(meta.created_ms).encode() + b".",
            version=1, serverName=self.host.encode(), port=self.port,
        )

    def getTableRegions(self, tableName):
        meta = self.store.tables.get(self._name(tableName))
        return [] if meta is None else [self._region(meta)]  # HBase: an empty list for an unknown table

    def getRegionInfo(self, row):
        row = _need_bytes(row, "row")
        meta = self.store.tables.get(row.split(b",", 1)[0])
        if meta is None:
            raise StoreError(f"RegionNotFound: no region for {row!r}")
        return self._region(meta)

    def createTable(self, tableName, columnFamilies):
        name = self._name(tableName)
        if not _TABLE_NAME.match(name):
            raise BadArgument(
                f"Illegal character in table name {name!r}: use letters, digits, '_', '-' and '.' only"
            )
        if not columnFamilies:
            raise BadArgument("Table should have at least one column family.")
        families: dict[bytes, Family] = {}
        for desc in columnFamilies:
            fam = self._family(desc)
            if fam.name in families:
                raise BadArgument(f"Family '{fam.name.decode('utf-8', 'replace')}' already exists so cannot be added")
            families[fam.name] = fam
        if name in self.store.tables:
            raise TableExists("table name already in use")
        self.store.create_table(name, list(families.values()))

    def _family(self, desc) -> Family:
        if desc is None or not desc.name:
            raise BadArgument("column name is empty")
        name = parse_column(desc.name)[0]
        if not name or name.startswith(b".") or any(b < 0x20 or b == 0x7F for b in name):
            raise BadArgument(f"Illegal column family name {name!r}")
        compression = desc.compression.decode() if isinstance(desc.compression, bytes) else desc.compression
        bloom = desc.bloomFilterType.decode() if isinstance(desc.bloomFilterType, bytes) else desc.bloomFilterType
        compression = (compression or "NONE").upper()
        bloom = bloom or "NONE"
        if compression not in VALID_COMPRESSIONS:
            raise BadArgument(f"Unsupported compression algorithm {compression!r}")
        if bloom not in VALID_BLOOM_TYPES:
            raise BadArgument(f"No enum constant BloomType.{bloom}")
        max_versions = 3 if desc.maxVersions is None else _need_int(desc.maxVersions, "maxVersions")
        if max_versions <= 0:
            raise BadArgument(f"Maximum versions must be positive (family {name.decode('utf-8', 'replace')})")
        ttl = -1 if desc.timeToLive is None else _need_int(desc.timeToLive, "timeToLive")
        return Family(
            name=name, max_versions=max_versions, compression=compression, in_memory=bool(desc.inMemory),
            bloom_filter_type=bloom, bloom_filter_vector_size=0, bloom_filter_nb_hashes=0,
            block_cache_enabled=bool(desc.blockCacheEnabled), time_to_live=ttl if ttl > 0 else FOREVER,
        )

    def deleteTable(self, tableName):
        self.store.delete_table(self._name(tableName))

    # ---------------------------------------------------------------- reads
    def _cells(self, tableName, row, column, timestamp, versions) -> list:
        row = _need_bytes(row, "row")
        family, qualifier = parse_column(column)
        versions = _need_int(versions, "numVersions")
        if versions < 1:
            raise BadArgument(f"numVersions must be positive, got {versions}")
        spec = ReadSpec(columns={family: None if qualifier is None else {qualifier}}, max_ts=timestamp,
                        versions=versions)
        return [TCell(value=v, timestamp=ts) for _row, cells in self.store.get_rows(self._name(tableName), [row], spec)
                for _f, _q, ts, v in cells]

    def get(self, tableName, row, column, attributes):
        return self._cells(tableName, row, column, LATEST_TIMESTAMP, 1)

    def getVer(self, tableName, row, column, numVersions, attributes):
        return self._cells(tableName, row, column, LATEST_TIMESTAMP, numVersions)

    def getVerTs(self, tableName, row, column, timestamp, numVersions, attributes):
        return self._cells(tableName, row, column, _timestamp(timestamp), numVersions)

    def rows_for(self, tableName, rows, columns, timestamp) -> list:
        """[(row, cells)] of a getRow*/getRows* call: the server encodes them straight to bytes."""
        if rows is None:
            raise BadArgument("rows must be a list of row keys")
        rows = [_need_bytes(r, "row") for r in rows]
        spec = ReadSpec(columns=read_columns(columns), max_ts=_timestamp(timestamp))
        return self.store.get_rows(self._name(tableName), rows, spec)

    def getRowsWithColumnsTs(self, tableName, rows, columns, timestamp, attributes):
        names = _ColumnNames()
        return [_row_result(row, cells, False, names) for row, cells in self.rows_for(tableName, rows, columns, timestamp)]

    def getRow(self, tableName, row, attributes):
        return self.getRowsWithColumnsTs(tableName, [row], None, LATEST_TIMESTAMP, attributes)

    def getRowWithColumns(self, tableName, row, columns, attributes):
        return self.getRowsWithColumnsTs(tableName, [row], columns, LATEST_TIMESTAMP, attributes)

    def getRowTs(self, tableName, row, timestamp, attributes):
        return self.getRowsWithColumnsTs(tableName, [row], None, timestamp, attributes)

    def getRowWithColumnsTs(self, tableName, row, columns, timestamp, attributes):
        return self.getRowsWithColumnsTs(tableName, [row], columns, timestamp, attributes)

    def getRows(self, tableName, rows, attributes):
        return self.getRowsWithColumnsTs(tableName, rows, None, LATEST_TIMESTAMP, attributes)

    def getRowsWithColumns(self, tableName, rows, columns, attributes):
        return self.getRowsWithColumnsTs(tableName, rows, columns, LATEST_TIMESTAMP, attributes)

    def getRowsTs(self, tableName, rows, timestamp, attributes):
        return self.getRowsWithColumnsTs(tableName, rows, None, timestamp, attributes)

    def getRowOrBefore(self, tableName, row, family):
        name = self._name(tableName)
        fam = parse_column(family)[0]
        spec = ReadSpec(columns={fam: None})
        self.store.check_columns(self.store.table(name), spec)
        rows = self.store.iter_rows(name, _need_bytes(row, "row"), None, True, spec)
        try:
            for _row, cells in rows:
                return [TCell(value=v, timestamp=ts) for _f, _q, ts, v in cells]
        finally:
            rows.close()
        return []

    # ---------------------------------------------------------------- writes
    def _mutations(self, row, mutations) -> tuple:
        row = _row_key(row)
        if mutations is None:
            raise BadArgument("mutations must be a list")
        puts, deletes = [], []
        for m in mutations:
            if m is None:
                raise BadArgument("a mutation is missing")
            column = m.column
            if type(column) is bytes:  # the hot path of batched puts: skip the generic checks
                family, sep, qualifier = column.partition(b":")
                if not sep:
                    qualifier = None
            else:
                family, qualifier = parse_column(column)
            if m.isDelete:
                deletes.append((family, qualifier))
            else:
                if qualifier is None:
                    raise BadArgument(
                        f"Invalid famAndQf provided: {column!r} (a put needs family:qualifier)"
                    )
                value = m.value
                if type(value) is not bytes:
                    value = b"" if value is None else _need_bytes(value, "value")
                puts.append((family, qualifier, value))
        return row, puts, deletes

    @staticmethod
    def _puts_only(row_batches) -> tuple[list, set] | None:
        """(cells, families) when every mutation is a well-formed put: cells (row, family, qualifier, value) flat,
        built in one pass (what batched puts send, thousands of cells a call). None otherwise: the general path
        then checks each mutation and reports what is wrong."""
        cells, families = [], set()
        append = cells.append
        for batch in row_batches:
            if batch is None or batch.mutations is None:
                return None
            row = _row_key(batch.row)
            for m in batch.mutations:
                if m is None or m.isDelete:
                    return None
                column, value = m.column, m.value
                if type(column) is not bytes or type(value) is not bytes:
                    return None
                family, sep, qualifier = column.partition(b":")
                if not sep:
                    return None
                families.add(family)
                append((row, family, qualifier, value))
        return cells, families

    def mutateRowsTs(self, tableName, rowBatches, timestamp, attributes):
        if rowBatches is None:
            raise BadArgument("rowBatches must be a list")
        timestamp = _timestamp(timestamp)
        puts = self._puts_only(rowBatches)
        if puts is not None:
            self.store.put(self._name(tableName), *puts, timestamp)
            return
        batches = []
        for batch in rowBatches:
            if batch is None:
                raise BadArgument("a row batch is missing")
            batches.append(self._mutations(batch.row, batch.mutations))
        self.store.mutate(self._name(tableName), batches, timestamp)

    def mutateRows(self, tableName, rowBatches, attributes):
        self.mutateRowsTs(tableName, rowBatches, LATEST_TIMESTAMP, attributes)

    def mutateRowTs(self, tableName, row, mutations, timestamp, attributes):
        self.store.mutate(self._name(tableName), [self._mutations(row, mutations)], _timestamp(timestamp))

    def mutateRow(self, tableName, row, mutations, attributes):
        self.mutateRowTs(tableName, row, mutations, LATEST_TIMESTAMP, attributes)

    def atomicIncrement(self, tableName, row, column, value):
        family, qualifier = parse_column(column)
        return self.store.increment(
            self._name(tableName), _row_key(row), family, qualifier or b"", _need_int(value, "value")
        )

    def increment(self, increment):
        if increment is None:
            raise BadArgument("increment is missing")
        self.atomicIncrement(increment.table, increment.row, increment.column, increment.ammount)

    def incrementRows(self, increments):
        for inc in increments or []:
            self.increment(inc)

    def deleteAllTs(self, tableName, row, column, timestamp, attributes):
        family, qualifier = parse_column(column)
        self.store.delete(self._name(tableName), _need_bytes(row, "row"), family, qualifier, _timestamp(timestamp))

    def deleteAll(self, tableName, row, column, attributes):
        self.deleteAllTs(tableName, row, column, LATEST_TIMESTAMP, attributes)

    def deleteAllRowTs(self, tableName, row, timestamp, attributes):
        self.store.delete(self._name(tableName), _need_bytes(row, "row"), None, None, _timestamp(timestamp))

    def deleteAllRow(self, tableName, row, attributes):
        self.deleteAllRowTs(tableName, row, LATEST_TIMESTAMP, attributes)

    def append(self, append):
        if append is None or append.columns is None or append.values is None:
            raise BadArgument("append needs table, row, columns and values")
        if len(append.columns) != len(append.values):
            raise BadArgument("append: columns and values differ in length")
        name = self._name(append.table)
        row = _need_bytes(append.row, "row")
        columns = [parse_column(c) for c in append.columns]
        with self.store._write_lock:
            current = {}
            spec = ReadSpec(columns=read_columns([f + b":" + (q or b"") for f, q in columns]))
            for _row, cells in self.store.get_rows(name, [row], spec, conn=self.store._writer):
                current = {(f, q): v for f, q, _ts, v in cells}
            puts = []
            for (family, qualifier), value in zip(columns, append.values):
                qualifier = qualifier or b""
                new = current.get((family, qualifier), b"") + _need_bytes(value, "value")
                current[(family, qualifier)] = new
                puts.append((family, qualifier, new))
            self.store.mutate(name, [(row, puts, [])], LATEST_TIMESTAMP)
            written = self.store.get_rows(name, [row], spec, conn=self.store._writer)
        wanted = {(f, q) for f, q, _v in puts}
        return [TCell(value=v, timestamp=ts) for _r, cells in written for f, q, ts, v in cells if (f, q) in wanted]

    def checkAndPut(self, tableName, row, column, value, mput, attributes):
        family, qualifier = parse_column(column)
        put = None
        if mput is not None:
            pf, pq = parse_column(mput.column)
            if pq is None:
                raise BadArgument(f"Invalid famAndQf provided: {mput.column!r}")
            put = (pf, pq, b"" if mput.value is None else _need_bytes(mput.value, "value"))
        return self.store.check_and_put(
            self._name(tableName), _need_bytes(row, "row"), family, qualifier or b"",
            None if value is None else _need_bytes(value, "value"), put,
        )

    # ---------------------------------------------------------------- scanners
    def _open(self, tableName, start, stop, columns, timestamp, filter_string=None, batch=None,
              sort_columns=False, reverse=False) -> int:
        name = self._name(tableName)
        meta = self.store.table(name)
        spec = ReadSpec(columns=read_columns(columns), max_ts=timestamp)
        self.store.check_columns(meta, spec)
        if batch is not None and batch <= 0:
            batch = None
        scanner = Scanner(self.store, name, start or b"", stop or None, bool(reverse), spec, filter_string,
                          batch, bool(sort_columns))
        with self._scanners_lock:
            self._drop_abandoned_scanners()
            scanner_id = next(self._scanner_ids)
            if scanner_id >= 2**31:  # ScannerID is an i32
                self._scanner_ids = itertools.count(1)
                scanner_id = next(self._scanner_ids)
            self._scanners[scanner_id] = scanner
        return scanner_id

    def scannerOpenWithScan(self, tableName, scan, attributes):
        if scan is None:
            raise BadArgument("scan is missing")
        timestamp = LATEST_TIMESTAMP if scan.timestamp is None else _timestamp(scan.timestamp)
        start = b"" if scan.startRow is None else _need_bytes(scan.startRow, "startRow")
        stop = None if scan.stopRow is None else _need_bytes(scan.stopRow, "stopRow")
        filter_string = None if scan.filterString is None else _need_bytes(scan.filterString, "filterString")
        return self._open(tableName, start, stop, scan.columns, timestamp, filter_string, scan.batchSize,
                          scan.sortColumns, scan.reversed)

    def scannerOpen(self, tableName, startRow, columns, attributes):
        return self._open(tableName, _need_bytes(startRow or b"", "startRow"), None, columns, LATEST_TIMESTAMP)

    def scannerOpenWithStop(self, tableName, startRow, stopRow, columns, attributes):
        return self._open(tableName, _need_bytes(startRow or b"", "startRow"), stopRow, columns, LATEST_TIMESTAMP)

    def scannerOpenWithPrefix(self, tableName, startAndPrefix, columns, attributes):
        prefix = _need_bytes(startAndPrefix or b"", "startAndPrefix")
        return self._open(tableName, prefix, _bytes_increment(prefix) if prefix else None, columns, LATEST_TIMESTAMP)

    def scannerOpenTs(self, tableName, startRow, columns, timestamp, attributes):
        return self._open(tableName, _need_bytes(startRow or b"", "startRow"), None, columns, _timestamp(timestamp))

    def scannerOpenWithStopTs(self, tableName, startRow, stopRow, columns, timestamp, attributes):
        return self._open(tableName, _need_bytes(startRow or b"", "startRow"), stopRow, columns, _timestamp(timestamp))

    def _drop_abandoned_scanners(self) -> None:
        """Scanners stay valid until closed, except those of a client gone for ABANDONED_AFTER_S."""
        now = time.monotonic()
        if now - self._last_sweep < 10:
            return
        self._last_sweep = now
        for scanner_id, scanner in list(self._scanners.items()):
            if not scanner.owner.is_alive() and now - scanner.last_used > self.ABANDONED_AFTER_S:
                del self._scanners[scanner_id]

    def _scanner(self, scanner_id) -> Scanner:
        scanner = self._scanners.get(scanner_id)
        if scanner is None:
            raise BadArgument("scanner ID is invalid")
        return scanner

    def scanner_rows(self, id, nbRows) -> tuple:  # noqa: A002 - the Thrift IDL's argument name
        """(sort_columns, [(row, cells)]) of the next results: the server encodes them straight to bytes."""
        nb_rows = _need_int(nbRows, "nbRows")
        scanner = self._scanner(id)
        return scanner.sort_columns, (scanner.next(nb_rows) if nb_rows > 0 else [])

    def scannerGetList(self, id, nbRows):  # noqa: A002 - the Thrift IDL's argument name
        sort_columns, rows = self.scanner_rows(id, nbRows)
        names = _ColumnNames()
        return [_row_result(row, cells, sort_columns, names) for row, cells in rows]

    def scannerGet(self, id):  # noqa: A002 - the Thrift IDL's argument name
        return self.scannerGetList(id, 1)

    def scannerClose(self, id):  # noqa: A002 - the Thrift IDL's argument name
        with self._scanners_lock:
            if self._scanners.pop(id, None) is None:
                raise BadArgument("scanner ID is invalid")

    def open_scanners(self) -> int:
        return len(self._scanners)


def checked(handler: HbaseHandler, service) -> object:
    """Wraps every service method so it only ever raises an exception its IDL declares.

    HBase maps IOExceptions to IOError and IllegalArgumentExceptions to IllegalArgument; where a method
    does not declare IllegalArgument, the message travels in an IOError. Anything unexpected is logged
    and answered as an IOError too, so one bad call never drops the connection of the client that made it.
    """

    class Checked:
        pass

    wrapped = Checked()
    for api in service.thrift_services:
        setattr(wrapped, api, _guard(getattr(handler, api), api, _declared(service, api)))
    wrapped.scanner_rows = _guard(handler.scanner_rows, "scannerGetList", _declared(service, "scannerGetList"))
    wrapped.rows_for = _guard(handler.rows_for, "getRowsWithColumnsTs", _declared(service, "getRowsWithColumnsTs"))
    return wrapped


def _declared(service, api: str) -> set:
    result_spec = getattr(service, api + "_result").thrift_spec
    return {spec[2] for fid, spec in result_spec.items() if fid != 0}


# Named as HBase names a region that cannot take writes now, so clients class it as an outage (stores.refusals).
STORE_CANNOT_WRITE = "RegionTooBusyException: the gateway's store cannot write now"


def _guard(method, api: str, declared: set):
    may_illegal = IllegalArgument in declared
    may_exists = AlreadyExists in declared

    def call(*args):
        try:
            return method(*args)
        except (IOError_, IllegalArgument, AlreadyExists):
            raise
        except TableExists as error:
            if may_exists:
                raise AlreadyExists(message=str(error)) from None
            raise IOError_(message=str(error)) from None
        except (BadArgument, hfilters.FilterError) as error:
            if may_illegal:
                raise IllegalArgument(message=str(error)) from None
            raise IOError_(message=f"IllegalArgumentException: {error}") from None
        except StoreError as error:
            raise IOError_(message=str(error)) from None
        except sqlite3.OperationalError as error:  # locked, disk I/O error, disk full: the server cannot write now
            log.warning("%s: store error: %s", api, error)
            raise IOError_(message=f"{STORE_CANNOT_WRITE}: {error}") from None
        except sqlite3.Error as error:
            log.warning("%s: store error: %s", api, error)
            raise IOError_(message=f"IOException: store error: {error}") from None
        except Exception as error:  # noqa: BLE001 - answered to the client, logged here
            log.exception("%s failed", api)
            raise IOError_(message=f"{type(error).__name__}: {error}") from None

    call.__name__ = api
    return call


def service_module():
    return Hbase_thrift.Hbase

