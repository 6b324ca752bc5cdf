"""Faults injected for real during ingestion: stores failing mid-range, the backup unreachable too, SIGKILL."""
import json
import os
import signal
import subprocess
import sys

import pytest

from payment_platform.config import Endpoints
from payment_platform.ingestion.loader import IngestionError
from payment_platform.monitoring import health
from payment_platform_tests.waiting import WaitTimeout, wait_until
from devstack.stack.postgres_as_root import release_cluster

from ..private_postgres import start_postgres
from ..test_stores.payments import payment_doc, raw
from .conftest import free_port

pytestmark = [pytest.mark.stack, pytest.mark.slow]


class FailsAfter:
    """A store that really writes its first `rows` payments, then fails every write (a store dying mid-range)."""

    def __init__(self, store, rows: int):
        self.store, self.rows_left = store, rows

    def write_payments(self, records, **options):
        if len(records) > self.rows_left:
            self.rows_left = 0
            raise ConnectionError("connection reset by peer (injected after k rows)")
        self.rows_left -= len(records)
        return self.store.write_payments(records, **options)

    def __getattr__(self, name):
        return getattr(self.store, name)


def ids_of(n, namespace):
    return [payment_doc(i, namespace)["payment_id"] for i in range(n)]


def hbase_ids(store) -> list[str]:
    return [cells[b"cf:paymentId"].decode() for _, cells in store.scan_payments(columns=[b"cf:paymentId"])]


@pytest.mark.parametrize("failing", ["hbase", "postgres"])
def test_store_failing_mid_range_backs_up_exactly_the_affected_payments(lane, failing):
    n = 300
    rng = lane.publish([raw(payment_doc(i, lane.namespace)) for i in range(n)])
    hbase, postgres = lane.hbase(), lane.postgres()
    stores = {"hbase": hbase, "postgres": postgres}
    stores[failing] = FailsAfter(stores[failing], rows=120)
    ingestor = lane.ingestor(**stores)
    result = ingestor.ingest(rng, chunk_size=50)

    other = "postgres" if failing == "hbase" else "hbase"
    landed = set(hbase_ids(hbase)) if failing == "hbase" else postgres.existing_ids(ids_of(n, lane.namespace))
    backed_up = {e.payment_id for e in ingestor.backup.list_oldest(1000, store=failing)}
    assert len(landed) == 100 and len(backed_up) == 200  # chunks of 50: two landed, then the store failed
    assert landed.isdisjoint(backed_up) and landed | backed_up == set(ids_of(n, lane.namespace))
    assert result.written[failing] == 100 and result.backed_up == {failing: 200, other: 0}
    assert result.written[other] == n and ingestor.backup.size(other) == 0
    assert result.progress_recorded and postgres.read_progress(lane.topic) == {0: rng.end}
    entry = ingestor.backup.list_oldest(1, store=failing)[0]
    assert "injected" in entry.error and entry.attempts == 1 and entry.position.topic == lane.topic
    # a re-run finds every payment settled (in the store or in its backup) and changes nothing
    again = lane.ingestor(hbase=hbase, postgres=postgres).ingest(rng, chunk_size=50)
    assert again.written == {"hbase": 0, "postgres": 0, "redis": 0} and again.duplicates_skipped == n
    assert ingestor.backup.size(failing) == 200


def test_hbase_unreachable_and_mongo_down_uses_the_folder(lane):
    rng = lane.publish([raw(payment_doc(i, lane.namespace)) for i in range(40)])
    backup = lane.backup(mongo_uri=f"mongodb://127.0.0.1:{free_port()}/")
    ingestor = lane.ingestor(hbase=lane.hbase(port=free_port()), backup=backup)
    result = ingestor.ingest(rng, chunk_size=15)
    assert result.backed_up["hbase"] == 40 and result.backed_up_to_files == 40
    assert result.written["postgres"] == 40 and result.progress_recorded
    assert sorted(p.name for p in lane.fallback_dir.iterdir()) == sorted(
        f"hbase__{pid}.json" for pid in ids_of(40, lane.namespace))
    body = json.loads(next(lane.fallback_dir.iterdir()).read_text())
    assert body["store"] == "hbase" and "unreachable" in body["error"] and body["payment"]["schema_version"] == 1


