"""Offsets-only reads for the sensor and the run's lag figures, each bounded in time.

Nothing here reads a payload: end offsets come from Kafka, progress from the Postgres ledger.
"""
from __future__ import annotations

import concurrent.futures
import threading
from typing import Callable, TypeVar

from payment_platform.ingestion.planner import Lag, lag_of
from payment_platform.stores import kafka as kafka_store

T = TypeVar("T")


class OffsetsUnavailable(RuntimeError):
    """Offsets or progress could not be read in time; the message says which system and why."""


def bounded(fn: Callable[[], T], timeout_s: float, what: str = "call") -> T:
    """Run fn in a daemon thread and give up after timeout_s (a hung socket never hangs the caller)."""
    box: concurrent.futures.Future = concurrent.futures.Future()

    def target() -> None:
        try:
            box.set_result(fn())
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            box.set_exception(error)

    threading.Thread(target=target, name=f"bounded-{what}", daemon=True).start()
    try:
        return box.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise OffsetsUnavailable(f"{what} did not answer within {timeout_s:g}s") from None


def read_end_offsets(bootstrap: str, topic: str, timeout_s: float) -> dict[int, int]:
    try:
        offsets = bounded(lambda: kafka_store.end_offsets(bootstrap, topic, timeout_s=timeout_s),
                          timeout_s + 1.0, "kafka end offsets")
    except OffsetsUnavailable as error:
        raise OffsetsUnavailable(f"Kafka at {bootstrap}: {error}") from None
    except Exception as error:  # noqa: BLE001 - any client error means "Kafka unavailable", said plainly
        raise OffsetsUnavailable(f"Kafka at {bootstrap}: cannot read end offsets of {topic!r}: "
                                 f"{type(error).__name__}: {error}") from error
    return {int(p): int(o) for p, o in offsets.items()}


def read_first_offsets(bootstrap: str, topic: str, timeout_s: float) -> dict[int, int]:
    try:
        offsets = bounded(lambda: kafka_store.beginning_offsets(bootstrap, topic, timeout_s=timeout_s),
                          timeout_s + 1.0, "kafka beginning offsets")
    except Exception as error:  # noqa: BLE001
        raise OffsetsUnavailable(f"Kafka at {bootstrap}: cannot read beginning offsets of {topic!r}: "
                                 f"{type(error).__name__}: {error}") from error
    return {int(p): int(o) for p, o in offsets.items()}


def read_topic_id(bootstrap: str, topic: str, timeout_s: float) -> str | None:
    """The broker's id of the topic (it changes when the topic is recreated); None if it reports none."""
    try:
        return bounded(lambda: kafka_store.topic_id(bootstrap, topic, timeout_s=timeout_s), timeout_s + 1.0,
                       "kafka topic id")
    except Exception as error:  # noqa: BLE001
        raise OffsetsUnavailable(f"Kafka at {bootstrap}: cannot describe topic {topic!r}: "
                                 f"{type(error).__name__}: {error}") from error


def read_progress(ledger, topic: str, timeout_s: float) -> dict[int, int]:
    try:
        progress = bounded(lambda: ledger.read_progress(topic), timeout_s, "postgres progress")
    except Exception as error:  # noqa: BLE001
        raise OffsetsUnavailable(f"Postgres: cannot read ingestion progress of {topic!r}: "
                                 f"{type(error).__name__}: {error}") from error
    return {int(p): int(o) for p, o in progress.items()}


def read_lag(bootstrap: str, topic: str, ledger, timeout_s: float) -> Lag:
    return lag_of(read_end_offsets(bootstrap, topic, timeout_s), read_progress(ledger, topic, timeout_s))
