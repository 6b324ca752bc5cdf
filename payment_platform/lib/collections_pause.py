"""Fewer garbage collections while a batch job allocates many short-lived objects.

A chunk of payments allocates tens of objects per payment (parsed documents, Thrift structs, records). With the
default gen-0 threshold of 700 the cyclic collector runs thousands of times per range, and every older-generation
pass walks the whole heap of a Dagster run worker (Dagster, kafka-python, happybase...). Nearly all of these
objects are freed by reference counting anyway, so collecting rarely keeps memory bounded by the chunk size.
What it saved, measured: docs/decisions.md ("What made ingestion fast").
"""
from __future__ import annotations

import contextlib
import gc
import threading
from typing import Iterator

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None


@contextlib.contextmanager
def fewer_collections(gen0: int = 100_000) -> Iterator[None]:
    """Raise the collector's youngest-generation threshold for the duration (process-wide; nested and concurrent
    uses are counted, and the thresholds in force before the first one come back after the last one ends)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(_saved[0], gen0), *_saved[1:])
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
