"""The gateway's network side: a thread per connection speaking Thrift1 (buffered or framed, binary or compact).

It listens before anything else can be slow, answers until SIGTERM/SIGINT, then stops accepting, lets the
write in flight finish and closes the store. A connection that sends garbage or vanishes mid-call is
closed on its own; every other connection keeps being served.
"""
from __future__ import annotations

import errno
import fcntl
import gc
import logging
import os
import signal
import socket
import threading
import time

from thriftpy2.protocol.cybin import TCyBinaryProtocol
from thriftpy2.thrift import TMessageType, TProcessor
from thriftpy2.transport import (
    TCyBufferedTransport,
    TCyFramedTransport,
    TCyMemoryBuffer,
    TSocket,
    TTransportException,
)

from devstack.hbase_gateway.handler import IllegalArgument, IOError_, HbaseHandler, checked, service_module
from devstack.hbase_gateway.storage import LATEST_TIMESTAMP, Store
from devstack.hbase_gateway.wire import (
    CheckedCompactProtocol,
    ColumnNameCache,
    MessageReader,
    encode_row_results,
    message_name,
)

log = logging.getLogger("devstack.hbase_gateway")
ACCEPT_WAKE_S = 0.5  # the longest the accept loop sleeps before it looks at the stop flag again


class UsageError(ValueError):
    """A setting the gateway cannot start with (port, folder): the message names the option; the command
    prints it on one line and exits 2. The gateway imports nothing of payment_platform: it stands on its own."""
_SCANNER_CALLS = (b"scannerGetList", b"scannerGet")
# Row reads answered on the fast path, and how each one's arguments map to (rows, columns, timestamp).
_ROW_CALLS = {
    b"getRow": lambda a: ([a.row], None, LATEST_TIMESTAMP),
    b"getRowWithColumns": lambda a: ([a.row], a.columns, LATEST_TIMESTAMP),
    b"getRowTs": lambda a: ([a.row], None, a.timestamp),
    b"getRowWithColumnsTs": lambda a: ([a.row], a.columns, a.timestamp),
    b"getRows": lambda a: (a.rows, None, LATEST_TIMESTAMP),
    b"getRowsWithColumns": lambda a: (a.rows, a.columns, LATEST_TIMESTAMP),
    b"getRowsTs": lambda a: (a.rows, None, a.timestamp),
    b"getRowsWithColumnsTs": lambda a: (a.rows, a.columns, a.timestamp),
}


def prepare_data_dir(data_dir: str) -> str:
    path = os.path.abspath(data_dir)
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-probe")
        with open(probe, "wb") as handle:
            handle.write(b"ok")
        os.unlink(probe)
    except OSError as error:
        raise UsageError(f"--data-dir: cannot write to {data_dir!r}: {error.strerror or error}") from None
    return path


def parse_port(text) -> int:
    try:
        port = int(str(text), 10)
    except ValueError:
        raise UsageError(f"--port: {text!r} is not a port number (0-65535)") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"--port: {port} is out of range (0-65535)")
    return port


