"""The consistent cut a store check compares under, and the incremental plan of the scheduled reconciliation.

A `Cut` is the recorded ingestion progress of every (topic, partition) read when a check starts: the next offset to
ingest. Progress moves only after a range has settled (each payment in both stores, or in a store's backup, or in
quarantine), so every payment stored from a position below the cut has settled before the check began, and the
check compares only those: what lands while it runs (a position at or past the cut, or of a partition with no
progress yet) is in flight and never a mismatch; a payment missing from a store below the cut always is. Both
stores keep the position: Postgres in `kafka_topic`/`kafka_partition`/`kafka_offset`, HBase in `cf:kafkaPosition`
(`topic:partition:offset`). A row without a position (written by hand, or before positions were kept) is not in
flight: it is always compared.

The incremental reconciliation (`plan_increment`) re-reads, at each scheduled run, what landed since the last proven
cut (the positions between that cut and this one) plus a rotating slice of the payment-id segments of all older
data, and the segments still failing from earlier runs. With S segments, k per run, every segment is compared
again every ceil(S / k) runs: a mismatch anywhere below a cut is reported within that many runs, plus one.

Pure logic, no I/O: `readers` turns a cut into SQL and into a filter of HBase rows.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable, Mapping

SEGMENT_DEPTH = 2  # hex characters of a payment-id segment: 256 segments in the rotation
SEGMENTS = [format(i, "02x") for i in range(16 ** SEGMENT_DEPTH)]


@dataclass(frozen=True)
class Cut:
    """Per (topic, partition): the next offset to ingest, as recorded when the check started."""

    offsets: tuple[tuple[str, int, int], ...]  # (topic, partition, next offset), sorted
    taken_at: str = ""  # ISO 8601 UTC

    @classmethod
    def of(cls, progress: Mapping[tuple[str, int], int], taken_at: datetime | None = None) -> "Cut":
        moment = (taken_at or datetime.now(timezone.utc)).isoformat(timespec="seconds")
        return cls(tuple(sorted((t, int(p), int(o)) for (t, p), o in progress.items())), moment)

    @property
    def by_position(self) -> dict[tuple[str, int], int]:
        return {(t, p): o for t, p, o in self.offsets}

    def below(self, topic: str | None, partition: int | None, offset: int | None) -> bool:
        """Whether a payment stored from this position had settled when the cut was taken (no position: yes)."""
        if topic is None or partition is None or offset is None:
            return True
        return offset < self.by_position.get((topic, int(partition)), 0)

    def below_cell(self, cell: bytes | None) -> bool:
        """`below` for HBase's `cf:kafkaPosition` cell (`topic:partition:offset`; a topic may hold ':')."""
        if not cell:
            return True
        try:
            topic, partition, offset = cell.decode().rsplit(":", 2)
            return self.below(topic, int(partition), int(offset))
        except (ValueError, UnicodeDecodeError):
            return True  # an unreadable position is compared, never hidden as in flight

    def describe(self) -> str:
        if not self.offsets:
            return f"nothing ingested yet (progress read at {self.taken_at})"
        parts = [f"{t}[{p}]<{o}" for t, p, o in self.offsets[:6]]
        more = f" and {len(self.offsets) - 6} more partitions" if len(self.offsets) > 6 else ""
        return f"Kafka positions below the ingestion progress read at {self.taken_at}: {', '.join(parts)}{more}"

    def as_json(self) -> dict:
        return {"taken_at": self.taken_at, "offsets": [list(o) for o in self.offsets]}

    @classmethod
    def from_json(cls, value: Mapping) -> "Cut":
        return cls(tuple(sorted((str(t), int(p), int(o)) for t, p, o in value.get("offsets", []))),
                   str(value.get("taken_at", "")))

    def metadata(self) -> dict:
        """The cut in a check's metadata: stable keys (the UI plots `cut_payments_below`'s sum over time)."""
        return {"cut": self.describe(), "cut_taken_at": self.taken_at,
                "cut_offsets": {f"{t}[{p}]": o for t, p, o in self.offsets},
                "cut_positions_below": sum(o for _, _, o in self.offsets)}


