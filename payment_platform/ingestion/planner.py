"""Micro-batch planning for sensor-driven ingestion: pure logic, no I/O, no Dagster.

The sensor reads only offsets (the topic's end offsets and the progress recorded in Postgres) and asks
`plan()` what to do. A plan is a list of offset ranges to request runs for, a list of progress resets
(offsets that went backwards) and the next cursor. The cursor is plain JSON so the sensor can keep it
in Dagster.

Rules (each one is tested):
- Ingestion runs are leases (ingestion/lease.py): a run ingests one partition continuously for `lease_seconds`.
  A partition with messages waiting and no lease gets one at once (no batch to fill first: the lease forms its own
  micro-batches); at most `max_concurrent_ranges` partitions are leased at a time, the longest-waiting first.
- A lease whose run has been going for `lease_seconds - handover_seconds` gets its successor requested, so the
  successor's launch (seconds) overlaps the end of the lease: it waits for the lease and carries on at once. No
  successor is requested while another partition with messages waits for a slot (leases then rotate).
- A lease is over when its run finished. A lease whose run failed is followed by a new one (from the recorded
  progress, so nothing is skipped) after a pause that grows with the failures in a row of that partition
  (`failure_pause`); the streak is reported in the notes and on the topic's lag observation. A requested run that
  never appeared within `missing_run_seconds` is dropped and requested again.
- An end offset below the recorded progress or below the last end offset seen (memory broker restarted,
  topic recreated) is reported as a reset: progress goes back to the partition's first offset and
  ingestion carries on from the new data (writes are idempotent by payment_id, so re-reading is safe).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Mapping

CURSOR_VERSION = 2  # 1: one run per range (in_flight ranges); 2: leases


class PlanError(ValueError):
    """A setting or cursor the planner cannot work with; names what is wrong."""


@dataclass(frozen=True)
class PlannerSettings:
    """How the sensor keeps partitions leased."""

    min_batch_size: int = 500  # a lease closes a micro-batch once this many messages wait ...
    max_batch_size: int = 20_000  # ... never holds more than this many ...
    max_wait_seconds: float = 0.5  # ... and makes the first message of a batch wait at most this long
    max_concurrent_ranges: int = 3  # partitions leased at once
    missing_run_seconds: float = 120.0  # a requested run that never showed up is requested again
    lease_seconds: float = 600.0  # how long one run ingests its partition
    handover_seconds: float = 30.0  # the successor is requested this long before the lease ends

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
        if self.lease_seconds <= 0:
            raise PlanError(f"lease_seconds: must be > 0, got {self.lease_seconds}")
        if not 0 <= self.handover_seconds < self.lease_seconds:
            raise PlanError(f"handover_seconds: must be >= 0 and below lease_seconds ({self.lease_seconds:g}), got "
                            f"{self.handover_seconds}")


class RunState(str, Enum):
    """What the sensor found in Dagster for the run of one lease."""

    MISSING = "missing"  # no run with this run key (yet)
    ACTIVE = "active"  # queued or running
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed or canceled


@dataclass(frozen=True)
class RunInfo:
    state: RunState
    started_at: float | None = None  # when the run started (None: not started yet)
    error: str | None = None  # why it failed, when it did


def lease_run_key(topic: str, partition: int, now: float, epoch: int = 0) -> str:
    """A lease's run key: unique in time (a lost cursor can never make the sensor ask for a used key again)."""
    key = f"ingest:{topic}:{partition}:lease:{int(now * 1000)}"
    return f"{key}:reset{epoch}" if epoch else key


@dataclass(frozen=True)
class PlannedLease:
    """A lease of one partition that a run is requested for."""

    topic: str
    partition: int
    start_offset: int  # the recorded progress when requested (the run reads it again under the lease)
    run_key: str
    successor: bool = False  # requested to take over from a running lease


@dataclass(frozen=True)
class Lease:
    run_key: str
    requested_at: float


@dataclass(frozen=True)
class FailureStreak:
    """Leases of one partition that failed in a row, at which progress, and the last error."""

    count: int
    offset: int
    last_at: float
    error: str = ""


