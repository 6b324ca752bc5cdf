"""The `hbase-gateway` command: start, argument errors, clean stop, durability across restarts and kill -9."""
from __future__ import annotations

import ctypes
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from payment_platform_tests.test_hbase_gateway.conftest import free_port, start_gateway

CMD = [sys.executable, "-m", "payment_platform.cli", "hbase-gateway"]
SYS_TGKILL = {"x86_64": 234, "aarch64": 131}[platform.machine()]


@pytest.mark.parametrize(
    "args, option",
    [
        (["--port", "abc", "--data-dir", "{tmp}"], "--port"),
        (["--port", "70000", "--data-dir", "{tmp}"], "--port"),
        (["--port", "{free}", "--data-dir", "{file}/sub"], "--data-dir"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, option):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    args = [a.format(tmp=tmp_path, free=free_port(), file=blocker) for a in args]
    done = subprocess.run(CMD + args, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and "error" in lines[0]


def test_port_in_use_is_refused(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        done = subprocess.run(CMD + ["--port", str(port), "--data-dir", str(tmp_path)], capture_output=True,
                              text=True, timeout=30)
    assert done.returncode == 2
    assert "already in use" in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_status_0(tmp_path, sig):
    gw = start_gateway(tmp_path)
    idle = gw.connect()  # an idle client must not keep the gateway alive
    conn = gw.connect()
    conn.create_table("t", {"cf": {}})
    conn.table("t").put(b"r", {b"cf:a": b"1"})
    assert gw.stop(sig) == 0
    idle.close()
    conn.close()
    wal = tmp_path / "hbase.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # the store was checkpointed and closed


def test_data_survives_restart_and_kill_9(tmp_path):
    gw = start_gateway(tmp_path)
    conn = gw.connect()
    conn.create_table("durable", {"cf": dict(max_versions=2, time_to_live=86400)})
    t = conn.table("durable")
    with t.batch() as batch:
        for i in range(500):
            batch.put(b"r%03d" % i, {b"cf:a": b"%d" % i})
    t.counter_inc(b"c", b"cf:n", 41)
    t.delete(b"r000")
    conn.disable_table("durable")
    conn.enable_table("durable")
    t.put(b"last", {b"cf:a": b"acknowledged"})  # acknowledged, then the gateway dies at once
    gw.proc.kill()
    gw.proc.wait()
    conn.close()

    gw = start_gateway(tmp_path, port=gw.port)
    conn = gw.connect()
    try:
        t = conn.table("durable")
        assert conn.tables() == [b"durable"]
        assert t.families()[b"cf"]["max_versions"] == 2
        assert t.families()[b"cf"]["time_to_live"] == 86400
        assert t.row(b"last") == {b"cf:a": b"acknowledged"}
        assert t.row(b"r000") == {}
        assert len(list(t.scan(row_prefix=b"r"))) == 499
        assert t.counter_inc(b"c", b"cf:n") == 42
    finally:
        conn.close()
        assert gw.stop() == 0


def test_one_gateway_per_data_dir(tmp_path):
    gw = start_gateway(tmp_path)
    try:
        done = subprocess.run(CMD + ["--port", str(free_port()), "--data-dir", str(tmp_path)], capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 2
        assert f"in use by another gateway (pid {gw.proc.pid})" in done.stderr
    finally:
        assert gw.stop() == 0


def test_a_data_dir_holding_something_else_is_refused(tmp_path):
    (tmp_path / "hbase.sqlite3").write_bytes(b"this is not a database" * 100)
    done = subprocess.run(CMD + ["--port", str(free_port()), "--data-dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--data-dir" in lines[0] and "not a database" in lines[0]


def test_a_signal_taken_by_another_thread_still_stops_it(tmp_path):
    """The kernel hands a process-wide signal to any thread that does not block it (the parent-death signal
    of a killed `stack up --foreground` included). Python runs the handler on the main thread only when that
    thread next runs Python code: a main thread asleep in accept() must still wake and stop."""
    gw = start_gateway(tmp_path)
    conn = gw.connect()
    conn.create_table("t", {"cf": {}})
    conn.table("t").put(b"r", {b"cf:a": b"1"})
    threads = [int(tid) for tid in os.listdir(f"/proc/{gw.proc.pid}/task") if int(tid) != gw.proc.pid]
    assert threads, "the gateway runs helper threads (WAL checkpointer, one per client)"
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(SYS_TGKILL, gw.proc.pid, threads[0], int(signal.SIGTERM)) == 0
    try:
        assert gw.proc.wait(15) == 0
    finally:
        conn.close()
        if gw.proc.poll() is None:
            gw.proc.kill()
            gw.proc.wait()


def test_a_reader_holding_the_store_does_not_hold_the_stop(tmp_path):
    """The last checkpoint waits a second for readers, not the store's whole busy timeout: the WAL it leaves
    is replayed on the next start."""
    gw = start_gateway(tmp_path)
    conn = gw.connect()
    conn.create_table("t", {"cf": {}})
    conn.table("t").put(b"r", {b"cf:a": b"1"})
    reader = sqlite3.connect(tmp_path / "hbase.sqlite3", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM sqlite_master").fetchall()  # a read transaction stays open
    try:
        began = time.monotonic()
        assert gw.stop() == 0
        assert time.monotonic() - began < 15
    finally:
        reader.close()
        conn.close()
    gw = start_gateway(tmp_path, port=gw.port)
    conn = gw.connect()
    try:
        assert conn.table("t").row(b"r") == {b"cf:a": b"1"}
    finally:
        conn.close()
        gw.stop()