def landed_between(since: Cut | None, cut: Cut) -> list[tuple[str, int, int, int]]:
    """(topic, partition, start, end): the positions that settled after `since` and below `cut` (all of them below
    `cut` when there is no earlier cut). A partition whose progress went backwards (offsets reset) is taken whole."""
    before = since.by_position if since else {}
    spans = []
    for topic, partition, end in cut.offsets:
        start = before.get((topic, partition), 0)
        if start > end:
            start = 0
        if start < end:
            spans.append((topic, partition, start, end))
    return spans


@dataclass(frozen=True)
class Rotation:
    """How many id segments each scheduled run re-reads, and the guarantee that follows."""

    segments_per_run: int
    interval_minutes: float
    total: int = len(SEGMENTS)

    @classmethod
    def for_full_pass(cls, full_pass_hours: float, interval_minutes: float, total: int = len(SEGMENTS)
                      ) -> "Rotation":
        """The fewest segments per run that still read every segment within `full_pass_hours`."""
        runs = max(1, math.floor(full_pass_hours * 60 / interval_minutes))
        return cls(max(1, math.ceil(total / runs)), interval_minutes, total)

    @property
    def runs_per_pass(self) -> int:
        return math.ceil(self.total / self.segments_per_run)

    @property
    def guarantee_hours(self) -> float:
        """A mismatch anywhere below a cut is reported within this: a full pass of the rotation, plus the run that
        was already under way when it appeared (new payments are compared at the next run)."""
        return (self.runs_per_pass + 1) * self.interval_minutes / 60

    def describe(self) -> str:
        return (f"any mismatch is reported within {self.guarantee_hours:g} h ({self.segments_per_run} of "
                f"{self.total} id segments per run every {self.interval_minutes:g} min: every payment re-read "
                f"every {self.runs_per_pass * self.interval_minutes / 60:g} h; new payments at the next run)")


@dataclass(frozen=True)
class Increment:
    """What one scheduled run compares (all below `cut`)."""

    cut: Cut
    since: Cut | None  # the last proven cut: what landed after it is compared in full
    landed: list[tuple[str, int, int, int]]
    segments: tuple[str, ...]  # id segments re-read this run: the rotation's slice plus those still failing
    rotated: tuple[str, ...]  # the rotation's slice alone
    next_segment: int  # where the next run's slice starts

    def describe(self) -> str:
        landed = sum(e - s for _, _, s, e in self.landed)
        return (f"{landed} Kafka positions landed since the last proven cut, and id segments "
                f"{_span(self.segments)} of all older payments")


def _span(segments: Iterable[str]) -> str:
    items = list(segments)
    if not items:
        return "(none)"
    return ", ".join(items) if len(items) <= 4 else f"{items[0]}..{items[-1]} ({len(items)})"


def plan_increment(cut: Cut, since: Cut | None, next_segment: int, failing: Iterable[str],
                   rotation: Rotation) -> Increment:
    """This run's slice of the rotation (from `next_segment`, wrapping), the segments that failed last time (kept
    until they pass, so a red check never turns green by rotating away), and what landed since `since`."""
    start = next_segment % rotation.total
    rotated = tuple(SEGMENTS[(start + i) % rotation.total] for i in range(min(rotation.segments_per_run,
                                                                                rotation.total)))
    segments = tuple(sorted(set(rotated) | {s for s in failing if s in set(SEGMENTS)}))
    return Increment(cut, since, landed_between(since, cut), segments, rotated,
                     (start + len(rotated)) % rotation.total)


