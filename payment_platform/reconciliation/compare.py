"""Compare two stores: segment checksums first, then records only for the segments that differ.

`reconcile(left, right, scope)` asks each `PaymentSource` for one summary of the scope (per-segment count
and checksum, per rail/currency count and sum), keeps the segments whose digests differ, fetches just
those segments' records from both sides and names the payment ids that differ. A consistent scope costs
one pass per store and no record ever crosses into memory.
"""
from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Collection, Iterable, Protocol

from payment_platform.reconciliation.cut import Cut
from payment_platform.reconciliation.digest import (
    DEFAULT_SEGMENT_DEPTH,
    PaymentRecord,
    StoreSummary,
)

SAMPLE_SIZE = 20  # offending ids shown in metadata; the count is always complete


@dataclass(frozen=True)
class AllPayments:
    """Every payment in both stores."""

    def describe(self) -> str:
        return "all payments"


@dataclass(frozen=True)
class TimeWindow:
    """Payments created in [start, end) (UTC)."""

    start: datetime
    end: datetime

    def describe(self) -> str:
        return f"created_at in [{self.start.isoformat()}, {self.end.isoformat()})"


@dataclass(frozen=True)
class PaymentIds:
    """An explicit set of payment ids, e.g. those of one ingested Kafka range."""

    ids: frozenset[str]
    label: str = ""

    def describe(self) -> str:
        return self.label or f"{len(self.ids)} payment ids"


@dataclass(frozen=True)
class IdSegments:
    """The payments whose id starts with one of `prefixes` (hex segments of equal length), plus `ids`."""

    prefixes: tuple[str, ...]
    ids: frozenset[str] = frozenset()
    label: str = ""

    def describe(self) -> str:
        return self.label or f"{len(self.prefixes)} id segments and {len(self.ids)} payment ids"


@dataclass(frozen=True)
class BelowCut:
    """Another scope, restricted to the payments stored from a Kafka position below a cut (`cut.Cut`)."""

    inner: "AllPayments | TimeWindow | PaymentIds | IdSegments"
    cut: Cut

    def describe(self) -> str:
        return f"{self.inner.describe()}, below the cut of {self.cut.taken_at}"


Scope = AllPayments | TimeWindow | PaymentIds | IdSegments | BelowCut


class PaymentSource(Protocol):
    """A store seen by reconciliation."""

    name: str

    def summarize(self, scope: Scope, depth: int) -> StoreSummary:
        """One pass over the scope: digests per payment-id segment of `depth` hex chars and totals."""

    def records(self, scope: Scope, segments: Collection[str], depth: int) -> Iterable[PaymentRecord]:
        """The records of the scope whose payment id starts with one of `segments`."""


def choose_depth(expected_rows: int, target_rows_per_segment: int = 4096) -> int:
    """Hex characters of segment prefix so a differing segment holds about target rows (1..8)."""
    depth = 1
    while depth < 8 and expected_rows / (16 ** depth) > target_rows_per_segment:
        depth += 1
    return depth


@dataclass
class TotalDifference:
    rail: str
    currency: str
    counts: tuple[int, int]
    amounts: tuple[Decimal, Decimal]


@dataclass
class ReconciliationReport:
    """What differs between two stores over one scope; `consistent` only when nothing does."""

    left: str
    right: str
    scope: str
    rows: dict[str, int]
    segments_compared: int
    segments_differing: list[str]
    only_in: dict[str, list[str]]  # store -> payment ids present in that store and not in the other
    altered: list[str]  # ids in both stores with different rail, currency or amount
    duplicates: dict[str, list[str]]  # store -> ids seen more than once in that store
    total_differences: list[TotalDifference]
    seconds: float = 0.0
    details: dict[str, dict] = field(default_factory=dict)  # id -> {store: record} for the sample
    summaries: dict[str, StoreSummary] = field(default_factory=dict, repr=False)  # per store, for other checks
    first_pass_mismatches: int | None = None  # set when this is the confirming second pass (evaluate.settled)

    @property
    def offending_ids(self) -> list[str]:
        ids = set(self.altered)
        for values in (*self.only_in.values(), *self.duplicates.values()):
            ids.update(values)
        return sorted(ids)

    @property
    def consistent(self) -> bool:
        return not self.segments_differing and not self.total_differences and not self.offending_ids

    def describe(self) -> str:
        if self.consistent:
            return (f"{self.left} and {self.right} agree on {self.scope}: {self.rows[self.left]} payments, "
                    f"{self.segments_compared} segments")
        parts = [f"{len(ids)} only in {other}" for other, ids in self.only_in.items() if ids]
        if self.altered:
            parts.append(f"{len(self.altered)} altered")
        parts += [f"{len(ids)} duplicated in {store}" for store, ids in self.duplicates.items() if ids]
        if self.total_differences:
            parts.append(f"{len(self.total_differences)} rail/currency totals differ")
        return f"{self.left} and {self.right} differ on {self.scope}: " + ", ".join(parts)

    def as_metadata(self) -> dict:
        """Stable keys (the UI plots the numbers) plus a sample of offending ids and their count."""
        offending = self.offending_ids
        return {
            "scope": self.scope,
            f"{self.left}_rows": self.rows[self.left],
            f"{self.right}_rows": self.rows[self.right],
            "segments_compared": self.segments_compared,
            "segments_differing": len(self.segments_differing),
            f"missing_in_{self.left}": len(self.only_in[self.right]),
            f"missing_in_{self.right}": len(self.only_in[self.left]),
            "altered": len(self.altered),
            "duplicates": sum(len(v) for v in self.duplicates.values()),
            "totals_differing": len(self.total_differences),
            "mismatch_count": len(offending),
            "mismatch_sample": offending[:SAMPLE_SIZE],
            "mismatch_detail": {pid: self.details.get(pid, {}) for pid in offending[:SAMPLE_SIZE]},
            "first_pass_mismatch_count": (len(offending) if self.first_pass_mismatches is None
                                          else self.first_pass_mismatches),
            "totals_difference_sample": [
                {"rail": d.rail, "currency": d.currency, "counts": list(d.counts),
                 "amounts": [str(a) for a in d.amounts]} for d in self.total_differences[:SAMPLE_SIZE]],
            "seconds": round(self.seconds, 3),
        }


