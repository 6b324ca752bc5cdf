"""The platform's checks as plain functions over the stores: each returns a `Verdict` the Dagster layer
turns into an `AssetCheckResult` (so the logic is testable and reusable outside Dagster).

- `full_reconciliation` + `consistency_verdict`, `duplicates_verdict`, `rail_verdict`: every payment, HBase vs
  Postgres (segment checksums, narrowing, names the ids), and from the same pass per store: duplicate payment
  ids and amounts/currencies valid for their rail. `settled` asks a difference to survive a second pass.
- `window_consistency`: the same over the most recent UTC days of `created_at` (time windows) inside the valid
  window (`validation.ValidityWindow`, always passed in: the one ingestion validates with, from the
  `ingestion_settings` resource); payments stored with a created_at outside it are a finding (WARN), never a
  crash of the check.
- `ranges_consistency`: each recently ingested Kafka range: the payment ids read back from Kafka (the truth
  for a range) minus quarantined positions must be in both stores, or in the backup for the store that missed.
- `backup_verdict`, `quarantine_verdict`: the failed-payment backup and the quarantine rate.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import TYPE_CHECKING, Callable, Iterator

from payment_platform.domain.validation import ValidityWindow
from payment_platform.lib.collections_pause import fewer_collections
from payment_platform.reconciliation.cut import Cut
from payment_platform.reconciliation.compare import (
    SAMPLE_SIZE,
    AllPayments,
    BelowCut,
    PaymentIds,
    ReconciliationReport,
    TimeWindow,
    choose_depth,
    reconcile,
)

if TYPE_CHECKING:
    from payment_platform.stores.kafka import KafkaClient

ERROR, WARN = "ERROR", "WARN"
RANGE_CHECK_CHUNK = 2000  # Kafka messages read back per HBase multi-get of a range check


@dataclass
class Verdict:
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)
    severity: str = ERROR  # of a failure
    outcomes: list = field(default_factory=list)  # per item checked, for the caller to remember (not metadata)

    @classmethod
    def ok(cls, description: str, **metadata) -> "Verdict":
        return cls(True, description, metadata)


def _pending_in_backup(report: ReconciliationReport, backup) -> dict[str, int]:
    """How many ids present in one store only are waiting in the backup for the other store."""
    pending = {}
    for present_in, missing_from in (("hbase", "postgres"), ("postgres", "hbase")):
        ids = report.only_in.get(present_in, [])
        pending[missing_from] = len(backup.stored_ids(missing_from, ids)) if ids and backup is not None else 0
    return pending


NOTHING_INGESTED = "nothing ingested yet"


def consistency_verdict(report: ReconciliationReport, backup=None) -> Verdict:
    metadata = report.as_metadata()
    if report.consistent:
        if not any(report.rows.values()):  # a fresh platform: both stores empty is consistent
            metadata["nothing_ingested_yet"] = True
            return Verdict(True, f"{NOTHING_INGESTED}: HBase and Postgres are both empty, which is consistent",
                           metadata)
        return Verdict(True, report.describe(), metadata)
    try:
        pending = _pending_in_backup(report, backup)
    except Exception as error:  # noqa: BLE001 - informational: the check fails either way
        pending, metadata["pending_error"] = {}, str(error)
    metadata.update({f"pending_in_backup_{store}": n for store, n in pending.items()})
    note = ""
    if sum(pending.values()):
        note = f" ({sum(pending.values())} of them wait in the backup for replay)"
    return Verdict(False, report.describe() + note, metadata)


def duplicates_verdict(report: ReconciliationReport, store: str) -> Verdict:
    ids = sorted(report.duplicates.get(store, []))
    metadata = {"duplicate_count": len(ids), "duplicate_sample": ids[:SAMPLE_SIZE], "rows": report.rows[store]}
    if not ids:
        return Verdict(True, f"no payment id appears twice in {store} ({report.rows[store]} payments)", metadata)
    return Verdict(False, f"{len(ids)} payment ids appear more than once in {store}", metadata)


def rail_verdict(report: ReconciliationReport, store: str) -> Verdict:
    invalid = report.summaries[store].invalid if store in report.summaries else {}
    sample = sorted(invalid)[:SAMPLE_SIZE]
    metadata = {"invalid_count": len(invalid), "invalid_sample": sample,
                "invalid_reasons": {pid: invalid[pid] for pid in sample}, "rows": report.rows[store]}
    if not invalid:
        return Verdict(True, f"every amount and currency in {store} is valid for its rail", metadata)
    return Verdict(False, f"{len(invalid)} payments in {store} break their rail's amount/currency rules", metadata)


def settled(compare: Callable[[], ReconciliationReport], settle_s: float,
            sleep: Callable[[float], None] = time.sleep) -> ReconciliationReport:
    """A difference must persist across two passes `settle_s` apart: a range being written while the first
    pass ran (one store already has it, the other a moment later) is not an inconsistency."""
    first = compare()
    if first.consistent or settle_s <= 0:
        return first
    sleep(settle_s)
    second = compare()
    second.first_pass_mismatches = len(first.offending_ids)
    return second


def full_reconciliation(hbase_reader, postgres_reader, target_rows_per_segment: int = 4096,
                        settle_s: float = 0.0) -> ReconciliationReport:
    depth = choose_depth(postgres_reader.count(), target_rows_per_segment)
    return settled(lambda: reconcile(hbase_reader, postgres_reader, AllPayments(), depth=depth), settle_s)


def recent_days(postgres_reader, days: int, window: ValidityWindow, now: datetime | None = None
                ) -> list[TimeWindow]:
    """The most recent `days` UTC days that hold payments in the ledger (by created_at, inside the valid window),
    newest first."""
    latest = postgres_reader.latest_created_at(window.earliest_created_at, window.latest_created_at(now))
    if latest is None:
        return []
    last_day = latest.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return [TimeWindow(last_day - timedelta(days=i), last_day - timedelta(days=i - 1)) for i in range(days)]


def out_of_window(postgres_reader, window: ValidityWindow, now: datetime | None = None) -> dict:
    """Payments the ledger holds with a created_at outside the valid window (landed before ingestion refused such
    dates, or written by hand): metadata for the time-window check."""
    earliest, latest = window.earliest_created_at, window.latest_created_at(now)
    count, sample = postgres_reader.created_at_outside(earliest, latest, SAMPLE_SIZE)
    return {"out_of_window_count": count, "out_of_window_sample": sample,
            "valid_window": f"[{earliest.isoformat()}, {latest.isoformat(timespec='seconds')}]"}


def _with_out_of_window(verdict: Verdict, found: dict) -> Verdict:
    """A passing verdict turns into a WARN finding (non-blocking: the stores still agree) when the ledger holds
    payments dated outside the valid window."""
    verdict.metadata.update(found)
    if found["out_of_window_count"] and verdict.passed:
        first = next(iter(found["out_of_window_sample"].items()))
        return Verdict(False, f"{verdict.description}; but {found['out_of_window_count']} payments carry a created_at "
                              f"outside the valid window {found['valid_window']} (e.g. {first[0]} at {first[1]}): "
                              f"ingestion quarantines such messages (ingestion_settings sets the window); correct or "
                              f"remove these rows, or widen the window if they are real payments",
                       verdict.metadata, WARN)
    return verdict


def window_consistency(hbase_reader, postgres_reader, days: int, window: ValidityWindow, backup=None,
                       settle_s: float = 0.0, now: datetime | None = None, cut: Cut | None = None,
                       select: Callable[[list[TimeWindow]], list[TimeWindow]] | None = None) -> Verdict:
    """The recent days; under a `cut`, only the payments below it (what lands meanwhile is in flight); `select`
    picks the windows of this run out of the days (the rotation of `scheduled.recent_slices`)."""
    found = out_of_window(postgres_reader, window, now)
    windows = recent_days(postgres_reader, days, window, now)
    verdict = _recent_windows_verdict(hbase_reader, postgres_reader, days, backup, settle_s,
                                      select(windows) if select and windows else windows, cut)
    if cut is not None:
        verdict.metadata.update(cut.metadata())
    return _with_out_of_window(verdict, found)


def _recent_windows_verdict(hbase_reader, postgres_reader, days: int, backup, settle_s: float,
                            windows: list[TimeWindow], cut: Cut | None = None) -> Verdict:
    if not windows:
        return Verdict.ok(f"{NOTHING_INGESTED}: no payments in the ledger", windows=0, mismatch_count=0,
                          nothing_ingested_yet=True)
    scopes = [BelowCut(w, cut) if cut is not None else w for w in windows]
    reports = [settled(lambda w=w: reconcile(hbase_reader, postgres_reader, w, depth=2), settle_s) for w in scopes]
    bad = [r for r in reports if not r.consistent]
    metadata = {"windows": len(reports), "windows_differing": len(bad),
                "hbase_rows": sum(r.rows["hbase"] for r in reports),
                "postgres_rows": sum(r.rows["postgres"] for r in reports),
                "mismatch_count": sum(len(r.offending_ids) for r in reports),
                "mismatch_sample": sorted({i for r in bad for i in r.offending_ids})[:SAMPLE_SIZE],
                "window_results": {r.scope: r.describe() for r in reports},
                "seconds": round(sum(r.seconds for r in reports), 3)}
    if not bad:
        return Verdict(True, f"HBase and Postgres agree on {len(reports)} windows of the last {days} days", metadata)
    first = consistency_verdict(bad[0], backup)
    metadata.update({k: v for k, v in first.metadata.items() if k.startswith("pending_in_backup")})
    return Verdict(False, f"{len(bad)} of {len(reports)} windows differ; first: {first.description}", metadata)


@dataclass(frozen=True)
class IngestedRange:
    id: int
    topic: str
    partition: int
    start: int
    end: int
    reset_since: bool = False  # offsets went backwards after it: Kafka no longer holds its messages

    def describe(self) -> str:
        return f"{self.topic}[{self.partition}] offsets {self.start}-{self.end}"


def _row_key_hint(doc: dict) -> bytes | None:
    """The unsalted HBase row key ingestion gives this message (rowkeys.time_key; the reader adds the salt of its
    layout), or None when it cannot be derived."""
    from payment_platform.domain.schema import parse_timestamp

    try:
        stamp = parse_timestamp(doc["created_at"]).strftime("%Y%m%d%H%M%S")
        return f"{stamp}_{doc['payment_type']}_{doc['originator']['party_id']}_{str(doc['payment_id']).lower()}".encode()
    except Exception:  # noqa: BLE001 - any malformed field: the index finds the row instead
        return None


def expected_ids_by_chunk(kafka: KafkaClient, ingested: IngestedRange, quarantined_offsets: set[int],
                          chunk_size: int = RANGE_CHECK_CHUNK) -> Iterator[dict[str, bytes | None]]:
    """Payment ids of the range read back from Kafka (minus the quarantined messages), a Kafka chunk at a time,
    each with the HBase row key its message gives, so HBase is read with one multi-get per chunk (the index is
    only asked for the misses). An id already yielded (a duplicated payment id) keeps the key of its first
    (landed) message and is not yielded again."""
    seen: set[str] = set()
    for chunk in kafka.read_range(ingested.partition, ingested.start, ingested.end, batch=chunk_size,
                                  topic=ingested.topic):
        hints: dict[str, bytes | None] = {}
        for message in chunk:
            if message.offset in quarantined_offsets:
                continue
            try:
                doc = json.loads(message.value)
                payment_id = str(doc["payment_id"]).lower()
            except (ValueError, KeyError, TypeError):
                continue  # unparsable: ingestion quarantined it (a missing quarantine row shows in the counts)
            if payment_id not in seen:
                seen.add(payment_id)
                hints[payment_id] = _row_key_hint(doc)
        if hints:
            yield hints


class KafkaRangeLost(LookupError):
    """The range cannot be read back from Kafka (the memory broker restarted, offsets were reset)."""


def _expected_with_rows(kafka: KafkaClient, ingested: IngestedRange, quarantined: set[int], hbase_reader,
                        postgres_reader, chunk_size: int) -> tuple[dict[str, bytes | None], dict[str, list]]:
    """The range's expected ids and each store's rows for them. Each Kafka chunk's rows are fetched from HBase and
    from Postgres on one worker per store while the next chunk is read and parsed, so the check costs about the
    longest of the three, not their sum."""
    hints: dict[str, bytes | None] = {}
    fetches: dict[str, list] = {"hbase": [], "postgres": []}
    # One worker per store: each reader's connection is used by one thread at a time.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="range-hbase") as hbase_pool, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="range-postgres") as postgres_pool:
        try:
            for chunk_hints in expected_ids_by_chunk(kafka, ingested, quarantined, chunk_size):
                hints.update(chunk_hints)
                fetches["hbase"].append(hbase_pool.submit(
                    lambda h=chunk_hints: list(hbase_reader.records_with_key_hints(h))))
                scope = PaymentIds(frozenset(chunk_hints), ingested.describe())
                fetches["postgres"].append(postgres_pool.submit(
                    lambda s=scope: list(postgres_reader.iter_records(s))))
        except Exception as error:  # noqa: BLE001 - whatever kafka-python raised: the range is not readable
            for fetch in (*fetches["hbase"], *fetches["postgres"]):
                fetch.cancel()
            raise KafkaRangeLost(f"{type(error).__name__}: {error}") from error
        return hints, {store: [r for fetch in futures for r in fetch.result()] for store, futures in fetches.items()}


def _rows_of(hints: dict[str, bytes | None], scope: PaymentIds, hbase_reader, postgres_reader) -> dict[str, list]:
    """Each store's rows for these ids, both stores at once."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="range-postgres") as pool:
        postgres_records = pool.submit(lambda: list(postgres_reader.iter_records(scope)))
        hbase_records = list(hbase_reader.records_with_key_hints(hints))
        return {"hbase": hbase_records, "postgres": postgres_records.result()}