def failure_pause(count: int) -> float:
    """How long the sensor waits before the next lease after `count` failed leases in a row."""
    return 0.0 if count <= 1 else min(60.0, 5.0 * 2 ** (count - 2))


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
    leases: dict[int, list[Lease]] = field(default_factory=dict)  # requested, not known to be over (oldest first)
    failures: dict[int, FailureStreak] = field(default_factory=dict)
    resets: int = 0  # progress resets reported so far (offsets going backwards)
    lag_observed: dict[str, float] = field(default_factory=dict)  # last lag observation emitted (+ "at")

    def to_json(self) -> str:
        return json.dumps({
            "version": CURSOR_VERSION,
            "topic": self.topic,
            "topic_id": self.topic_id,
            "end_offsets": {str(p): o for p, o in sorted(self.end_offsets.items())},
            "leases": {str(p): [asdict(lease) for lease in leases] for p, leases in sorted(self.leases.items())},
            "failures": {str(p): asdict(f) for p, f in sorted(self.failures.items())},
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
                leases={int(p): [Lease(str(x["run_key"]), float(x["requested_at"])) for x in leases]
                        for p, leases in raw.get("leases", {}).items()},
                failures={int(p): FailureStreak(int(f["count"]), int(f["offset"]), float(f["last_at"]),
                                                str(f.get("error", ""))) for p, f in raw.get("failures", {}).items()},
                resets=int(raw.get("resets", 0)),
                lag_observed={str(k): float(v) for k, v in raw.get("lag_observed", {}).items()},
            )
        except PlanError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise PlanError(f"cursor: not a valid ingestion cursor ({error}): {text[:200]!r}") from None

    def lease_keys(self) -> list[str]:
        return [lease.run_key for _, leases in sorted(self.leases.items()) for lease in leases]


@dataclass
class Plan:
    leases: list[PlannedLease]  # run requests to make now
    resets: list[ProgressReset]  # progress resets to record before anything else
    cursor: CursorState
    lag: Lag
    notes: list[str]  # why things happened (or did not): for the tick's log and SkipReason

    def summary(self) -> str:
        if self.leases:
            return "; ".join(f"requested {'successor ' if r.successor else ''}lease {r.run_key} (from offset "
                             f"{r.start_offset})" for r in self.leases)
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
                recreated and (partition in progress or partition in cursor.leases)):
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
        """Where the partition's ingestion carries on: recorded progress, else its first available offset."""
        return self.progress.get(partition, self.first_offsets.get(partition, 0))


def plan(
    *,
    topic: str,
    end_offsets: Mapping[int, int],
    progress: Mapping[int, int],
    cursor: CursorState,
    run_infos: Mapping[str, RunInfo],
    now: float,
    settings: PlannerSettings = PlannerSettings(),
    first_offsets: Mapping[int, int] | None = None,
    topic_id: str | None = None,
) -> Plan:
    """Decide which leases to request, which resets to record, and the next cursor.

    `end_offsets` and `progress` are partition -> offset (progress: next offset to ingest; a missing
    partition starts at `first_offsets` or 0). `topic_id` is the broker's id of the topic if known (a new id
    means the topic was recreated: every partition starts again). `run_infos` maps the run key of each lease in
    the cursor (`cursor.lease_keys()`) to what Dagster says about its run; a key that is absent is MISSING.
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
    running = _leases_still_on(tick, cursor, next_cursor, run_infos, reset_partitions)
    requests = _new_leases(tick, next_cursor, running, reset_partitions)

    lag = lag_of(end_offsets, tick.progress, tick.first_offsets)
    if not requests and not resets:
        tick.notes.append(_idle_note(tick, next_cursor, lag))
    return Plan(leases=requests, resets=resets, cursor=next_cursor, lag=lag, notes=tick.notes)


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


def _leases_still_on(tick: _Tick, cursor: CursorState, next_cursor: CursorState, run_infos: Mapping[str, RunInfo],
                     reset_partitions: set[int]) -> dict[int, list[tuple[Lease, RunInfo]]]:
    """Phase 2: the leases of the cursor that are still on (queued, running, or requested recently) go into
    `next_cursor`; finished ones are dropped, a failed one adding to its partition's failure streak."""
    running: dict[int, list[tuple[Lease, RunInfo]]] = {}
    next_cursor.failures = {p: f for p, f in cursor.failures.items() if p in tick.end_offsets}
    for partition, leases in sorted(cursor.leases.items()):
        for lease in leases:
            info = run_infos.get(lease.run_key, RunInfo(RunState.MISSING))
            if info.state == RunState.ACTIVE or (
                    info.state == RunState.MISSING and tick.now - lease.requested_at < tick.settings.missing_run_seconds):
                running.setdefault(partition, []).append((lease, info))
                continue
            if info.state == RunState.SUCCEEDED:
                next_cursor.failures.pop(partition, None)
            elif info.state == RunState.FAILED:
                offset = tick.next_offset(partition)
                streak = next_cursor.failures.get(partition)
                count = streak.count + 1 if streak and streak.offset == offset else 1
                next_cursor.failures[partition] = FailureStreak(count, offset, tick.now, (info.error or "")[:500])
                tick.notes.append(f"lease {lease.run_key} of {tick.topic}[{partition}] failed ({count} in a row at "
                                  f"offset {offset}): {info.error or 'no error recorded'}")
            else:
                tick.notes.append(f"lease {lease.run_key} never started within "
                                  f"{tick.settings.missing_run_seconds:g}s: requesting another")
    for partition, leases in running.items():
        if partition in reset_partitions or partition not in tick.end_offsets:
            tick.notes.append(f"leases of {tick.topic}[{partition}] left to end by themselves (partition reset or "
                              f"gone): the next one starts from the new progress")
        next_cursor.leases[partition] = [lease for lease, _ in leases]
    return running