def differing_segments(left: StoreSummary, right: StoreSummary) -> list[str]:
    keys = set(left.segments) | set(right.segments)
    return sorted(k for k in keys if left.segments.get(k) != right.segments.get(k))


def compare_totals(left: StoreSummary, right: StoreSummary) -> list[TotalDifference]:
    differences = []
    for key in sorted(set(left.totals) | set(right.totals)):
        a, b = left.totals.get(key), right.totals.get(key)
        counts = (a.count if a else 0, b.count if b else 0)
        amounts = (a.amount if a else Decimal(0), b.amount if b else Decimal(0))
        if counts[0] != counts[1] or amounts[0] != amounts[1]:
            differences.append(TotalDifference(key[0], key[1], counts, amounts))
    return differences


def _index(records: Iterable[PaymentRecord]) -> tuple[dict[str, PaymentRecord], list[str]]:
    by_id: dict[str, PaymentRecord] = {}
    seen = Counter()
    for record in records:
        seen[record.payment_id] += 1
        by_id[record.payment_id] = record
    return by_id, sorted(pid for pid, n in seen.items() if n > 1)


def diff_records(left_name: str, left: Iterable[PaymentRecord], right_name: str,
                 right: Iterable[PaymentRecord]) -> tuple[dict[str, list[str]], list[str], dict[str, list[str]], dict]:
    """Names the ids present on one side only, altered on one side, and duplicated within a side."""
    left_by_id, left_dups = _index(left)
    right_by_id, right_dups = _index(right)
    missing = {left_name: sorted(left_by_id.keys() - right_by_id.keys()),
               right_name: sorted(right_by_id.keys() - left_by_id.keys())}
    altered = sorted(pid for pid in left_by_id.keys() & right_by_id.keys() if left_by_id[pid] != right_by_id[pid])
    details = {}
    for pid in [*missing[left_name][:SAMPLE_SIZE], *missing[right_name][:SAMPLE_SIZE], *altered[:SAMPLE_SIZE],
                *left_dups[:SAMPLE_SIZE], *right_dups[:SAMPLE_SIZE]]:
        details[pid] = {name: (dict(r._asdict()) if r else None)
                        for name, r in ((left_name, left_by_id.get(pid)), (right_name, right_by_id.get(pid)))}
    return missing, altered, {left_name: left_dups, right_name: right_dups}, details


def reconcile(left: PaymentSource, right: PaymentSource, scope: Scope,
              depth: int = DEFAULT_SEGMENT_DEPTH) -> ReconciliationReport:
    """Compare two stores over a scope, narrowing only the segments that differ down to payment ids."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="reconcile") as pool:  # both stores at once
        left_future = pool.submit(left.summarize, scope, depth)
        right_summary = right.summarize(scope, depth)
        left_summary = left_future.result()
    segments = differing_segments(left_summary, right_summary)
    missing: dict[str, list[str]] = {left.name: [], right.name: []}
    altered: list[str] = []
    duplicates: dict[str, list[str]] = {left.name: [], right.name: []}
    details: dict = {}
    if segments:
        missing, altered, duplicates, details = diff_records(
            left.name, left.records(scope, segments, depth), right.name, right.records(scope, segments, depth))
    for source, summary in ((left, left_summary), (right, right_summary)):
        # a source that reads segments through an index sees one row per id: its pass names duplicates
        duplicates[source.name] = sorted(set(duplicates[source.name]) | summary.duplicates)
    return ReconciliationReport(
        left=left.name, right=right.name, scope=scope.describe(),
        rows={left.name: left_summary.rows, right.name: right_summary.rows},
        segments_compared=len(set(left_summary.segments) | set(right_summary.segments)),
        segments_differing=segments, only_in=missing, altered=altered, duplicates=duplicates,
        total_differences=compare_totals(left_summary, right_summary),
        seconds=time.perf_counter() - started, details=details,
        summaries={left.name: left_summary, right.name: right_summary})