def test_backup_unreachable_too_fails_the_range_and_progress_stays(lane, tmp_path):
    rng = lane.publish([raw(payment_doc(i, lane.namespace)) for i in range(30)])
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the fallback folder should be")
    backup = lane.backup(mongo_uri=f"mongodb://127.0.0.1:{free_port()}/", fallback_dir=blocker / "failed_payments")
    ingestor = lane.ingestor(hbase=lane.hbase(port=free_port()), backup=backup)
    with pytest.raises(IngestionError, match="backup is unreachable too"):
        ingestor.ingest(rng, chunk_size=10)
    assert lane.postgres().read_progress(lane.topic) == {}
    # Redis never claims a payment that is not safe
    assert ingestor.redis.landed_ids(ids_of(30, lane.namespace)) == set()
    # once the store is back, the same range lands whole and progress moves
    result = lane.ingestor().ingest(rng, chunk_size=10)
    assert result.written["hbase"] == 30 and result.progress_recorded
    assert lane.postgres().read_progress(lane.topic) == {0: rng.end}


CHILD = r"""
import sys, time
from payment_platform.ingestion.loader import Ingestor, OffsetRange
from payment_platform.stores.backup import FailedPaymentBackup
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger
from payment_platform.stores.redis_state import RedisState
(bootstrap, topic, start, end, ns, hb_host, hb_port, transport, protocol, dsn, mongo, redis_url, folder) = sys.argv[1:]
postgres = PostgresLedger(dsn, schema=ns)
write = postgres.write_payments
def slow_write(records):  # slow the child down so the kill lands mid-range
    n = write(records)
    print("chunk", flush=True)
    time.sleep(0.15)
    return n
postgres.write_payments = slow_write
ingestor = Ingestor(bootstrap, HBaseStore(hb_host, int(hb_port), transport, protocol, table_prefix=ns), postgres,
                    FailedPaymentBackup(mongo, folder, database=ns), RedisState(redis_url, key_prefix=ns))
ingestor.ingest(OffsetRange(topic, 0, int(start), int(end)), chunk_size=100)
print("done", flush=True)
"""


def test_sigkill_mid_range_then_retry_lands_every_payment_once(lane):
    n = 1500
    rng = lane.publish([raw(payment_doc(i, lane.namespace)) for i in range(n)])
    e = lane.stack.endpoints
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, lane.bootstrap, lane.topic, str(rng.start), str(rng.end), lane.namespace,
         e.hbase_host, str(e.hbase_port), e.hbase_transport, e.hbase_protocol, e.postgres, e.mongo, e.redis,
         str(lane.fallback_dir)], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(4):  # let a few chunks land
            assert child.stdout.readline().strip() == "chunk"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    postgres = lane.postgres()
    partial = postgres.count_payments()
    assert 0 < partial < n and postgres.read_progress(lane.topic) == {}

    result = lane.ingestor().ingest(rng, chunk_size=100)
    assert result.progress_recorded and postgres.read_progress(lane.topic) == {0: rng.end}
    assert result.written["postgres"] == n - partial
    ids = hbase_ids(lane.hbase())
    assert len(ids) == len(set(ids)) == n and set(ids) == set(ids_of(n, lane.namespace))
    assert postgres.count_payments() == n and lane.hbase().count_index() == n
    assert result.backed_up == {"hbase": 0, "postgres": 0}