def range_report(ingested: IngestedRange, hbase_reader, postgres_reader, backup, kafka: KafkaClient,
                 chunk_size: int = RANGE_CHECK_CHUNK) -> dict:
    """One range: stores agree on the range's payment ids, and every id is in each store or its backup."""
    started = time.perf_counter()
    quarantined = postgres_reader.quarantined_offsets(ingested.topic, ingested.partition, ingested.start, ingested.end)
    with fewer_collections():
        try:
            if ingested.reset_since:
                raise KafkaRangeLost("offsets were reset after this range was ingested")
            hints, held = _expected_with_rows(kafka, ingested, quarantined, hbase_reader, postgres_reader,
                                              chunk_size)
            source = "kafka"
        except KafkaRangeLost as error:
            hints = dict.fromkeys(postgres_reader.ids_at_positions(ingested.topic, ingested.partition,
                                                                   ingested.start, ingested.end))
            source = f"ledger (kafka range unavailable: {error})"
            held = None
        expected = set(hints)
        scope = PaymentIds(frozenset(expected), ingested.describe())
        if held is None:
            held = _rows_of(hints, scope, hbase_reader, postgres_reader)
        report = reconcile(RecordsSource("hbase", held["hbase"]), RecordsSource("postgres", held["postgres"]), scope)
    lost, pending = {}, {}
    for store, records in held.items():
        absent = expected - {r.payment_id for r in records}
        waiting = backup.stored_ids(store, absent) if absent else set()
        pending[store] = len(waiting)
        lost[store] = sorted(absent - waiting)
    return {"range": ingested, "report": report, "source": source, "expected": len(expected),
            "pending": pending, "lost": lost, "seconds": time.perf_counter() - started}


