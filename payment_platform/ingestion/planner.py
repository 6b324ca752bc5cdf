"""Micro-batch planning for sensor-driven ingestion: pure logic, no I/O, no Dagster.

The sensor reads only offsets (the topic's end offsets and the progress recorded in Postgres) and asks
`plan()` what to do. A plan is a list of offset ranges to request runs for, a list of progress resets
(offsets that went backwards) and the next cursor. The cursor is plain JSON so the sensor can keep it
in Dagster.

Rules (each one is tested):
- One range per partition in flight at a time, so recorded progress stays contiguous; at most
  `max_concurrent_ranges` ranges in flight across partitions.
- A range starts at the recorded progress (next offset to ingest) and holds at most `max_batch_size`
  messages. It is planned at once when `min_batch_size` messages wait, or with whatever waits (>= 1)
  once the oldest unplanned message has waited `max_wait_seconds` (measured from the tick that first
  saw it: payloads, and so their timestamps, are never read).
- A range is done when recorded progress reaches its end. If its runs failed for good (Dagster's run
  retries included), the same range is requested again under a new run key (`...:retry{n}`): a failed
  range is never skipped. A run that never appeared within `missing_run_seconds` is requested again too.
- An end offset below the recorded progress or below the last end offset seen (memory broker restarted,
  topic recreated) is reported as a reset: progress goes back to the partition's first offset and
  ingestion carries on from the new data (writes are idempotent by payment_id, so re-reading is safe).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Mapping

CURSOR_VERSION = 1


class PlanError(ValueError):
    """A setting or cursor the planner cannot work with; names what is wrong."""


@dataclass(frozen=True)
class PlannerSettings:
    """How the sensor sizes micro-batches. A run costs seconds to launch, so batches amortise it."""

    min_batch_size: int = 500  # plan at once when this many messages wait in a partition
    max_batch_size: int = 20_000  # never more than this many messages in one range
    max_wait_seconds: float = 2.0  # a smaller batch (>= 1 message) waits at most this long
    max_concurrent_ranges: int = 3  # ranges in flight across all partitions
    missing_run_seconds: float = 300.0  # a requested run that never showed up is requested again

    def __post_init__(self) -> None:
        if self.min_batch_size < 1:
            raise PlanError(f"min_batch_size: must be >= 1, got {self.min_batch_size}")
        if self.max_batch_size < self.min_batch_size:
            raise PlanError(
                f"max_batch_size: must be >= min_batch_size ({self.min_batch_size}), got {self.max_batch_size}")
        if self.max_wait_seconds < 0:
            raise PlanError(f"max_wait_seconds: must be >= 0, got {self.max_wait_seconds}")
        if self.max_concurrent_ranges < 1:
            raise PlanError(f"max_concurrent_ranges: must be >= 1, got {self.max_concurrent_ranges}")
        if self.missing_run_seconds <= 0:
            raise PlanError(f"missing_run_seconds: must be > 0, got {self.missing_run_seconds}")


class RunState(str, Enum):
    """What the sensor found in Dagster for the run(s) of one in-flight range attempt."""

    MISSING = "missing"  # no run with this run key (yet)
    ACTIVE = "active"  # queued, running, or failed with a Dagster run retry still to come
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed for good: no retry left


def range_run_key(topic: str, partition: int, start: int, end: int, attempt: int = 0, epoch: int = 0) -> str:
    """Stable run key of a range; a deliberate re-try after a failure gets a suffix.

    After offsets went backwards the same offsets hold new messages, so ranges of a later epoch (one per
    recorded reset) get a `:reset{n}` suffix: Dagster never launches a run key twice.
    """
    key = f"ingest:{topic}:{partition}:{start}-{end}"
    if epoch:
        key += f":reset{epoch}"
    return key if attempt == 0 else f"{key}:retry{attempt}"


@dataclass(frozen=True)
class PlannedRange:
    """A range [start, end) of one partition that a run is requested for."""

    topic: str
    partition: int
    start: int
    end: int
    attempt: int = 0
    epoch: int = 0

    @property
    def run_key(self) -> str:
        return range_run_key(self.topic, self.partition, self.start, self.end, self.attempt, self.epoch)

    @property
    def messages(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class InFlight:
    start: int
    end: int
    attempt: int
    requested_at: float
    epoch: int = 0


@dataclass(frozen=True)
class ProgressReset:
    """Offsets went backwards in a partition: progress must go back to `to_offset`."""

    topic: str
    partition: int
    from_offset: int  # the recorded progress before the reset
    to_offset: int  # the new next offset (the partition's first offset)
    end_offset: int  # the end offset that revealed it
    reason: str


@dataclass(frozen=True)
class Lag:
    """The topic's lag: messages published but not yet ingested (numeric, stable keys for the UI)."""

    lag: int
    end_offset_sum: int
    progress_sum: int
    partitions: int

    def as_metadata(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class CursorState:
    """What the sensor remembers between ticks (serialised as JSON in the Dagster cursor)."""

    topic: str | None = None
    topic_id: str | None = None  # the broker's id of the topic: changes when it is recreated (broker epoch)
    end_offsets: dict[int, int] = field(default_factory=dict)  # last end offsets seen
    in_flight: dict[int, InFlight] = field(default_factory=dict)
    waiting_since: dict[int, float] = field(default_factory=dict)  # first tick that saw unplanned messages
    resets: int = 0  # progress resets reported so far (offsets going backwards)
    lag_observed: dict[str, float] = field(default_factory=dict)  # last lag observation emitted (+ "at")

    def to_json(self) -> str:
        return json.dumps({
            "version": CURSOR_VERSION,
            "topic": self.topic,
            "topic_id": self.topic_id,
            "end_offsets": {str(p): o for p, o in sorted(self.end_offsets.items())},
            "in_flight": {str(p): asdict(r) for p, r in sorted(self.in_flight.items())},
            "waiting_since": {str(p): t for p, t in sorted(self.waiting_since.items())},
            "resets": self.resets,
            "lag_observed": self.lag_observed,
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> "CursorState":
        """Parse a cursor; None or empty is a fresh start. A cursor that does not parse is an error."""
        if not text:
            return cls()
        try:
            raw = json.loads(text)
            if raw.get("version") != CURSOR_VERSION:
                raise PlanError(f"cursor: unsupported version {raw.get('version')!r}")
            return cls(
                topic=raw.get("topic"),
                topic_id=raw.get("topic_id"),
                end_offsets={int(p): int(o) for p, o in raw.get("end_offsets", {}).items()},
                in_flight={int(p): InFlight(int(r["start"]), int(r["end"]), int(r["attempt"]),
                                            float(r["requested_at"]), int(r.get("epoch", 0)))
                           for p, r in raw.get("in_flight", {}).items()},
                waiting_since={int(p): float(t) for p, t in raw.get("waiting_since", {}).items()},
                resets=int(raw.get("resets", 0)),
                lag_observed={str(k): float(v) for k, v in raw.get("lag_observed", {}).items()},
            )
        except PlanError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise PlanError(f"cursor: not a valid ingestion cursor ({error}): {text[:200]!r}") from None

    def in_flight_ranges(self) -> list[PlannedRange]:
        if self.topic is None:
            return []
        return [PlannedRange(self.topic, p, r.start, r.end, r.attempt, r.epoch)
                for p, r in sorted(self.in_flight.items())]


@dataclass
class Plan:
    ranges: list[PlannedRange]  # run requests to make now
    resets: list[ProgressReset]  # progress resets to record before anything else
    cursor: CursorState
    lag: Lag
    notes: list[str]  # why things happened (or did not): for the tick's log and SkipReason

    def summary(self) -> str:
        if self.ranges:
            return "; ".join(f"requested {r.run_key} ({r.messages} messages)" for r in self.ranges)
        return "; ".join(self.notes) or "nothing to do"


def lag_of(end_offsets: Mapping[int, int], progress: Mapping[int, int],
           first_offsets: Mapping[int, int] | None = None) -> Lag:
    first_offsets = first_offsets or {}
    nexts = {p: progress.get(p, first_offsets.get(p, 0)) for p in end_offsets}
    return Lag(
        lag=sum(max(0, end - nexts[p]) for p, end in end_offsets.items()),
        end_offset_sum=sum(end_offsets.values()),
        progress_sum=sum(nexts.values()),
        partitions=len(end_offsets),
    )


def topic_recreated(cursor: CursorState, topic: str, topic_id: str | None) -> bool:
    """The broker reports another id for the same topic: it was deleted and created again (or the memory
    broker restarted), whatever its offsets look like now."""
    return bool(topic_id and cursor.topic == topic and cursor.topic_id and cursor.topic_id != topic_id)


def backwards_partitions(cursor: CursorState, topic: str, end_offsets: Mapping[int, int],
                         progress: Mapping[int, int], topic_id: str | None = None) -> list[int]:
    """Partitions whose offsets went backwards: end offset below the recorded progress or below the last
    end offset seen; or every partition with progress or a range in flight if the topic was recreated."""
    same_topic = cursor.topic == topic
    recreated = topic_recreated(cursor, topic, topic_id)
    found = []
    for partition, end in sorted(end_offsets.items()):
        seen = cursor.end_offsets.get(partition, 0) if same_topic else 0
        if end < progress.get(partition, 0) or end < seen or (
                recreated and (partition in progress or partition in cursor.in_flight)):
            found.append(partition)
    return found


@dataclass
class _Tick:
    """What one planning tick reads (offsets of one topic, the clock, the settings) and the notes it writes."""

    topic: str
    end_offsets: Mapping[int, int]
    progress: dict[int, int]
    first_offsets: dict[int, int]
    now: float
    settings: PlannerSettings
    notes: list[str] = field(default_factory=list)

    def next_offset(self, partition: int) -> int:
        """Where the partition's next range starts: recorded progress, else its first available offset."""
        return self.progress.get(partition, self.first_offsets.get(partition, 0))


def plan(
    *,
    topic: str,
    end_offsets: Mapping[int, int],
    progress: Mapping[int, int],
    cursor: CursorState,
    run_states: Mapping[str, RunState],
    now: float,
    settings: PlannerSettings = PlannerSettings(),
    first_offsets: Mapping[int, int] | None = None,
    topic_id: str | None = None,
) -> Plan:
    """Decide which ranges to request, which resets to record, and the next cursor.

    `end_offsets` and `progress` are partition -> offset (progress: next offset to ingest; a missing
    partition starts at `first_offsets` or 0). `topic_id` is the broker's id of the topic if known (a new id
    means the topic was recreated: every partition starts again). `run_states` maps the run key of each in-flight range (as
    listed by `cursor.in_flight_ranges()`) to what Dagster says about it; a key that is absent is MISSING.
    """
    tick = _Tick(topic, end_offsets, dict(progress), dict(first_offsets or {}), now, settings)
    if cursor.topic is not None and cursor.topic != topic:
        tick.notes.append(f"topic changed from {cursor.topic!r} to {topic!r}: starting a fresh cursor")
        cursor = CursorState()
    next_cursor = CursorState(topic=topic, topic_id=topic_id or cursor.topic_id, end_offsets=dict(end_offsets),
                              resets=cursor.resets, lag_observed=dict(cursor.lag_observed))

    resets, backwards = _progress_resets(tick, cursor, topic_id)
    next_cursor.resets += backwards  # an epoch per backwards move: later run keys never repeat old ones
    reset_partitions = {r.partition for r in resets}
    requests = _in_flight_requests(tick, cursor, next_cursor, run_states, reset_partitions)
    requests += _new_ranges(tick, cursor, next_cursor, reset_partitions)

    lag = lag_of(end_offsets, tick.progress, tick.first_offsets)
    if not requests and not resets:
        tick.notes.append(_idle_note(tick, next_cursor, lag))
    return Plan(ranges=requests, resets=resets, cursor=next_cursor, lag=lag, notes=tick.notes)


def _progress_resets(tick: _Tick, cursor: CursorState, topic_id: str | None) -> tuple[list[ProgressReset], int]:
    """Phase 1: offsets that went backwards are reported and progress goes back to the first offset, with
    nothing planned there this tick (the reset must be recorded before a range can start from the new
    progress). Returns the resets and how many of them are backwards moves."""
    topic, end_offsets, progress = tick.topic, tick.end_offsets, tick.progress
    resets: list[ProgressReset] = []
    recreated = topic_recreated(cursor, topic, topic_id)
    for partition in backwards_partitions(cursor, topic, end_offsets, progress, topic_id):
        end = end_offsets[partition]
        recorded = progress.get(partition, 0)
        seen = cursor.end_offsets.get(partition, 0)
        to_offset = min(tick.first_offsets.get(partition, 0), end)
        why = (f"topic id changed from {cursor.topic_id} to {topic_id}: topic recreated or broker restarted"
               if recreated else "broker restarted or topic recreated")
        reason = (f"offsets of {topic}[{partition}] went backwards: end offset {end}, recorded progress {recorded}, "
                  f"last end offset seen {seen} ({why}); ingesting again from offset {to_offset}")
        resets.append(ProgressReset(topic, partition, recorded, to_offset, end, reason))
        tick.notes.append(reason)
    backwards = len(resets)
    # A partition with no progress whose first available offset is past 0 (retention dropped the start):
    # where ingestion begins is put on record before the first range.
    for partition, end in sorted(end_offsets.items()):
        first = min(tick.first_offsets.get(partition, 0), end)
        if partition not in progress and first > 0 and partition not in {r.partition for r in resets}:
            reason = (f"no progress recorded for {topic}[{partition}] and its first available offset is {first}: "
                      f"ingestion starts there")
            resets.append(ProgressReset(topic, partition, 0, first, end, reason))
            tick.notes.append(reason)
    return resets, backwards


def _in_flight_requests(tick: _Tick, cursor: CursorState, next_cursor: CursorState,
                        run_states: Mapping[str, RunState], reset_partitions: set[int]) -> list[PlannedRange]:
    """Phase 2: each in-flight range is done, still running, or failed for good (then requested again, never
    skipped); the ones still in flight are carried into `next_cursor`."""
    topic, settings, now = tick.topic, tick.settings, tick.now
    requests: list[PlannedRange] = []
    for partition, flight in sorted(cursor.in_flight.items()):
        key = range_run_key(topic, partition, flight.start, flight.end, flight.attempt, flight.epoch)
        if partition in reset_partitions or partition not in tick.end_offsets:
            tick.notes.append(f"dropped in-flight range {key} (partition reset or gone)")
            continue
        state = run_states.get(key, RunState.MISSING)
        recorded = tick.next_offset(partition)
        if recorded >= flight.end:
            continue  # done (the sensor reads run states before progress, so progress is never older)
        if state == RunState.SUCCEEDED:
            # A run succeeded yet progress is short of its end: progress was reset under it. Plan afresh.
            tick.notes.append(f"{key} succeeded but progress is {recorded} < {flight.end}: replanning")
            continue
        if state == RunState.FAILED and recorded != flight.start:
            # Another range moved progress into this one (e.g. runs left from a lost cursor): retrying it would
            # overlap recorded progress and fail forever. Plan afresh from the recorded progress instead.
            tick.notes.append(f"{key} failed and progress is now {recorded}, not its start {flight.start}: "
                              f"replanning from {recorded}")
            continue
        retry = state == RunState.FAILED or (
            state == RunState.MISSING and now - flight.requested_at >= settings.missing_run_seconds)
        if retry:
            again = PlannedRange(topic, partition, flight.start, flight.end, flight.attempt + 1, flight.epoch)
            why = "failed for good" if state == RunState.FAILED else "never started"
            tick.notes.append(f"{key} {why}: requesting the same range again as {again.run_key}")
            requests.append(again)
            next_cursor.in_flight[partition] = InFlight(again.start, again.end, again.attempt, now, again.epoch)
        else:
            next_cursor.in_flight[partition] = flight
    return requests


def _new_ranges(tick: _Tick, cursor: CursorState, next_cursor: CursorState,
                reset_partitions: set[int]) -> list[PlannedRange]:
    """Phase 3: new ranges, oldest wait first, up to the concurrency limit; the waiting clocks of partitions
    still waiting carry over into `next_cursor`."""
    settings, now = tick.settings, tick.now
    waiting = {p: t for p, t in cursor.waiting_since.items() if p in tick.end_offsets and p not in reset_partitions}
    candidates = []
    for partition, end in sorted(tick.end_offsets.items()):
        if partition in reset_partitions:
            continue
        start = tick.next_offset(partition)
        available = end - start
        if available <= 0:
            waiting.pop(partition, None)
            continue
        since = waiting.setdefault(partition, now)
        if partition in next_cursor.in_flight:
            continue
        if available >= settings.min_batch_size or now - since >= settings.max_wait_seconds:
            candidates.append((since, -available, partition, start, end))
    requests: list[PlannedRange] = []
    slots = settings.max_concurrent_ranges - len(next_cursor.in_flight)
    candidates.sort()
    for _since, _, partition, start, end in candidates:
        if slots <= 0:
            tick.notes.append(f"partition {partition} waits: {settings.max_concurrent_ranges} ranges already in flight")
            continue
        stop = min(end, start + settings.max_batch_size)
        planned = PlannedRange(tick.topic, partition, start, stop, epoch=next_cursor.resets)
        requests.append(planned)
        next_cursor.in_flight[partition] = InFlight(start, stop, 0, now, planned.epoch)
        if stop >= end:
            waiting.pop(partition, None)  # everything seen so far is planned
        slots -= 1
    next_cursor.waiting_since = waiting
    return requests


def _idle_note(tick: _Tick, next_cursor: CursorState, lag: Lag) -> str:
    """Why a tick that requests nothing and resets nothing did so."""
    end_offsets, progress = tick.end_offsets, tick.progress
    if lag.lag == 0:
        return f"no new messages in {tick.topic} (end offsets sum {lag.end_offset_sum})"
    if next_cursor.in_flight and len(next_cursor.in_flight) >= sum(1 for p in end_offsets
                                                                   if end_offsets[p] > progress.get(p, 0)):
        return f"{len(next_cursor.in_flight)} range(s) in flight, lag {lag.lag}"
    return (f"{lag.lag} message(s) waiting to fill a batch "
            f"(min {tick.settings.min_batch_size} or {tick.settings.max_wait_seconds:g}s)")