def start_gateway(data_dir, port):
    process = subprocess.Popen([sys.executable, "-m", "payment_platform.cli", "hbase-gateway", "--host", "127.0.0.1",
                                "--port", str(port), "--data-dir", str(data_dir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    endpoints = Endpoints(hbase_host="127.0.0.1", hbase_port=port)
    try:
        wait_until(lambda: health.probe("hbase", endpoints, timeout_s=1), 15, "the private HBase gateway answering",
                   retry_on=(Exception,), give_up=lambda: process.poll() is not None and "it exited")
    except WaitTimeout as timeout:
        process.kill()
        raise WaitTimeout(f"{timeout}; its stderr: {process.stderr.read()[-2000:]!r}") from None
    return process


def test_private_hbase_gateway_killed_mid_range(lane, tmp_path):
    """A real HBase server dies (SIGKILL) after two chunks: the rest of the range goes to the backup."""
    port, data_dir = free_port(), tmp_path / "hbase"
    gateway = start_gateway(data_dir, port)
    try:
        n = 250
        rng = lane.publish([raw(payment_doc(i, lane.namespace)) for i in range(n)])
        hbase = lane.hbase(port=port)
        real_write, chunks_written = hbase.write_payments, []

        def write_then_die(records, **options):
            written = real_write(records, **options)
            chunks_written.append(written)
            if len(chunks_written) == 2:
                gateway.kill()
                gateway.wait(timeout=10)
            return written
        hbase.write_payments = write_then_die
        ingestor = lane.ingestor(hbase=hbase)
        result = ingestor.ingest(rng, chunk_size=50)
        assert result.written["hbase"] == 100 and result.backed_up == {"hbase": 150, "postgres": 0}
        assert result.written["postgres"] == n and result.progress_recorded
        backed_up = {e.payment_id for e in ingestor.backup.list_oldest(1000, store="hbase")}
    finally:
        gateway.kill()
        gateway.wait(timeout=10)
    restarted = start_gateway(data_dir, port)  # what the dead server had acknowledged is still there
    try:
        landed = set(hbase_ids(lane.hbase(port=port)))
    finally:
        restarted.terminate()
        restarted.wait(timeout=10)
    assert len(landed) == 100 and landed.isdisjoint(backed_up)
    assert landed | backed_up == set(ids_of(n, lane.namespace))


def test_private_postgres_crashing_mid_range(lane, tmp_path):
    """Postgres dies (immediate shutdown) after two chunks: the rest goes to its backup, and since progress lives
    in Postgres the run fails; once Postgres is back the retry records progress and writes nothing twice."""
    from payment_platform.stores.postgres import PostgresLedger
    port, data_dir = free_port(), tmp_path / "pg"
    n = 250
    rng = lane.publish([raw(payment_doc(i, lane.namespace)) for i in range(n)])
    server, dsn = start_postgres(data_dir, port)
    try:
        ledger = PostgresLedger(dsn, schema=lane.namespace, connect_timeout_s=2)
        real_write, chunks_written = ledger.write_payments, []

        def write_then_crash(records):
            written = real_write(records)
            chunks_written.append(written)
            if len(chunks_written) == 2:
                server.send_signal(signal.SIGQUIT)  # immediate shutdown: no checkpoint, clients cut off
                server.wait(timeout=20)
            return written
        ledger.write_payments = write_then_crash
        ingestor = lane.ingestor(postgres=ledger)
        with pytest.raises(IngestionError, match="progress could not be recorded"):
            ingestor.ingest(rng, chunk_size=50)
        backed_up = {e.payment_id for e in ingestor.backup.list_oldest(1000, store="postgres")}
        assert len(backed_up) == 150 and ingestor.backup.size("hbase") == 0
        assert ingestor.hbase.count_index() == n
    finally:
        server.kill()
        server.wait(timeout=20)
    server, dsn = start_postgres(data_dir, port)  # crash recovery: what was committed is still there
    try:
        ledger = PostgresLedger(dsn, schema=lane.namespace)
        landed = ledger.existing_ids(ids_of(n, lane.namespace))
        assert len(landed) == 100 and landed.isdisjoint(backed_up)
        assert landed | backed_up == set(ids_of(n, lane.namespace))
        assert ledger.read_progress(lane.topic) == {}
        retry = lane.ingestor(postgres=ledger).ingest(rng, chunk_size=50)
        assert retry.written == {"hbase": 0, "postgres": 0, "redis": 0}
        assert retry.duplicates_skipped == n and retry.progress_recorded
        assert ledger.read_progress(lane.topic) == {0: rng.end} and ledger.count_payments() == 100
        ledger.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
        release_cluster(data_dir)  # as root its cluster lives outside tmp_path (a private folder)
