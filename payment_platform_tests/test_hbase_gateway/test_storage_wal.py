"""The gateway's SQLite store: the WAL is checkpointed in the background yet stays bounded under sustained writes."""
from __future__ import annotations

import os

from devstack.hbase_gateway import storage
from devstack.hbase_gateway.storage import LATEST_TIMESTAMP, Family, Store
from payment_platform_tests.waiting import wait_until


def _wal_bytes(store: Store) -> int:
    path = store.path + "-wal"
    return os.path.getsize(path) if os.path.exists(path) else 0


def test_wal_stays_bounded_under_sustained_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "WAL_LIMIT_PAGES", 32)  # 512 KiB of 16 KiB pages
    monkeypatch.setattr(storage, "WAL_LIMIT_BYTES", 1 << 20)
    monkeypatch.setattr(storage, "CHECKPOINT_INTERVAL_S", 60.0)  # the writer's own limit must hold on its own
    store = Store(str(tmp_path))
    try:
        store.create_table(b"t", [Family(b"cf", 1)])
        value = os.urandom(2000)
        for batch in range(40):  # ~8 MB written in 40 transactions
            cells = [(b"r%06d" % (batch * 100 + i), b"cf", b"q", value) for i in range(100)]
            store.put(b"t", cells, {b"cf"}, LATEST_TIMESTAMP)
            assert _wal_bytes(store) < 4 << 20  # never the whole history
        assert len(store.get_rows(b"t", [b"r000000", b"r003999"], storage.ReadSpec())) == 2
    finally:
        store.close()


def test_background_checkpoint_copies_the_wal_into_the_database(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "CHECKPOINT_INTERVAL_S", 0.05)
    store = Store(str(tmp_path))
    try:
        store.create_table(b"t", [Family(b"cf", 1)])
        db_before = os.path.getsize(store.path)
        store.put(b"t", [(b"r%04d" % i, b"cf", b"q", os.urandom(1000)) for i in range(500)], {b"cf"}, LATEST_TIMESTAMP)
        wait_until(lambda: os.path.getsize(store.path) > db_before, 5, "a checkpoint growing the database file",
                   every_s=0.05)
        assert os.path.getsize(store.path) > db_before + 400_000  # the rows reached the database file itself
    finally:
        store.close()
    reopened = Store(str(tmp_path))
    try:
        assert len(reopened.get_rows(b"t", [b"r0000", b"r0499"], storage.ReadSpec())) == 2
    finally:
        reopened.close()


def _sqlite_memory_used() -> int:
    import _sqlite3
    import ctypes

    used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used  # the library _sqlite3 links to
    used.restype = ctypes.c_int64
    return used()


def test_page_caches_stay_under_one_limit_however_many_readers(tmp_path, monkeypatch):
    """Each connection may cache 16 MB and the reader pool grows to the busiest moment's concurrency: SQLite's
    memory is capped for the whole process instead (a soft limit: pages in use may pass it for a moment)."""
    import sqlite3
    import threading

    monkeypatch.setattr(storage, "SQLITE_HEAP_LIMIT_BYTES", 8 << 20)
    store = Store(str(tmp_path))
    try:
        store.create_table(b"t", [Family(b"cf", 1)])
        value = os.urandom(2000)
        for batch in range(100):  # ~20 MB of rows
            store.put(b"t", [(b"r%06d" % (batch * 100 + i), b"cf", b"q", value) for i in range(100)], {b"cf"},
                      LATEST_TIMESTAMP)
        barrier = threading.Barrier(6)

        def scan_all() -> None:
            with store.reading():  # six readers at once: six connections in the pool, each reading everything
                barrier.wait()
            rows = sum(1 for _ in store.iter_rows(b"t", b"", None, False, storage.ReadSpec()))
            assert rows == 10_000

        threads = [threading.Thread(target=scan_all) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert _sqlite_memory_used() < 16 << 20  # without the limit: ~6 x 16 MB of caches
    finally:
        store.close()
        sqlite3.connect(":memory:").execute("PRAGMA soft_heap_limit=0")  # process-wide: not for the other tests


def test_multi_gets_of_every_size_prepare_a_few_statement_shapes(tmp_path):
    """A reader connection keeps its last 128 prepared statements, and `row IN (?, ...)` of n keys is a statement
    of its own for each n: multi-gets of every size used to fill each reader's cache with statements of up to
    ~100 KB, memory SQLite's heap limit cannot free. The keys are padded to powers of two instead."""
    import sqlite3

    store = Store(str(tmp_path))
    try:
        store.create_table(b"t", [Family(b"cf", 1)])
        store.put(b"t", [(b"r%04d" % i, b"cf", b"q", b"v") for i in range(600)], {b"cf"}, LATEST_TIMESTAMP)
        shapes: set[int] = set()
        with store.reading() as conn:
            conn.set_trace_callback(lambda statement: " IN (" in statement and shapes.add(
                statement.split(" IN (")[1].split(")")[0].count(",") + 1))  # the keys bound, as SQLite ran it
            for n in range(1, 600, 3):
                asked = [b"r%04d" % i for i in range(n)]
                assert [row for row, _ in store.get_rows(b"t", asked, storage.ReadSpec(), conn=conn)] == asked
            conn.set_trace_callback(None)
        # 200 sizes asked (over 512: a full query and the rest): ten shapes, where each size was one before
        assert shapes == {1 << k for k in range(10)}
    finally:
        store.close()
        sqlite3.connect(":memory:").execute("PRAGMA soft_heap_limit=0")
