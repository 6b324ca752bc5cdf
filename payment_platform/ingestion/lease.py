"""Continuous ingestion of one partition for a bounded lease: micro-batch after micro-batch, one process.

A lease run holds the partition's lease (a Postgres session lock: one writer per partition, released the moment
its process or connection dies), reads on from the recorded progress with one long-lived Kafka reader, and lands
each micro-batch with the same `Ingestor.ingest` as a one-range run (exactly-once effects, progress recorded
after the batch settled). What one run per range paid for every batch (a sensor tick, a queue, a fresh process
importing Dagster, resources, the range's checks as their own step) is paid once per lease.

Batches follow the backlog: a batch closes once `min_batch_size` messages wait or the first of them has waited
`max_wait_seconds`, and never holds more than `max_batch_size`; a backlog gives full batches at once, a light load
small ones quickly. A batch that cannot settle is retried from the recorded progress with half as many messages
(down to one) and a growing pause; `max_failures` failures in a row at the same offset end the lease with the
error, naming the partition and the offset (the sensor starts another lease and shows the streak).

No Dagster here: `defs/ingestion/lease_job.py` runs it and reports what it yields.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

from payment_platform.ingestion.loader import Ingestor, IngestionError, OffsetRange, RangeResult
from payment_platform.stores.kafka import KafkaMessage, KafkaUnavailable, PartitionReader, RangeUnavailable

logger = logging.getLogger(__name__)


class LeaseError(RuntimeError):
    """The lease could not go on (the same batch failed `max_failures` times, or the lease was lost)."""


@dataclass(frozen=True)
class LeaseSettings:
    lease_seconds: float = 600.0  # how long one run ingests its partition before handing over to the next
    acquire_seconds: float = 120.0  # how long a successor waits for the lease before giving up (nothing lost)
    idle_seconds: float = 120.0  # a lease with nothing to read for this long ends early (the sensor restarts one)
    min_batch_size: int = 500
    max_batch_size: int = 20_000
    max_wait_seconds: float = 0.5  # the longest the first message of a batch waits for the batch to fill
    chunk_size: int = 2000
    max_failures: int = 5  # failures in a row at one offset before the lease ends with the error

    def __post_init__(self) -> None:
        for name in ("lease_seconds", "acquire_seconds", "idle_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if not 1 <= self.min_batch_size <= self.max_batch_size:
            raise ValueError(f"batch sizes: need 1 <= min_batch_size ({self.min_batch_size}) <= max_batch_size "
                             f"({self.max_batch_size})")
        if self.max_wait_seconds < 0 or self.chunk_size < 1 or self.max_failures < 1:
            raise ValueError("max_wait_seconds >= 0, chunk_size >= 1 and max_failures >= 1 are needed")


@dataclass
class LandedBatch:
    """One micro-batch settled in every store (or backup/quarantine) with its progress recorded."""

    result: RangeResult
    batch_seconds: float  # from the batch closed (read, filled) to its progress recorded
    loader_seconds: float  # of which the loader's own work (Ingestor.ingest)
    lag_after: int | None  # messages still waiting in the partition, as the last fetch saw it
    fill_seconds: float = 0.0  # how long its first message waited for the batch to fill (max_wait_seconds)
    # how long the previous batch's reporting took (its materializations, range checks, consumer group commit:
    # the caller's work between two batches, part of the fixed cost per batch, measured when the caller resumes)
    report_seconds: float = 0.0
    # the messages it landed, as read: the range checks parse them from here instead of fetching them again
    messages: list[KafkaMessage] = field(default_factory=list, repr=False)

    @property
    def overhead_seconds(self) -> float:
        """Everything a batch costs but the loader's own work: its bookkeeping around the loader, and reporting."""
        return max(0.0, self.batch_seconds - self.loader_seconds) + self.report_seconds

    def as_metadata(self) -> dict:
        return {**self.result.as_metadata(), "batch_seconds": round(self.batch_seconds, 4),
                "loader_seconds": round(self.loader_seconds, 4),
                "batch_overhead_seconds": round(self.overhead_seconds, 4),
                "batch_fill_seconds": round(self.fill_seconds, 4),
                "report_seconds": round(self.report_seconds, 4),
                "partition_lag": -1 if self.lag_after is None else self.lag_after}


@dataclass
class BatchFailed:
    """A batch that could not settle; it is tried again from the recorded progress."""

    offset: int
    error: str
    failures: int  # in a row at this offset
    next_batch_size: int


@dataclass
class Waiting:
    """Nothing to read for a moment (at most a second): the caller may report what finished meanwhile."""


@dataclass
class LeaseEnd:
    reason: str
    batches: int
    messages: int


@dataclass
class _Streak:
    offset: int = -1
    failures: int = 0