def ranges_consistency(ranges: list[IngestedRange], hbase_reader, postgres_reader, backup,
                       kafka: KafkaClient) -> Verdict:
    """Each range: both stores agree; an id missing from a store must be waiting in that store's backup."""
    if not ranges:
        return Verdict.ok(f"{NOTHING_INGESTED}: no ingested range recorded", ranges=0, mismatch_count=0,
                          nothing_ingested_yet=True)
    results = [range_report(r, hbase_reader, postgres_reader, backup, kafka) for r in ranges]
    return _ranges_verdict(results)


@dataclass
class RangeVerdicts:
    """The cheap checks of some ingested ranges, from one read of each range: consistency, and per store
    duplicate ids and amounts valid for their rail (over the range's payments only)."""

    consistency: Verdict
    duplicates: dict[str, Verdict]  # store -> verdict
    rails: dict[str, Verdict]


def ranges_verdicts(ranges: list[IngestedRange], hbase_reader, postgres_reader, backup,
                    kafka: KafkaClient) -> RangeVerdicts:
    stores = ("hbase", "postgres")
    if not ranges:
        empty = f"{NOTHING_INGESTED}: no ingested range recorded"
        return RangeVerdicts(Verdict.ok(empty, ranges=0, mismatch_count=0, nothing_ingested_yet=True),
                             {s: Verdict.ok(empty, duplicate_count=0, rows=0) for s in stores},
                             {s: Verdict.ok(empty, invalid_count=0, rows=0) for s in stores})
    results = [range_report(r, hbase_reader, postgres_reader, backup, kafka) for r in ranges]
    scope = ", ".join(r["range"].describe() for r in results[:3]) + (" ..." if len(results) > 3 else "")
    duplicates, rails = {}, {}
    for store in stores:
        duplicates[store] = duplicates_verdict(_merged(results, store), store)
        rails[store] = rail_verdict(_merged(results, store), store)
        for verdict in (duplicates[store], rails[store]):
            verdict.description += f" (ranges {scope})"
            verdict.metadata["ranges"] = len(results)
    return RangeVerdicts(_ranges_verdict(results), duplicates, rails)