def _new_leases(tick: _Tick, next_cursor: CursorState, running: dict[int, list[tuple[Lease, RunInfo]]],
                reset_partitions: set[int]) -> list[PlannedLease]:
    """Phase 3: a lease for each partition with messages waiting and none on (longest failure pause honoured),
    up to the limit; then successors for leases about to end."""
    settings, now = tick.settings, tick.now
    requests: list[PlannedLease] = []
    slots = settings.max_concurrent_ranges - len(running)
    waiting = []
    for partition, end in sorted(tick.end_offsets.items()):
        start = tick.next_offset(partition)
        if partition in reset_partitions or partition in running or end <= start:
            continue
        streak = next_cursor.failures.get(partition)
        pause = failure_pause(streak.count) if streak else 0.0
        if streak and now - streak.last_at < pause:
            tick.notes.append(f"{tick.topic}[{partition}]: next lease in {pause - (now - streak.last_at):.0f}s "
                              f"({streak.count} failed in a row at offset {streak.offset})")
            continue
        waiting.append((-(end - start), partition, start))
    for _, partition, start in sorted(waiting):
        if slots <= 0:
            tick.notes.append(f"{tick.topic}[{partition}] waits: {settings.max_concurrent_ranges} partitions leased")
            continue
        requests.append(_request(tick, next_cursor, partition, start, successor=False))
        slots -= 1
    if len(requests) < len(waiting):
        return requests  # partitions wait for a slot: expiring leases end and free theirs (no successors)
    for partition, leases in sorted(running.items()):
        if len(leases) != 1 or partition in reset_partitions or partition not in tick.end_offsets:
            continue
        lease, info = leases[0]
        if info.started_at is not None and now - info.started_at >= settings.lease_seconds - settings.handover_seconds:
            requests.append(_request(tick, next_cursor, partition, tick.next_offset(partition), successor=True))
    return requests


def _request(tick: _Tick, next_cursor: CursorState, partition: int, start: int, successor: bool) -> PlannedLease:
    planned = PlannedLease(tick.topic, partition, start, lease_run_key(tick.topic, partition, tick.now,
                                                                       next_cursor.resets), successor)
    next_cursor.leases.setdefault(partition, []).append(Lease(planned.run_key, tick.now))
    return planned


def _idle_note(tick: _Tick, next_cursor: CursorState, lag: Lag) -> str:
    """Why a tick that requests nothing and resets nothing did so."""
    if lag.lag == 0:
        return f"no new messages in {tick.topic} (end offsets sum {lag.end_offset_sum})"
    leased = sorted(next_cursor.leases)
    return f"{lag.lag} message(s) waiting; partitions {leased} leased, ingesting" if leased else \
        f"{lag.lag} message(s) waiting"
