"""Kafka: the one module that talks to the broker (kafka-python).

Every call is bounded: a dead broker gives a `KafkaUnavailable` error within a few seconds, never a hang.
- `ensure_topic`: create the topic if missing (idempotent).
- `end_offsets` / `beginning_offsets`: read offsets only (what a sensor may do); `topic_id`: the topic's
  UUID, which changes when the topic is recreated or a memory broker restarts.
- `read_range`: exactly the messages at offsets [start, end) of one partition, in chunks, via assign()+seek()
  (no consumer group); raises `RangeUnavailable` rather than returning short.
- `PartitionReader`: one partition read onwards from an offset by one consumer, batch after batch (a lease).
- `Publisher`: sends `GeneratedMessage`-like objects (key, value, headers) with acks='all' and counts only
  what the broker ACKNOWLEDGED; reports offsets written per partition; bounded retries, then
  `PublishError` saying how many were acknowledged.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Protocol

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 3  # the default of PAYMENTS_TOPIC_PARTITIONS (config.DEFAULT_TOPIC_PARTITIONS)
DEFAULT_TIMEOUT_S = 5.0


class KafkaUnavailable(RuntimeError):
    """The broker could not be reached or did not answer in time."""


class UnknownTopic(KafkaUnavailable):
    """The topic does not exist on the broker."""


class RangeUnavailable(RuntimeError):
    """An offset range that cannot be read whole (offsets gone, beyond the end, or the read stalled)."""


class PublishError(RuntimeError):
    """Publishing stopped; `acknowledged` says how many messages the broker did acknowledge."""

    def __init__(self, message: str, acknowledged: int, failed: int):
        self.acknowledged = acknowledged
        self.failed = failed
        super().__init__(message)


@dataclass(frozen=True)
class KafkaMessage:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    timestamp_ms: int


class OutgoingMessage(Protocol):
    """What a Publisher sends: `generation.generator.GeneratedMessage` has these."""

    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class KafkaClient:
    """One topic of one cluster for one use (a sensor tick, a check, a run): the admin connection is opened
    on first need and shared by every topic and offsets call until `close()`; a fetch of the high
    watermarks or a range read opens its own consumer. Every call is bounded by `timeout_s`."""

    def __init__(self, bootstrap_servers: str, topic: str, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.bootstrap_servers, self.topic, self.timeout_s = bootstrap_servers, topic, timeout_s
        self._admin_client: KafkaAdminClient | None = None

    def __enter__(self) -> "KafkaClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._admin_client is not None:
            self._admin_client.close()
            self._admin_client = None

    def _admin(self) -> KafkaAdminClient:
        if self._admin_client is None:
            try:
                self._admin_client = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers, client_id="payment-platform-admin",
                    request_timeout_ms=_ms(self.timeout_s), bootstrap_timeout_ms=_ms(self.timeout_s),
                    reconnect_backoff_max_ms=1000)
            except KafkaError as error:
                raise KafkaUnavailable(f"Kafka at {self.bootstrap_servers} is unreachable: {error}") from None
        return self._admin_client

    def ensure_topic(self, partitions: int | None = None) -> bool:
        """Creates the topic with `partitions` partitions (None: PAYMENTS_TOPIC_PARTITIONS, default 3) if it
        does not exist; True if it was created. An existing topic keeps its partition count."""
        if partitions is None:
            from payment_platform.config import scaling_from_env

            partitions = scaling_from_env().topic_partitions
        try:
            self._admin().create_topics({self.topic: {"num_partitions": partitions, "replication_factor": 1}},
                                        timeout_ms=_ms(self.timeout_s))
            return True
        except TopicAlreadyExistsError:
            return False
        except KafkaError as error:
            raise KafkaUnavailable(f"could not create topic {self.topic!r} on {self.bootstrap_servers}: "
                                   f"{error}") from None

    def _describe(self) -> dict:
        try:
            described = self._admin().describe_topics([self.topic])
        except KafkaError as error:
            raise KafkaUnavailable(f"could not describe topic {self.topic!r} on {self.bootstrap_servers}: "
                                   f"{error}") from None
        found = [t for t in described if t["name"] == self.topic and t["error_code"] == 0]
        if not found or not found[0]["partitions"]:
            raise UnknownTopic(f"topic {self.topic!r} does not exist on {self.bootstrap_servers}")
        return found[0]

    def partitions(self) -> list[int]:
        return sorted(p["partition_index"] for p in self._describe()["partitions"])

    def topic_id(self) -> str | None:
        """The topic's UUID (KIP-516), or None when the broker reports none. It changes when the topic is
        recreated or a memory broker restarts: an epoch for offsets remembered across calls."""
        value = self._describe().get("topic_id")
        if value is None or str(value).replace("-", "").strip("0") == "":
            return None
        return str(value)

    def _offsets(self, spec: OffsetSpec) -> dict[int, int]:
        specs = {TopicPartition(self.topic, p): spec for p in self.partitions()}
        try:
            answer = self._admin().list_partition_offsets(specs, timeout_ms=_ms(self.timeout_s))
        except KafkaError as error:
            raise KafkaUnavailable(f"could not read offsets of {self.topic!r} on {self.bootstrap_servers}: "
                                   f"{error}") from None
        return {tp.partition: result.offset for tp, result in sorted(answer.items())}

    def end_offsets(self) -> dict[int, int]:
        """partition -> offset of the next message to be written (the high watermark).

        The embedded broker (Tansu) answers ListOffsets(LATEST) with the last record batch's base offset + 1,
        short of the real end when that batch holds several records. The high watermark a fetch response
        carries is right, so each partition is fetched once at the listed offset (at most one small record
        batch, never parsed) and the larger of the two is returned. On Apache Kafka both agree.
        """
        listed = self._offsets(OffsetSpec.LATEST)
        return _high_watermarks(self.bootstrap_servers, self.topic, listed, self.timeout_s)

    def beginning_offsets(self) -> dict[int, int]:
        """partition -> offset of the oldest message still held by the broker."""
        return self._offsets(OffsetSpec.EARLIEST)

    def read_range(self, partition: int, start: int, end: int, batch: int = 2000, stall_timeout_s: float = 15.0,
                   topic: str | None = None) -> Iterator[list[KafkaMessage]]:
        """`read_range` of this topic (or of `topic` on the same cluster: a recorded range names its own)."""
        return read_range(self.bootstrap_servers, topic or self.topic, partition, start, end, batch, self.timeout_s,
                          stall_timeout_s)

    def publisher(self, **options) -> "Publisher":
        return Publisher(self.bootstrap_servers, self.topic, **options)

    def commit_group_offsets(self, group: str, next_offsets: dict[int, int]) -> dict[int, int]:
        """Commit, for consumer group `group`, each partition's next offset to consume, never moving a committed
        offset backwards (a retried older range commits nothing). No group membership is needed (a "simple
        consumer" commit); returns what was committed. For Kafka's own tools (lag per group): the ledger in
        Postgres stays the source of truth of ingestion progress."""
        from kafka.structs import OffsetAndMetadata

        consumer = _consumer(self.bootstrap_servers, self.timeout_s, "payment-platform-offsets", group_id=group)
        try:
            committed = self.group_offsets(group)
            ahead = {p: o for p, o in next_offsets.items() if o > committed.get(p, -1)}
            if ahead:
                consumer.commit({TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1)
                                 for p, o in ahead.items()})
            return ahead
        finally:
            consumer.close()

    def group_offsets(self, group: str) -> dict[int, int]:
        """partition -> committed offset of consumer group `group` on this topic (OffsetFetch)."""
        try:
            answer = self._admin().list_group_offsets(group)
        except KafkaError as error:
            raise KafkaUnavailable(f"could not read the offsets of group {group!r} on {self.bootstrap_servers}: "
                                   f"{error}") from None
        return {tp.partition: meta.offset for tp, meta in answer.get(group, {}).items() if tp.topic == self.topic}


def ensure_topic(bootstrap: str, topic: str, partitions: int | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """One-shot `KafkaClient.ensure_topic` (for the CLI and tests)."""
    with KafkaClient(bootstrap, topic, timeout_s) as client:
        return client.ensure_topic(partitions)


def partitions_for(bootstrap: str, topic: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[int]:
    with KafkaClient(bootstrap, topic, timeout_s) as client:
        return client.partitions()


def topic_id(bootstrap: str, topic: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> str | None:
    """One-shot `KafkaClient.topic_id`."""
    with KafkaClient(bootstrap, topic, timeout_s) as client:
        return client.topic_id()


def end_offsets(bootstrap: str, topic: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[int, int]:
    """One-shot `KafkaClient.end_offsets`."""
    with KafkaClient(bootstrap, topic, timeout_s) as client:
        return client.end_offsets()


def beginning_offsets(bootstrap: str, topic: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[int, int]:
    """One-shot `KafkaClient.beginning_offsets`."""
    with KafkaClient(bootstrap, topic, timeout_s) as client:
        return client.beginning_offsets()


def _consumer(bootstrap: str, timeout_s: float, client_id: str, group_id: str | None = None,
              **options) -> KafkaConsumer:
    try:
        return KafkaConsumer(bootstrap_servers=bootstrap, client_id=client_id, group_id=group_id,
                             enable_auto_commit=False, request_timeout_ms=_ms(max(timeout_s, 1.0)),
                             bootstrap_timeout_ms=_ms(timeout_s), reconnect_backoff_max_ms=1000,
                             fetch_max_wait_ms=100, **options)
    except KafkaError as error:
        raise KafkaUnavailable(f"Kafka at {bootstrap} is unreachable: {error}") from None


def _high_watermarks(bootstrap: str, topic: str, listed: dict[int, int], timeout_s: float) -> dict[int, int]:
    consumer = _consumer(bootstrap, timeout_s, "payment-platform-offsets", max_partition_fetch_bytes=1,
                         auto_offset_reset="latest")
    try:
        tps = {p: TopicPartition(topic, p) for p in listed}
        consumer.assign(list(tps.values()))
        for p, tp in tps.items():
            consumer.seek(tp, max(listed[p] - 1, 0))
        deadline = time.monotonic() + timeout_s
        while any(consumer.highwater(tp) is None for tp in tps.values()):
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"could not read the high watermarks of {topic!r} on {bootstrap} "
                                       f"within {timeout_s:.0f}s")
            try:
                consumer.poll(timeout_ms=200, max_records=1)
            except KafkaError as error:
                raise KafkaUnavailable(f"could not read the high watermarks of {topic!r}: {error}") from None
        return {p: max(listed[p], consumer.highwater(tp)) for p, tp in tps.items()}
    finally:
        consumer.close()


def read_range(bootstrap: str, topic: str, partition: int, start: int, end: int, batch: int = 2000,
               timeout_s: float = DEFAULT_TIMEOUT_S, stall_timeout_s: float = 15.0) -> Iterator[list[KafkaMessage]]:
    """Yields chunks (at most `batch` each) of the messages at offsets [start, end) of one partition.

    Raises RangeUnavailable when the range is not all on the broker (start before the oldest offset,
    end past the high watermark) or when no progress is made for `stall_timeout_s`; KafkaUnavailable when the
    broker cannot be reached. Uses assign()+seek(): no consumer group, nothing committed.
    """
    if start < 0 or end < start:
        raise ValueError(f"bad offset range [{start}, {end})")
    if start == end:
        return
    tp = TopicPartition(topic, partition)
    consumer = _consumer(bootstrap, timeout_s, "payment-platform-reader", auto_offset_reset="none",
                         max_poll_records=min(batch, 10_000))
    try:
        try:
            first = consumer.beginning_offsets([tp], timeout_ms=_ms(timeout_s))[tp]
        except KafkaError as error:
            raise KafkaUnavailable(f"could not read offsets of {topic}[{partition}] on {bootstrap}: {error}") from None
        if start < first:
            raise RangeUnavailable(f"{topic}[{partition}] offsets [{start}, {end}) are no longer on the broker "
                                   f"(its oldest offset is {first})")
        consumer.assign([tp])
        consumer.seek(tp, start)
        yield from _poll_range(consumer, tp, start, end, batch, stall_timeout_s)
    finally:
        consumer.close()


def _poll_range(consumer: KafkaConsumer, tp: TopicPartition, start: int, end: int, batch: int,
                stall_timeout_s: float) -> Iterator[list[KafkaMessage]]:
    position, chunk = start, []
    last_progress = time.monotonic()
    while position < end:
        try:
            records = consumer.poll(timeout_ms=500).get(tp, [])
        except KafkaError as error:
            raise RangeUnavailable(f"{tp.topic}[{tp.partition}] read failed at offset {position}: {error}") from None
        if records:
            last_progress = time.monotonic()
        else:
            high = consumer.highwater(tp)  # from the fetch response: the true end of the partition
            if high is not None and high < end and position >= high:
                raise RangeUnavailable(f"{tp.topic}[{tp.partition}] ends at offset {high}: offsets [{start}, {end}) "
                                       f"are not all on the broker")
            if time.monotonic() - last_progress > stall_timeout_s:
                raise RangeUnavailable(f"{tp.topic}[{tp.partition}] read stalled at offset {position} of "
                                       f"[{start}, {end}) for {stall_timeout_s:.0f}s")
        for record in records:
            if record.offset < position:
                continue
            if record.offset >= end:
                position = end
                break
            chunk.append(_message(tp.partition, record))
            position = record.offset + 1
            if len(chunk) >= batch:
                yield chunk
                chunk = []
                # The caller may have held this generator for a long time (a slow writer downstream): the time
                # it spent there is not the broker's. Counting it made a busy run give up on a healthy broker.
                last_progress = time.monotonic()
    if chunk:
        yield chunk


def _message(partition: int, record) -> KafkaMessage:
    return KafkaMessage(partition, record.offset, record.key, record.value or b"",
                        {k: (v or b"") for k, v in (record.headers or [])}, record.timestamp)


class PartitionReader:
    """A long-lived reader of one partition from a given offset (assign()+seek(), no consumer group): what an
    ingestion lease reads its micro-batches with, one consumer for the whole lease instead of one per range.

    `read(max_messages, wait_s)` returns the next contiguous messages (at most `max_messages`), waiting up to
    `wait_s` for the first one; [] when none arrived. Raises RangeUnavailable when the position is no longer on
    the broker (offsets went backwards, or retention passed it) and KafkaUnavailable when the broker cannot be
    reached.
    """

    def __init__(self, bootstrap: str, topic: str, partition: int, start: int, timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_poll_records: int = 5000):
        if start < 0:
            raise ValueError(f"bad start offset {start}")
        self.topic, self.partition, self.position = topic, partition, start
        self._tp = TopicPartition(topic, partition)
        self._buffer: list[KafkaMessage] = []
        self._consumer = _consumer(bootstrap, timeout_s, "payment-platform-lease", auto_offset_reset="none",
                                   max_poll_records=max_poll_records)
        try:
            try:
                first = self._consumer.beginning_offsets([self._tp], timeout_ms=_ms(timeout_s))[self._tp]
            except KafkaError as error:
                raise KafkaUnavailable(f"could not read offsets of {topic}[{partition}] on {bootstrap}: "
                                       f"{error}") from None
            if start < first:
                raise RangeUnavailable(f"{topic}[{partition}] offset {start} is no longer on the broker (its oldest "
                                       f"offset is {first})")
            self._consumer.assign([self._tp])
            self._consumer.seek(self._tp, start)
        except BaseException:
            self._consumer.close()
            raise

    def highwater(self) -> int | None:
        """The partition's end offset as the last fetch saw it (None before the first fetch)."""
        return self._consumer.highwater(self._tp)

    def read(self, max_messages: int, wait_s: float) -> list[KafkaMessage]:
        deadline = time.monotonic() + wait_s
        while not self._buffer:
            remaining = deadline - time.monotonic()
            try:
                records = self._consumer.poll(timeout_ms=max(0, int(remaining * 1000)),
                                              max_records=max_messages).get(self._tp, [])
            except KafkaError as error:
                raise RangeUnavailable(f"{self.topic}[{self.partition}] read failed at offset {self.position}: "
                                       f"{error}") from None
            self._buffer = [_message(self.partition, r) for r in records if r.offset >= self.position]
            if not self._buffer:
                high = self.highwater()
                if high is not None and high < self.position:
                    raise RangeUnavailable(f"{self.topic}[{self.partition}] ends at offset {high}, before the next "
                                           f"offset to read {self.position}: offsets went backwards")
                if remaining <= 0:
                    return []
        taken, self._buffer = self._buffer[:max_messages], self._buffer[max_messages:]
        self.position = taken[-1].offset + 1
        return taken

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> "PartitionReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HeldMessages:
    """Messages a lease has just read, served the way `KafkaClient.read_range` serves the broker's: the range checks
    of the batches a lease landed parse them from memory instead of fetching them again (a Kafka log is immutable:
    the broker would return the same bytes). A range not held whole and contiguous (an offset missing: compaction,
    a transaction marker) is read from the broker through `fallback`."""

    def __init__(self, fallback: "KafkaClient", topic: str):
        self.fallback, self.topic = fallback, topic
        self._held: dict[tuple[str, int, int, int], list[KafkaMessage]] = {}
        self.served_from_memory = self.read_from_broker = 0  # ranges, for the checks' metadata

    def hold(self, topic: str, partition: int, start: int, end: int, messages: list[KafkaMessage]) -> None:
        if len(messages) == end - start and all(m.offset == start + i for i, m in enumerate(messages)):
            self._held[(topic, partition, start, end)] = messages

    def read_range(self, partition: int, start: int, end: int, batch: int = 2000, stall_timeout_s: float = 15.0,
                   topic: str | None = None) -> Iterator[list[KafkaMessage]]:
        held = self._held.get((topic or self.topic, partition, start, end))
        if held is None:
            self.read_from_broker += 1
            yield from self.fallback.read_range(partition, start, end, batch, stall_timeout_s, topic)
            return
        self.served_from_memory += 1
        for i in range(0, len(held), batch):
            yield held[i:i + batch]


@dataclass
class PublishResult:
    """What the broker acknowledged: counts and, per partition, the offsets written [first, end)."""

    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)
    seconds: float = 0.0
    first_error: str | None = None

    @property
    def rate(self) -> float:
        return self.acknowledged / self.seconds if self.seconds > 0 else 0.0

    def counts_by_partition(self) -> dict[int, int]:
        return {p: end - first for p, (first, end) in sorted(self.offsets.items())}