def _merged(results: list[dict], store: str) -> SimpleNamespace:
    """The parts of several ranges' reports that duplicates_verdict and rail_verdict read, for one store."""
    duplicates = sorted({i for r in results for i in r["report"].duplicates.get(store, [])})
    invalid = {}
    for r in results:
        invalid.update(getattr(r["report"].summaries.get(store), "invalid", None) or {})
    rows = sum(r["report"].rows.get(store, 0) for r in results)
    return SimpleNamespace(duplicates={store: duplicates}, rows={store: rows},
                           summaries={store: SimpleNamespace(invalid=invalid)})


def _ranges_verdict(results: list[dict]) -> Verdict:
    outcomes = []
    for r in results:
        lost = sum(len(ids) for ids in r["lost"].values())
        proven = not lost and r["report"].consistent
        outcomes.append((r["range"].id, proven, "consistent" if proven else
                         f"{lost} lost, {len(r['report'].offending_ids)} differing, "
                         f"{sum(r['pending'].values())} waiting in the backup"))
    lost_ids = sorted({i for r in results for ids in r["lost"].values() for i in ids})
    differing = sorted({i for r in results for i in r["report"].offending_ids})
    metadata = {
        "ranges": len(results), "expected_payments": sum(r["expected"] for r in results),
        "ranges_read_from_ledger": sum(1 for r in results if r["source"] != "kafka"),
        "hbase_rows": sum(r["report"].rows["hbase"] for r in results),
        "postgres_rows": sum(r["report"].rows["postgres"] for r in results),
        "pending_in_backup_hbase": sum(r["pending"]["hbase"] for r in results),
        "pending_in_backup_postgres": sum(r["pending"]["postgres"] for r in results),
        "lost_count": len(lost_ids), "lost_sample": lost_ids[:SAMPLE_SIZE],
        "mismatch_count": len(differing), "mismatch_sample": differing[:SAMPLE_SIZE],
        "ranges_checked": [r["range"].describe() for r in results][:SAMPLE_SIZE],
        "seconds": round(sum(r["seconds"] for r in results), 3),
        "max_range_seconds": round(max(r["seconds"] for r in results), 3),
    }
    if lost_ids:
        return Verdict(False, f"{len(lost_ids)} payments of {len(results)} ranges are in neither a store nor "
                              f"its backup", metadata, outcomes=outcomes)
    if differing:
        pending = metadata["pending_in_backup_hbase"] + metadata["pending_in_backup_postgres"]
        return Verdict(False, f"HBase and Postgres differ on {len(differing)} payments of {len(results)} "
                              f"ranges ({pending} wait in the backup for replay)", metadata, outcomes=outcomes)
    return Verdict(True, f"{len(results)} ingested ranges are in both stores "
                         f"({metadata['expected_payments']} payments)", metadata, outcomes=outcomes)