@dataclass
class LeaseRunner:
    """Runs one lease of one partition; iterate `run()` for what happens."""

    ingestor: Ingestor
    kafka_bootstrap: str
    topic: str
    partition: int
    lease: "PartitionLeaseLike"
    settings: LeaseSettings = LeaseSettings()
    should_stop: Callable[[], bool] = lambda: False
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    log: logging.Logger | logging.LoggerAdapter = logger
    _streak: _Streak = field(default_factory=_Streak)
    _start: int = 0  # the next offset to ingest

    def run(self) -> Iterator[LandedBatch | BatchFailed | Waiting | LeaseEnd]:
        settings = self.settings
        if not self.lease.acquire(settings.acquire_seconds, self.should_stop):
            yield LeaseEnd(f"{self.topic}[{self.partition}]: another run held the lease for "
                           f"{settings.acquire_seconds:g}s (or the run was stopped); nothing ingested here", 0, 0)
            return
        try:
            self.ingestor.ensure_schemas(self.log)
            yield from self._ingest_until_expiry()
        finally:
            self.lease.release()

    def _ingest_until_expiry(self) -> Iterator[LandedBatch | BatchFailed | Waiting | LeaseEnd]:
        settings, started = self.settings, self.clock()
        deadline, idle_since = started + settings.lease_seconds, started
        batches = messages = 0
        batch_limit = settings.max_batch_size
        report_seconds = 0.0
        reader: PartitionReader | None = None
        try:
            while True:
                now = self.clock()
                if self.should_stop():
                    reason = "stopped"
                    break
                if now >= deadline:
                    reason = f"lease of {settings.lease_seconds:g}s over"
                    break
                if now - idle_since >= settings.idle_seconds:
                    reason = f"nothing to ingest for {settings.idle_seconds:g}s"
                    break
                if not self.lease.held():
                    raise LeaseError(f"{self.topic}[{self.partition}]: the lease was lost (its Postgres session "
                                     f"ended); another run may take the partition on")
                if reader is None:
                    reader = self._reader()
                batch, first_seen = self._next_batch(reader, batch_limit, min(1.0, deadline - now))
                if not batch:
                    yield Waiting()
                    continue
                closed = self.clock()
                idle_since = self.clock()  # something to ingest (landed or failed): not idle
                start = self._start
                offset_range = OffsetRange(self.topic, self.partition, start, batch[-1].offset + 1)
                try:
                    loader_started = self.clock()
                    result = self.ingestor.ingest(offset_range, settings.chunk_size, self.log, messages=batch)
                    loader_seconds = self.clock() - loader_started
                except IngestionError as error:
                    reader.close()
                    reader = None  # read again from the recorded progress
                    failed = self._failed(start, error, batch_limit)
                    batch_limit = failed.next_batch_size
                    idle_since = self.clock()
                    yield failed
                    continue
                self._start, self._streak = offset_range.end, _Streak()
                batch_limit = settings.max_batch_size
                batches, messages = batches + 1, messages + result.messages
                high = reader.highwater()
                handed = self.clock()
                yield LandedBatch(result, handed - closed, loader_seconds,
                                  None if high is None else max(0, high - offset_range.end), closed - first_seen,
                                  report_seconds, batch)
                report_seconds = self.clock() - handed  # the caller reported it (events, checks) meanwhile
        finally:
            if reader is not None:
                reader.close()
        yield LeaseEnd(reason, batches, messages)

    def _reader(self) -> PartitionReader:
        """A reader from the recorded progress (read under the lease, so nobody else moves it now)."""
        progress = self.ingestor.postgres.read_progress(self.topic).get(self.partition)
        if progress is None:  # the sensor records where a partition starts before the first lease (0 unless told)
            progress = 0
        self._start = progress
        try:
            return PartitionReader(self.kafka_bootstrap, self.topic, self.partition, progress)
        except (KafkaUnavailable, RangeUnavailable) as error:
            raise LeaseError(f"{self.topic}[{self.partition}]: cannot read on from offset {progress}: {error}") from error

    def _next_batch(self, reader: PartitionReader, limit: int, wait_s: float):
        """The next batch: what waits now, filled up to `min_batch_size` for at most `max_wait_seconds`."""
        settings = self.settings
        try:
            batch = reader.read(limit, max(0.0, wait_s))
            first_seen = self.clock()
            if not batch:
                return [], first_seen
            fill_until = first_seen + settings.max_wait_seconds
            while len(batch) < min(settings.min_batch_size, limit):
                remaining = fill_until - self.clock()
                if remaining <= 0:
                    break
                batch.extend(reader.read(limit - len(batch), remaining))
            return batch, first_seen
        except (KafkaUnavailable, RangeUnavailable) as error:
            raise LeaseError(f"{self.topic}[{self.partition}]: reading on from offset {reader.position} failed: "
                             f"{error}") from error

    def _failed(self, offset: int, error: Exception, batch_limit: int) -> BatchFailed:
        streak = self._streak if self._streak.offset == offset else _Streak(offset)
        streak.failures += 1
        self._streak = streak
        message = f"{type(error).__name__}: {error}"
        if streak.failures >= self.settings.max_failures:
            raise LeaseError(f"{self.topic}[{self.partition}] at offset {offset}: the batch failed "
                             f"{streak.failures} times in a row (batches down to {batch_limit} messages): {message}")
        pause = min(30.0, 0.5 * 2 ** streak.failures)
        self.log.warning(f"{self.topic}[{self.partition}] batch at offset {offset} failed ({streak.failures} in a "
                         f"row), trying again in {pause:g}s with at most {max(1, batch_limit // 2)} messages: {message}")
        self.sleep(pause)
        return BatchFailed(offset, message, streak.failures, max(1, batch_limit // 2))


class PartitionLeaseLike(Protocol):
    """The shape of stores.postgres.PartitionLease."""

    def acquire(self, wait_s: float, should_stop: Callable[[], bool]) -> bool: ...
    def held(self) -> bool: ...
    def release(self) -> None: ...