class Gateway:
    def __init__(self, host: str, port: int, data_dir: str, framed: bool = False, compact: bool = False):
        self.host, self.requested_port = host, port
        self.data_dir = prepare_data_dir(data_dir)
        self.framed, self.compact = framed, compact
        self.listener: socket.socket | None = None
        self.store: Store | None = None
        self.handler: HbaseHandler | None = None
        self.processor: TProcessor | None = None
        self.stopping = threading.Event()
        self._connections: set = set()
        self._connections_lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1] if self.listener else self.requested_port

    def _lock_data_dir(self) -> None:
        """One gateway per data dir: the store's metadata is cached in memory. The kernel drops the lock
        when the process dies, however it dies."""
        self._lock_file = open(os.path.join(self.data_dir, "gateway.lock"), "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "?"
            self._lock_file.close()
            raise UsageError(f"--data-dir: {self.data_dir} is in use by another gateway (pid {holder})") from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()

    def open(self) -> None:
        self._lock_data_dir()
        try:
            self.store = Store(self.data_dir)
        except Exception as error:  # noqa: BLE001 - sqlite3.DatabaseError and friends: the folder holds something else
            raise UsageError(f"--data-dir: cannot open the store in {self.data_dir!r}: {error}") from None
        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.requested_port))
        except OSError as error:
            listener.close()
            self.store.close()
            if error.errno == errno.EADDRINUSE:
                raise UsageError(f"--port: {self.requested_port} is already in use on {self.host}") from None
            raise UsageError(f"--host/--port: cannot listen on {self.host}:{self.requested_port}: {error.strerror}") from None
        listener.listen(256)
        # accept() wakes twice a second: a signal the kernel hands to another thread (any thread may take a
        # process-wide one) runs its Python handler only once the main thread runs Python code again.
        listener.settimeout(ACCEPT_WAKE_S)
        self.listener = listener
        self.handler = HbaseHandler(self.store, self.host, self.port)
        self.service = service_module()
        self.checked = checked(self.handler, self.service)
        self.processor = TProcessor(self.service, self.checked)

    def serve_forever(self) -> None:
        """Accepts connections until stop() (SIGTERM/SIGINT call it), then closes everything."""
        assert self.listener is not None
        try:
            while not self.stopping.is_set():
                try:
                    client, address = self.listener.accept()
                except TimeoutError:
                    continue
                except OSError as error:
                    if self.stopping.is_set():
                        break
                    log.warning("accept failed: %s", error)  # e.g. out of file descriptors: keep serving
                    time.sleep(0.1)
                    continue
                if self.stopping.is_set():
                    client.close()
                    break
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                thread = threading.Thread(target=self._serve_client, args=(client, address), daemon=True,
                                          name=f"hbase-client-{address[1]}")
                thread.start()
        finally:
            self.close()

    def _serve_client(self, client: socket.socket, address) -> None:
        with self._connections_lock:
            self._connections.add(client)
        transport_class = TCyFramedTransport if self.framed else TCyBufferedTransport
        transport = transport_class(TSocket(sock=client))
        try:
            # Replies are encoded in memory and sent with one call.
            if self.compact:
                request = CheckedCompactProtocol(transport)
                while not self.stopping.is_set():
                    reply = TCyMemoryBuffer()
                    self.processor.process(request, CheckedCompactProtocol(reply))
                    self._send(client, reply.getvalue())
            else:
                # Each message is read and checked whole, then decoded from memory by the C decoder.
                reader = MessageReader(client, self.framed)
                names = ColumnNameCache()
                while not self.stopping.is_set():
                    message = reader.next_message()
                    api, seqid = message_name(message)
                    if api in _SCANNER_CALLS:
                        self._send(client, self._scanner_reply(message, api.decode(), seqid, names))
                        continue
                    if api in _ROW_CALLS:
                        self._send(client, self._rows_reply(message, api.decode(), seqid, names))
                        continue
                    reply = TCyMemoryBuffer()
                    self.processor.process(TCyBinaryProtocol(TCyMemoryBuffer(message), decode_response=False),
                                           TCyBinaryProtocol(reply, decode_response=False))
                    self._send(client, reply.getvalue())
        except TTransportException:
            pass  # the client closed its connection (or vanished mid-call)
        except OSError as error:
            log.info("connection from %s:%s ended: %s", address[0], address[1], error)
        except Exception as error:  # noqa: BLE001 - garbage on the wire: drop this connection only
            log.warning("closing connection from %s:%s: unreadable request (%s: %s)",
                        address[0], address[1], type(error).__name__, error)
        finally:
            with self._connections_lock:
                self._connections.discard(client)
            try:
                transport.close()
            except Exception:  # noqa: BLE001
                pass

    def _read_args(self, message: bytes, api: str):
        request = TCyBinaryProtocol(TCyMemoryBuffer(message), decode_response=False)
        request.read_message_begin()
        args = getattr(self.service, api + "_args")()
        args.read(request)
        return args

    def _error_reply(self, api: str, seqid: int, error: Exception) -> bytes:
        result = getattr(self.service, api + "_result")()
        if isinstance(error, IllegalArgument):
            result.ia = error
        else:
            result.io = error
        reply = TCyMemoryBuffer()
        out = TCyBinaryProtocol(reply, decode_response=False)
        out.write_message_begin(api, TMessageType.REPLY, seqid)
        result.write(out)
        out.write_message_end()
        return reply.getvalue()

    def _scanner_reply(self, message: bytes, api: str, seqid: int, names: ColumnNameCache) -> bytes:
        """scannerGetList/scannerGet: the rows are encoded straight to bytes (the scan hot path)."""
        args = self._read_args(message, api)
        try:
            sort_columns, rows = self.checked.scanner_rows(args.id, args.nbRows if api == "scannerGetList" else 1)
        except (IOError_, IllegalArgument) as error:
            return self._error_reply(api, seqid, error)
        return encode_row_results(api, seqid, rows, sort_columns, names)

    def _rows_reply(self, message: bytes, api: str, seqid: int, names: ColumnNameCache) -> bytes:
        """getRow*/getRows*: the same straight-to-bytes encoding (multi-gets of index and payment rows)."""
        args = self._read_args(message, api)
        rows, columns, timestamp = _ROW_CALLS[api.encode()](args)
        try:
            found = self.checked.rows_for(args.tableName, rows, columns, timestamp)
        except (IOError_, IllegalArgument) as error:
            return self._error_reply(api, seqid, error)
        return encode_row_results(api, seqid, found, False, names)

    def _send(self, client: socket.socket, data: bytes) -> None:
        if self.framed:
            data = len(data).to_bytes(4, "big") + data
        client.sendall(data)

    def stop(self) -> None:
        self.stopping.set()
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.stopping.set()
        if self.listener is not None:
            self.listener.close()
        with self._connections_lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self.store is not None:
            self.store.close()


def run(host: str, port, data_dir: str, framed: bool, compact: bool) -> int:
    """The `hbase-gateway` command: serve until SIGTERM/SIGINT, then close the store and return 0."""
    logging.basicConfig(level=logging.WARNING, format="hbase-gateway: %(levelname)s %(message)s")
    gateway = Gateway(host, parse_port(port), data_dir, framed=framed, compact=compact)

    def on_signal(signum, _frame):
        # No exception from here: it could land inside Thread.start(). Shutting the listener down makes
        # the retried accept() fail, and the loop sees the flag.
        gateway.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        gateway.open()
        print(
            f"hbase-gateway: serving HBase Thrift1 on {host}:{gateway.port}"
            f" ({'framed' if framed else 'buffered'}, {'compact' if compact else 'binary'}), store {gateway.store.path}",
            flush=True,
        )
        # A 2,000-row mutateRows decodes into ~30,000 objects that live until it is stored: with the default
        # gen-0 threshold the collector walks them many times per call (HBase puts alone: +5% without that).
        # The gateway's own process: the threshold is set for its life and given back when serving ends.
        saved = gc.get_threshold()
        gc.set_threshold(max(saved[0], 100_000), *saved[1:])
        try:
            gateway.serve_forever()
        finally:
            gc.set_threshold(*saved)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