class RecordsSource:
    """Records already read, as a reconciliation source."""

    def __init__(self, name: str, records):
        from payment_platform.reconciliation.digest import summarize
        self.name, self._records, self._summarize = name, list(records), summarize

    def summarize(self, scope, depth):
        return self._summarize(self._records, depth, track_duplicates=True)

    def records(self, scope, segments, depth):
        wanted = set(segments)
        return [r for r in self._records if r.payment_id[:depth] in wanted]


def backup_verdict(stats: dict, max_age_s: float) -> Verdict:
    """Empty: pass. Holding payments: WARN with size and oldest age. Older than max_age_s: ERROR."""
    size, age = stats["size"], stats.get("oldest_age_s")
    metadata = {"backup_size": size, "backup_hbase": stats["by_store"].get("hbase", 0),
                "backup_postgres": stats["by_store"].get("postgres", 0),
                "oldest_age_s": round(age, 1) if age is not None else 0.0, "max_age_s": max_age_s}
    if stats.get("mongo_error"):
        metadata["mongo_error"] = stats["mongo_error"]
    latest = stats.get("latest_failure")
    if latest:  # why the last one is still waiting: an outage, or a refusal replay could not prove to be poison
        metadata.update(latest_failure_payment=latest["payment_id"], latest_failure_store=latest["store"],
                        latest_failure_attempts=latest["attempts"], latest_failure_error=latest["error"])
    if size == 0:
        return Verdict(True, "the failed-payment backup is empty", metadata)
    text = f"the backup holds {size} payments, oldest waiting {age or 0:.0f} s"
    if latest:
        text += (f"; latest failure: payment {latest['payment_id']} for {latest['store']} (attempt "
                 f"{latest['attempts']}): {latest['error']}")
    if age is not None and age > max_age_s:
        return Verdict(False, f"{text}: past the {max_age_s:.0f} s limit, replay is not draining it", metadata, ERROR)
    return Verdict(False, f"{text} (replay drains it once the store is healthy)", metadata, WARN)