class Publisher:
    """Sends messages with acks='all' and counts what the broker acknowledged.

    Use as a context manager, `send()` each message, then `flush()`; or `publish(messages)` for a batch.
    Connecting is retried `connect_attempts` times; each record gets `delivery_timeout_s` to be
    acknowledged. Anything not acknowledged is reported as failed, never as sent.
    """

    def __init__(self, bootstrap: str, topic: str, *, connect_attempts: int = 3, connect_timeout_s: float = 3.0,
                 delivery_timeout_s: float = 15.0, linger_ms: int = 5, batch_size: int = 256 * 1024,
                 compression_type: str | None = None):
        self.bootstrap, self.topic = bootstrap, topic
        self.delivery_timeout_s = delivery_timeout_s
        self.result = PublishResult()
        self._lock = threading.Lock()
        self._started: float | None = None  # set at the first send: the rate is the publishing rate
        self._producer = self._connect(connect_attempts, connect_timeout_s, delivery_timeout_s, linger_ms,
                                       batch_size, compression_type)

    def _connect(self, attempts: int, timeout_s: float, delivery_timeout_s: float, linger_ms: int,
                 batch_size: int, compression_type: str | None) -> KafkaProducer:
        last_error: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                return KafkaProducer(
                    bootstrap_servers=self.bootstrap, client_id="payment-platform-publisher", acks="all",
                    linger_ms=linger_ms, batch_size=batch_size, compression_type=compression_type,
                    bootstrap_timeout_ms=_ms(timeout_s), max_block_ms=_ms(max(timeout_s, delivery_timeout_s)),
                    request_timeout_ms=_ms(min(delivery_timeout_s, 10.0)),
                    delivery_timeout_ms=_ms(delivery_timeout_s) + _ms(linger_ms / 1000),
                    retries=5, retry_backoff_ms=200, reconnect_backoff_max_ms=1000)
            except KafkaError as error:
                last_error = error
                log.warning("Kafka at %s unreachable (attempt %d of %d): %s", self.bootstrap, attempt, attempts, error)
                if attempt < attempts:
                    time.sleep(min(2.0, 0.5 * attempt))
        raise PublishError(f"Kafka at {self.bootstrap} unreachable after {attempts} attempts ({last_error}); "
                           f"0 payments acknowledged", acknowledged=0, failed=0)

    def _on_ack(self, metadata) -> None:
        # Usually on the producer's I/O thread, but on the sending thread when the record was acknowledged
        # before its callback was registered: the lock keeps the count exact either way.
        result = self.result
        partition, offset = metadata.partition, metadata.offset
        with self._lock:
            result.acknowledged += 1
            span = result.offsets.get(partition)
            if span is None:
                result.offsets[partition] = (offset, offset + 1)
            elif offset >= span[1]:
                result.offsets[partition] = (span[0], offset + 1)
            elif offset < span[0]:
                result.offsets[partition] = (offset, span[1])

    def _on_error(self, error: Exception) -> None:
        with self._lock:
            self.result.failed += 1
            if self.result.first_error is None:
                self.result.first_error = f"{type(error).__name__}: {error}"

    def send(self, message: OutgoingMessage) -> None:
        if self._started is None:
            self._started = time.perf_counter()
        headers = list(message.headers.items()) if message.headers else None
        try:
            future = self._producer.send(self.topic, value=message.value, key=message.key, headers=headers)
        except KafkaError as error:
            self._on_error(error)
            self.result.sent += 1
            raise self._error(f"send failed: {error}") from None
        self.result.sent += 1
        register = getattr(future, "_add_cb_eb", None)  # kafka-python's one-lock fast path, when present
        if register is not None:
            register(self._on_ack, self._on_error)
        else:
            future.add_callback(self._on_ack)
            future.add_errback(self._on_error)

    def flush(self, timeout_s: float | None = None) -> PublishResult:
        """Waits until every sent message is acknowledged or failed; raises PublishError if any failed."""
        timeout_s = self.delivery_timeout_s + 5.0 if timeout_s is None else timeout_s
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaError as error:
            raise self._error(f"flush did not complete in {timeout_s:.0f}s: {error}") from None
        self.result.seconds = time.perf_counter() - self._started if self._started is not None else 0.0
        if self.result.failed:
            raise self._error(self.result.first_error or "delivery failed")
        return self.result

    def _error(self, why: str) -> PublishError:
        r = self.result
        pending = r.sent - r.acknowledged - r.failed
        return PublishError(f"publishing to {self.topic} on {self.bootstrap} failed: {why}; {r.acknowledged} of "
                            f"{r.sent} payments acknowledged ({r.failed} failed, {pending} unconfirmed)",
                            acknowledged=r.acknowledged, failed=r.failed + pending)

    def publish(self, messages: Iterable[OutgoingMessage]) -> PublishResult:
        for message in messages:
            self.send(message)
        return self.flush()

    def close(self, timeout_s: float = 5.0) -> None:
        self._producer.close(timeout=timeout_s)

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
