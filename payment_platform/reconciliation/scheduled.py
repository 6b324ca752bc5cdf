"""Store reconciliation under a consistent cut: the incremental one of the schedule and the full one on demand.

`take_cut` reads the ingestion progress once, when a check starts (`cut.Cut`). `incremental_reconciliation` compares,
below that cut, what landed since the last proven cut plus this run's slice of the id-segment rotation (and the
segments that failed before); `full_reconciliation` compares every payment below the cut. Each records its cut in
the ledger's `reconciliation_cuts` table (the last passing one is the next run's starting point). Both return a
`ReconciliationReport` and a metadata dict that names the cut and what was compared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from payment_platform.domain.validation import ValidityWindow
from payment_platform.reconciliation.compare import (
    AllPayments,
    BelowCut,
    IdSegments,
    ReconciliationReport,
    TimeWindow,
    choose_depth,
    reconcile,
)
from payment_platform.reconciliation.cut import SEGMENT_DEPTH, Cut, Increment, Rotation, plan_increment
from payment_platform.reconciliation.evaluate import settled

INCREMENTAL, FULL, RECENT_DAYS = "incremental", "full", "recent_days"


def take_cut(postgres_reader) -> Cut:
    """The cut of a check starting now: the recorded progress of every partition."""
    return Cut.of(postgres_reader.progress())


@dataclass
class CutReconciliation:
    kind: str
    cut: Cut
    report: ReconciliationReport
    metadata: dict = field(default_factory=dict)
    increment: Increment | None = None


def _failing_segments(report: ReconciliationReport) -> list[str]:
    return sorted({pid[:SEGMENT_DEPTH] for pid in report.offending_ids})


def incremental_reconciliation(hbase_reader, postgres_reader, rotation: Rotation, settle_s: float = 0.0,
                               cut: Cut | None = None, remember: bool = True) -> CutReconciliation:
    """What landed since the last proven cut, in full, plus the rotation's slice of older payments, below `cut`."""
    cut = cut or take_cut(postgres_reader)
    stored_since, next_segment, failing = postgres_reader.reconciliation_memory()
    since = Cut.from_json(stored_since) if stored_since else None
    increment = plan_increment(cut, since, next_segment, failing, rotation)
    if since is None:  # nothing proven yet: every payment below the cut is new
        landed, scope = frozenset(), BelowCut(AllPayments(), cut)
        depth = choose_depth(postgres_reader.count(), 4096)
    else:
        landed = frozenset(postgres_reader.ids_landed(increment.landed))
        scope = BelowCut(IdSegments(increment.segments, landed, increment.describe()), cut)
        # segments of the rotation hold about 1/256 of the ledger each; narrowing goes one level deeper
        depth = max(SEGMENT_DEPTH + 1, choose_depth(len(landed), 4096))
    report = settled(lambda: reconcile(hbase_reader, postgres_reader, scope, depth=depth), settle_s)
    failing_now = _failing_segments(report)
    if remember:
        postgres_reader.record_cut(INCREMENTAL, cut.as_json(), report.consistent, increment.next_segment,
                                   failing_now, report.describe())
    metadata = {**cut.metadata(), "mode": INCREMENTAL,
                "since_cut_taken_at": since.taken_at if since else "",
                "landed_since_last_proven_cut": len(landed) if since else report.rows["postgres"],
                "first_pass_all_payments": since is None,
                "segments_rotated": len(increment.rotated), "segments_compared_ids": len(increment.segments),
                "segments_still_failing": failing_now[:64], "next_segment": increment.next_segment,
                "guarantee": rotation.describe(), "guarantee_hours": rotation.guarantee_hours}
    return CutReconciliation(INCREMENTAL, cut, report, metadata, increment)