@dataclass
class Throttle:
    """Keeps a reader's share of busy time at most `busy_share`: after each batch it sleeps in proportion to the
    time the batch took, so a check spreads its reads and the stores keep serving ingestion in between.

    With `behind` (a probe: has ingestion fallen behind?), it also waits while ingestion catches up, polling every
    `yield_poll_s`, but never more than `max_yield_share` of the time since the first batch: ingestion gets the
    machine back when it needs it, and a check under a load that never lets up still finishes."""

    busy_share: float = 1.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    behind: Callable[[], bool] | None = None
    max_yield_share: float = 0.8
    yield_poll_s: float = 1.0
    slept: float = 0.0  # the proportional pauses
    yielded: float = 0.0  # the waits for ingestion
    _mark: float | None = field(default=None, repr=False)
    _started: float | None = field(default=None, repr=False)

    def __post_init__(self):
        if not 0 < self.busy_share <= 1:
            raise ValueError(f"busy_share must be in (0, 1], got {self.busy_share}")
        if not 0 <= self.max_yield_share < 1:
            raise ValueError(f"max_yield_share must be in [0, 1), got {self.max_yield_share}")

    def tick(self) -> None:
        """Call after each batch of work."""
        now = self.clock()
        if self._started is None:
            self._started = now
        if self._mark is not None and self.busy_share < 1:
            pause = (now - self._mark) * (1 - self.busy_share) / self.busy_share
            self.sleep(pause)
            self.slept += pause
        if self.behind is not None:
            while (self.yielded + self.yield_poll_s <= self.max_yield_share * (self.clock() - self._started
                                                                                + self.yield_poll_s)
                   and self.behind()):
                self.sleep(self.yield_poll_s)
                self.yielded += self.yield_poll_s
        self._mark = self.clock()


@dataclass
class BacklogProbe:
    """Whether ingestion has fallen behind its normal: the backlog (messages published and not yet ingested) against
    what it is while no check runs. `read()` gives (the topic's end offsets summed, the backlog).

    `learn()`, called before the check reads anything, samples the backlog for a few seconds: its median is the
    normal backlog (a lease's batches make it a sawtooth, and at 1,200/s the normal is thousands of messages).
    From then on ingestion is behind while the backlog is above that normal, and above `min_seconds` of what is
    being published (the rate measured from the topic's end offsets over the probe's life) and above `floor`
    messages: a check waits as soon as ingestion drifts from its own normal, not when it is seconds behind (issue
    19; docs/checks.md has the figures). Without a normal (no read succeeded while learning) the answer falls back
    to `max_seconds` of publishing. Read at most every `every_s`; until a rate is known the answer is
    no, and a read that fails counts as no (a check is never held up by its probe)."""

    read: Callable[[], tuple[int, int]]
    max_seconds: float = 5.0
    floor: int = 200
    every_s: float = 1.0
    min_seconds: float = 0.5
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    baseline: int | None = None  # the backlog at the first read
    normal: int | None = None  # the median backlog learnt before the check began
    last: int | None = None
    times_behind: int = 0
    _first: tuple[float, int] | None = field(default=None, repr=False)  # (when, end offsets) of the first read
    _end: int = field(default=0, repr=False)  # the end offsets summed, at the last read
    _read_at: float | None = field(default=None, repr=False)
    _answer: bool = field(default=False, repr=False)

    def _sample(self, now: float) -> int | None:
        try:
            end, backlog = (int(x) for x in self.read())
        except Exception:  # noqa: BLE001 - a probe never fails or holds up the check it serves
            return None
        self.last = backlog
        if self._first is None:
            self._first, self.baseline = (now, end), backlog
        self._end = end
        return backlog

    def learn(self, seconds: float = 4.0, every_s: float = 0.5) -> int | None:
        """Samples the backlog every `every_s` for `seconds`; its median becomes the normal (None: nothing read)."""
        samples, until = [], self.clock() + seconds
        while True:
            backlog = self._sample(self.clock())
            if backlog is not None:
                samples.append(backlog)
            if self.clock() >= until:
                break
            self.sleep(every_s)
        self.normal = statistics.median_low(samples) if samples else None
        return self.normal

    def limit(self, rate: float) -> float:
        """The backlog above which ingestion counts as behind, at `rate` messages published per second."""
        if self.normal is None:
            return max(self.floor, self.max_seconds * rate)
        return max(self.floor, self.min_seconds * rate, self.normal)

    def __call__(self) -> bool:
        now = self.clock()
        if self._read_at is not None and now - self._read_at < self.every_s:
            return self._answer
        self._read_at = now
        learnt_rate = self._first is not None
        backlog = self._sample(now)
        if backlog is None or not learnt_rate:
            self._answer = False
            return False
        rate = max(0.0, self._end - self._first[1]) / max(now - self._first[0], 1e-9)
        self._answer = backlog > self.limit(rate)
        self.times_behind += self._answer
        return self._answer
