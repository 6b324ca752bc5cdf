"""Iterate in a background thread a bounded number of items ahead, so a producer's I/O (a Kafka fetch, a
Thrift scan round trip) overlaps the caller's work on the previous item."""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_END = object()


def read_ahead(items: Iterable[T], depth: int = 1, name: str = "read-ahead") -> Iterator[T]:
    """Yields `items`, produced by a thread that stays at most `depth` items ahead. An exception raised while
    producing is re-raised here, in the caller; a caller that stops early stops the thread, which closes
    `items` if it has a close() (a generator), so the underlying reader is released either way."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the caller, which re-raises it
            put(error)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)


def in_batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