def full_reconciliation(hbase_reader, postgres_reader, target_rows_per_segment: int = 4096, settle_s: float = 0.0,
                        cut: Cut | None = None, remember: bool = True) -> CutReconciliation:
    """Every payment below the cut (on demand: its cost grows with the whole history)."""
    cut = cut or take_cut(postgres_reader)
    depth = choose_depth(postgres_reader.count(), target_rows_per_segment)
    report = settled(lambda: reconcile(hbase_reader, postgres_reader, BelowCut(AllPayments(), cut), depth=depth),
                     settle_s)
    if remember:
        # a full pass that passed proves the cut; the rotation keeps its place (next_segment of the latest
        # incremental run is read from incremental rows only)
        postgres_reader.record_cut(FULL, cut.as_json(), report.consistent, 0, _failing_segments(report),
                                   report.describe())
    return CutReconciliation(FULL, cut, report, {**cut.metadata(), "mode": FULL})


def hour_slices(days: list[TimeWindow]) -> list[TimeWindow]:
    """The days cut into hours, newest first."""
    return [TimeWindow(day.start + timedelta(hours=h), day.start + timedelta(hours=h + 1))
            for day in days for h in reversed(range(int((day.end - day.start) / timedelta(hours=1))))]


@dataclass
class RecentSlices:
    """Which hours of the recent days one run of `recent_days_consistency` compares: its slice of a rotation over
    all the hours, so every hour is compared again within the rotation's full pass, and the newest hour that holds
    payments (where a live flow lands). Of the newest hour, only what was created since `since` (the last passing
    run's cut, less a margin) when given: at a high rate an hour is millions of payments, and what landed since
    the last run's cut is compared in full by the store checks' incremental pass anyway."""

    rotation: Rotation
    next_slice: int = 0
    newest: datetime | None = None  # the latest created_at in the ledger (inside the valid window)
    since: datetime | None = None
    chosen: list[TimeWindow] = field(default_factory=list)
    total: int = 0

    def __call__(self, days: list[TimeWindow]) -> list[TimeWindow]:
        slices = hour_slices(days)
        self.total = len(slices)
        per_run = math.ceil(len(slices) / self.rotation.runs_per_pass)
        start = self.next_slice % len(slices)
        picked = {slices[(start + i) % len(slices)] for i in range(min(per_run, len(slices)))}
        self.next_slice = (start + len(picked)) % len(slices)
        for w in slices:
            if self.newest is not None and w.start <= self.newest < w.end and w not in picked:
                picked.add(TimeWindow(self.since, w.end) if self.since and w.start < self.since < w.end else w)
        self.chosen = sorted(picked, key=lambda w: w.start, reverse=True)
        return self.chosen

    def metadata(self) -> dict:
        return {"hours_compared": len(self.chosen), "hours_in_window": self.total, "next_hour_slice": self.next_slice,
                "newest_hour_from": self.since.isoformat() if self.since else "",
                "guarantee": self.rotation.describe().replace("id segments", "hours of the recent days"),
                "guarantee_hours": self.rotation.guarantee_hours}


# A payment created before the last run's cut can land after it (in flight, under a backlog): the newest hour is
# compared from this much before that cut. Later landings are in the store checks' incremental pass regardless.
NEWEST_HOUR_MARGIN = timedelta(minutes=10)


def recent_days_reconciliation(hbase_reader, postgres_reader, rotation: Rotation, window: ValidityWindow, compare,
                               remember: bool = True):
    """`compare(cut, select)` (evaluate.window_consistency with its settings) under a cut taken now, on this run's
    hours of the recent days; the rotation's place is kept in `reconciliation_cuts` (kind recent_days)."""
    cut = take_cut(postgres_reader)
    newest = postgres_reader.latest_created_at(window.earliest_created_at, window.latest_created_at())
    last = postgres_reader.last_cut(RECENT_DAYS)
    since = None
    if last is not None and last[1] and last[0].get("taken_at"):
        since = datetime.fromisoformat(last[0]["taken_at"]) - NEWEST_HOUR_MARGIN
    select = RecentSlices(rotation, postgres_reader.rotation_position(RECENT_DAYS), newest, since)
    verdict = compare(cut, select)
    verdict.metadata.update(select.metadata())
    if remember:
        postgres_reader.record_cut(RECENT_DAYS, cut.as_json(), verdict.passed, select.next_slice, [],
                                   verdict.description)
    return verdict