def quarantine_verdict(quarantined: int, messages: int, max_rate: float, window_s: float) -> Verdict:
    rate = quarantined / messages if messages else 0.0
    metadata = {"quarantined": quarantined, "messages": messages, "quarantine_rate": round(rate, 6),
                "max_rate": max_rate, "window_s": window_s}
    if not messages and not quarantined:
        metadata["nothing_ingested_yet"] = True
    if rate <= max_rate:
        return Verdict(True, f"quarantine rate {rate:.2%} within {max_rate:.2%} ({quarantined} of {messages} "
                             f"messages in the last {window_s / 3600:g} h)", metadata)
    return Verdict(False, f"quarantine rate {rate:.2%} over {max_rate:.2%} ({quarantined} of {messages} messages "
                          f"in the last {window_s / 3600:g} h)", metadata)


def stall_verdict(waiting: dict[int, tuple[int, float | None]], max_age_s: float) -> Verdict:
    """Ingestion is stalled when payments wait and the oldest of them is older than max_age_s; an idle topic
    (nothing waiting) passes however long ago its last payment came. `waiting`: partition -> (messages waiting,
    age in seconds of the oldest waiting message, None when unknown)."""
    lag = sum(n for n, _ in waiting.values())
    ages = [age for n, age in waiting.values() if n and age is not None]
    oldest = max(ages, default=0.0)
    metadata = {"lag": lag, "oldest_waiting_age_s": round(oldest, 1), "max_age_s": max_age_s,
                "partitions_waiting": sum(1 for n, _ in waiting.values() if n)}
    if not lag:
        return Verdict(True, "nothing waits: every published payment is ingested (an idle topic is fine)", metadata)
    stalled = sorted(p for p, (n, age) in waiting.items() if n and age is not None and age > max_age_s)
    if stalled:
        return Verdict(False, f"ingestion stalled: {lag} payments wait, the oldest for {oldest:.0f} s (limit "
                              f"{max_age_s:g} s) in partition(s) {stalled}; look at the ingestion sensor's ticks "
                              f"and the failed runs of ingest_partition_lease_job (the topic asset names a failing partition)", metadata)
    return Verdict(True, f"{lag} payments wait, the oldest for {oldest:.0f} s: within {max_age_s:g} s", metadata)
