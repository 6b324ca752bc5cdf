"""The ingestion data path: one Kafka offset range into HBase, Postgres and Redis, with exactly-once effects.

`Ingestor.ingest(OffsetRange)` reads exactly [start, end) of one partition in chunks (memory bounded: a reader
thread stays at most one chunk ahead), and settles every message of every chunk:
- invalid (not JSON, fails schema v1 or the rail rules) -> Postgres quarantine with raw bytes, position, reason;
- its payment_id already settled (both stores, or their backups, hold it; or it appeared earlier in the same
  chunk) -> nothing is written, counted in `duplicates_skipped`. Redis's "landed" keys are consulted but never
  trusted alone: a Redis claim the stores contradict (Redis kept, stores wiped) is counted in `redis_stale` and
  the payment lands anyway, so a stale cache can never lose a payment;
- otherwise written to each store that does not hold it yet (HBase and Postgres in parallel); a store whose write
  fails (after one retry) because it is unreachable (an outage: connection errors, timeouts) gets those payments in
  the failed-payment backup instead;
- a write a store refuses for another reason (a poison message validation did not foresee) is isolated: the
  chunk is bisected, the halves the store accepts are written as usual, and each message the store refuses on
  its own is quarantined with the store's error (and removed from the other store if that one took it), so
  one message never stops its partition (docs/architecture.md, guarantee 6). A payment whose HBase row cannot even be built
  is quarantined before anything is written. When every message of a chunk is refused, the store is at fault,
  not the messages: they go to the backup as in an outage;
- then Redis marks the settled ids landed and adds to the live metrics (Redis errors are counted, never fatal).
Progress is recorded (Postgres, contiguous) only after the last chunk is settled. If anything cannot be settled
(Kafka range unreadable, quarantine not writable, backup unreachable as well as a store) it raises IngestionError
and progress does not move: the same range is simply ingested again later, which changes nothing already done.
"""
from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable, Iterator, Sequence

from payment_platform.config import pan_hash_key_from_env
from payment_platform.domain.redaction import redact_message, redact_text
from payment_platform.domain.schema import InvalidMessage
from payment_platform.domain.validation import DEFAULT_WINDOW, ValidityWindow, parse_and_validate
from payment_platform.lib.collections_pause import fewer_collections
from payment_platform.lib.read_ahead import in_batches, read_ahead
from payment_platform.stores import kafka as kafka_store
from payment_platform.stores.backup import BackupUnavailable, FailedPaymentBackup
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger, ProgressConflict, QuarantineEntry
from payment_platform.stores.records import (STORE_HBASE, STORE_POSTGRES, STORE_REDIS, KafkaPosition,
                                             PaymentRecord)
from payment_platform.stores.redis_state import ChunkMetrics, RedisState
from payment_platform.stores.refusals import SYSTEMIC_REFUSALS, describe, is_outage  # one classification, shared with replay

logger = logging.getLogger(__name__)

WRITE_RETRY_DELAY_S = 0.2
FIRST_CHUNK = 250  # messages in a range's first chunk (see _small_first)


class IngestionError(RuntimeError):
    """A range could not be settled; its progress was not recorded and the range must be ingested again."""


@dataclass(frozen=True)
class OffsetRange:
    """Offsets [start, end) of one partition of a topic."""

    topic: str
    partition: int
    start: int
    end: int

    def __post_init__(self):
        if not self.topic:
            raise ValueError("OffsetRange.topic is empty")
        if self.partition < 0 or self.start < 0 or self.end < self.start:
            raise ValueError(f"bad offset range {self.topic}[{self.partition}] [{self.start}, {self.end})")

    @property
    def size(self) -> int:
        return self.end - self.start

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}] [{self.start}, {self.end})"


@dataclass
class RangeResult:
    range: OffsetRange
    messages: int = 0
    written: dict[str, int] = field(default_factory=lambda: {STORE_HBASE: 0, STORE_POSTGRES: 0, STORE_REDIS: 0})
    backed_up: dict[str, int] = field(default_factory=lambda: {STORE_HBASE: 0, STORE_POSTGRES: 0})
    quarantined: int = 0
    duplicates_skipped: int = 0
    seconds: float = 0.0
    backed_up_to_files: int = 0  # of `backed_up`, how many went to the local folder (MongoDB failed too)
    redis_errors: int = 0
    redis_stale: int = 0  # ids Redis called landed that the stores did not hold (landed now)
    progress_recorded: bool = False  # False when the range was already recorded (a re-run)
    poison_isolated: int = 0  # of `quarantined`, messages a store refused on their own (found by bisection)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def as_metadata(self) -> dict:
        """Flat metadata with stable keys (the Dagster UI plots them across runs)."""
        return {
            "topic": self.range.topic,
            "partition": self.range.partition,
            "start_offset": self.range.start,
            "end_offset": self.range.end,
            "messages": self.messages,
            "written_hbase": self.written.get(STORE_HBASE, 0),
            "written_postgres": self.written.get(STORE_POSTGRES, 0),
            "written_redis": self.written.get(STORE_REDIS, 0),
            "backed_up_hbase": self.backed_up.get(STORE_HBASE, 0),
            "backed_up_postgres": self.backed_up.get(STORE_POSTGRES, 0),
            "backed_up": sum(self.backed_up.values()),
            "backed_up_to_files": self.backed_up_to_files,
            "quarantined": self.quarantined,
            "poison_isolated": self.poison_isolated,
            "duplicates_skipped": self.duplicates_skipped,
            "redis_errors": self.redis_errors,
            "redis_stale": self.redis_stale,
            "rate_msgs_per_s": round(self.rate, 1),
            "seconds": round(self.seconds, 3),
            "progress_recorded": self.progress_recorded,
        }


@dataclass
class _StoreOutcome:
    written: int = 0
    already: set[str] = field(default_factory=set)  # ids the store (or its backup) already held
    failed: list[PaymentRecord] = field(default_factory=list)
    error: str | None = None
    rejected: dict[str, str] = field(default_factory=dict)  # payment id -> why the store refused it alone


@dataclass
class _Chunk:
    """One chunk on its way through the pipeline."""

    started: float
    records: list[PaymentRecord] = field(default_factory=list)
    invalid: list[QuarantineEntry] = field(default_factory=list)
    in_chunk_duplicates: int = 0
    poison: int = 0  # of `invalid`, payments a store refused (not validation)
    messages: Sequence[kafka_store.KafkaMessage] = ()  # the chunk as read (to quarantine what a store refuses)
    landed: set[str] = field(default_factory=set)
    candidates: list[PaymentRecord] = field(default_factory=list)
    hbase_rows: dict | None = None  # HBaseStore.prepare(candidates)
    hbase: Future | None = None
    postgres: Future | None = None


def _payment_id_hint(raw: bytes) -> str | None:
    """The payment_id of a message that failed validation, when it can be read (for people searching)."""
    try:
        doc = json.loads(raw)
        value = doc.get("payment_id") if isinstance(doc, dict) else None
        return value[:64] if isinstance(value, str) else None
    except Exception:  # noqa: BLE001 - an undecodable key or value has no payment id
        return None


def _small_first(chunks: Iterable[list], first: int) -> Iterator[list]:
    """The chunks, the first one split after `first` messages: the stores start writing after a few hundred
    messages are parsed instead of a whole chunk, so the pipeline fills sooner (docs/decisions.md)."""
    iterator = iter(chunks)
    try:
        for chunk in iterator:
            if len(chunk) > first:
                yield chunk[:first]
                yield chunk[first:]
            else:
                yield chunk
            break
        yield from iterator
    finally:  # stopped early (an error downstream): release the Kafka reader now, not at garbage collection
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


@dataclass
class _RangeState:
    """What the steps of one range share: the pool looking payments up in the backup, the stores that failed
    in this range (one write attempt per chunk from then on) and whether Redis still answers."""

    backup_lookups: ThreadPoolExecutor
    writers: dict[str, ThreadPoolExecutor]  # each store's writer thread (its one connection is used there only)
    failed_stores: set[str] = field(default_factory=set)
    accepted: set[str] = field(default_factory=set)  # stores that took a write in this range (see _isolate)
    redis_ok: bool = True


class Ingestor:
    """Lands Kafka offset ranges in the stores. Not thread-safe: one Ingestor per run (or per thread)."""

    def __init__(self, kafka_bootstrap: str, hbase: HBaseStore, postgres: PostgresLedger,
                 backup: FailedPaymentBackup, redis: RedisState, window: ValidityWindow = DEFAULT_WINDOW):
        self.kafka_bootstrap = kafka_bootstrap
        self.hbase, self.postgres, self.backup, self.redis = hbase, postgres, backup, redis
        self.window = window  # when a payment may be created and settle (validation.ValidityWindow)
        self._schemas_ready = False

    @classmethod
    def from_resources(cls, kafka, hbase, postgres, backup, redis,
                       window: ValidityWindow = DEFAULT_WINDOW) -> "Ingestor":
        """From the Dagster resources `kafka` (KafkaResource), `hbase`, `postgres`, `backup`, `redis`."""
        return cls(kafka.bootstrap_servers, hbase.client(), postgres.client(), backup.client(), redis.client(),
                   window)

    def close(self) -> None:
        for store in (self.hbase, self.postgres, self.backup, self.redis):
            try:
                store.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def ensure_schemas(self, log=None) -> None:
        """Create tables/indexes where missing. A store that is down now is reported, not fatal: its writes
        will fail and go to the backup (Postgres down fails the range later, as progress lives there)."""
        log = log or logger
        for name, store in (("postgres", self.postgres), ("hbase", self.hbase), ("backup", self.backup),
                            ("redis", self.redis)):
            try:
                store.ensure_schema()
            except Exception as error:  # noqa: BLE001 - reported; a store down now fails its writes later
                log.warning(f"ensure_schema({name}) failed, carrying on: {error!r}")
        self._schemas_ready = True

    # -- the range -------------------------------------------------------------------------------------
    def ingest(self, offset_range: OffsetRange, chunk_size: int = 2000, log=None,
               messages: Sequence[kafka_store.KafkaMessage] | None = None) -> RangeResult:
        """Land every message of `offset_range`, then record progress. Raises IngestionError if it cannot settle.

        `messages`: the range's messages when the caller has read them already (a lease's PartitionReader); they
        must be exactly the messages of [start, end) (offsets may skip, as Kafka's may); None reads the range."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        log = log or logger
        started = time.monotonic()
        if not self._schemas_ready:
            self.ensure_schemas(log)
        result = RangeResult(range=offset_range)
        self._refuse_gap(offset_range)
        if messages is None:
            chunks = kafka_store.read_range(self.kafka_bootstrap, offset_range.topic, offset_range.partition,
                                            offset_range.start, offset_range.end, batch=chunk_size)
        else:
            if any(not offset_range.start <= m.offset < offset_range.end for m in messages):
                raise ValueError(f"{offset_range}: messages given outside the range")
            chunks = in_batches(messages, chunk_size)
        try:
            with fewer_collections(), \
                    ThreadPoolExecutor(max_workers=1, thread_name_prefix="hbase-writer") as hbase_writer, \
                    ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-writer") as postgres_writer, \
                    ThreadPoolExecutor(max_workers=2, thread_name_prefix="backup-lookup") as backup_lookups:
                state = _RangeState(backup_lookups, {STORE_HBASE: hbase_writer, STORE_POSTGRES: postgres_writer})
                in_flight: _Chunk | None = None
                for chunk in read_ahead(_small_first(chunks, FIRST_CHUNK), depth=1, name="kafka-range-reader"):
                    work = self._prepare(offset_range, chunk, result, state, log)
                    self._submit(offset_range, work, hbase_writer, postgres_writer, state, log)
                    if in_flight is not None:
                        self._finish(offset_range, in_flight, result, state, log)
                    in_flight = work
                if in_flight is not None:
                    self._finish(offset_range, in_flight, result, state, log)
        except (kafka_store.KafkaUnavailable, kafka_store.RangeUnavailable) as error:
            raise IngestionError(f"{offset_range}: cannot read the range from Kafka: {error}") from error
        except BackupUnavailable as error:
            raise IngestionError(f"{offset_range}: a store write failed and the backup is unreachable too, "
                                 f"progress not recorded: {error}") from error
        result.seconds = time.monotonic() - started
        try:
            result.progress_recorded = self.postgres.record_progress(
                offset_range.topic, offset_range.partition, offset_range.start, offset_range.end,
                summary=result.as_metadata())
        except ProgressConflict as error:
            raise IngestionError(f"{offset_range}: every message is settled but progress cannot move: "
                                 f"{error}") from error
        except Exception as error:
            raise IngestionError(f"{offset_range}: every message is settled but progress could not be recorded "
                                 f"in Postgres: {error!r}") from error
        result.seconds = time.monotonic() - started
        log.info(f"ingested {offset_range}: {result.as_metadata()}")
        return result

    def _refuse_gap(self, offset_range: OffsetRange) -> None:
        """Fail before reading anything when the range starts past the recorded progress (a gap)."""
        try:
            recorded = self.postgres.read_progress(offset_range.topic).get(offset_range.partition)
        except Exception as error:
            raise IngestionError(f"{offset_range}: cannot read progress from Postgres: {error!r}") from error
        if (recorded if recorded is not None else 0) < offset_range.start:
            raise IngestionError(f"{offset_range}: starts past the recorded progress "
                                 f"({recorded if recorded is not None else 'none: 0'}); ingesting it would leave "
                                 f"a gap (reset_progress puts a deliberate jump on record)")

    # -- one chunk -------------------------------------------------------------------------------------
    # Chunks flow through a short pipeline: while the store threads write chunk n (HBase and Postgres each on
    # its own thread, in chunk order, so chunk n+1's "already there?" check always sees chunk n's writes), the
    # main thread parses chunk n+1 and the reader thread fetches chunk n+2. At most three chunks are in memory.
    def _prepare(self, offset_range: OffsetRange, chunk: Sequence[kafka_store.KafkaMessage], result: RangeResult,
                 state: _RangeState, log) -> _Chunk:
        work = _Chunk(started=time.monotonic(), messages=chunk)
        result.messages += len(chunk)
        seen: set[str] = set()
        pan_key = pan_hash_key_from_env()
        for message in chunk:
            position = KafkaPosition(offset_range.topic, message.partition, message.offset)
            try:
                payment = parse_and_validate(message.value, window=self.window)
                value = redact_message(message.value, pan_key)
                if value is not message.value:  # a full card number in free text: the payment lands without it
                    payment = parse_and_validate(value, window=self.window)
            except InvalidMessage as error:
                work.invalid.append(self._quarantine_entry(message, position, error.reason, error.field))
                continue
            except Exception as error:  # noqa: BLE001 - a validator bug must not block the partition: keep it, with why
                work.invalid.append(self._quarantine_entry(
                    message, position, f"could not be validated ({type(error).__name__}: {error})", None))
                continue
            if payment.payment_id in seen:
                work.in_chunk_duplicates += 1
                continue
            seen.add(payment.payment_id)
            work.records.append(PaymentRecord(payment, value, position, self.hbase.salt_buckets))
        ids = [r.payment_id for r in work.records]
        work.landed = self._redis_call(state, result, log, self.redis.landed_ids, ids) or set()
        work.candidates = work.records  # the stores decide; Redis claims are cross-checked in _finish
        # Build the HBase mutations here, on the main thread, so the HBase thread only sends them: building
        # overlaps with the server storing the previous chunk instead of adding to it.
        try:
            work.hbase_rows = self.hbase.prepare(work.candidates)
        except Exception:  # noqa: BLE001 - a payment HBase cannot represent: find it, quarantine it, go on
            work.hbase_rows = self._prepare_one_by_one(work, chunk, log)
        return work

    def _prepare_one_by_one(self, work: _Chunk, chunk: Sequence[kafka_store.KafkaMessage], log) -> dict:
        """The HBase rows of the chunk's payments that have one; the others are quarantined with the error
        (before any store is written: they land nowhere)."""
        rows, keep = {}, []
        for record in work.candidates:
            try:
                rows.update(self.hbase.prepare([record]))
                keep.append(record)
            except Exception as error:  # noqa: BLE001 - whatever the conversion raised is the reason
                reason = f"HBase cannot store it: its row could not be built ({describe(error)})"
                log.warning(f"poison message at {record.position}: {reason}")
                work.invalid.append(self._quarantine_entry(self._message_of(work, record), record.position,
                                                           reason, None))
                work.poison += 1
        work.records = work.candidates = keep
        return rows

    def _submit(self, offset_range: OffsetRange, work: _Chunk, hbase_writer: ThreadPoolExecutor,
                postgres_writer: ThreadPoolExecutor, state: _RangeState, log) -> None:
        work.hbase = hbase_writer.submit(self._land, STORE_HBASE, self.hbase, work.candidates, state, log,
                                         work.hbase_rows)
        work.postgres = postgres_writer.submit(self._quarantine_and_land, offset_range, work, state, log)

    def _quarantine_and_land(self, offset_range: OffsetRange, work: _Chunk, state: _RangeState, log) -> _StoreOutcome:
        if work.invalid:  # stored now, or already there from an earlier run of this range
            self._quarantine(work.invalid, offset_range)
        return self._land(STORE_POSTGRES, self.postgres, work.candidates, state, log)

    @staticmethod
    def _message_of(work: _Chunk, record: PaymentRecord) -> kafka_store.KafkaMessage:
        return next(m for m in work.messages if m.offset == record.position.offset)

    def _finish(self, offset_range: OffsetRange, work: _Chunk, result: RangeResult, state: _RangeState, log) -> None:
        outcomes = {STORE_HBASE: work.hbase.result(), STORE_POSTGRES: work.postgres.result()}
        if any(o.rejected for o in outcomes.values()):
            self._settle_poison(offset_range, work, outcomes, state, log)
        result.quarantined += len(work.invalid)
        result.poison_isolated += work.poison
        metrics = ChunkMetrics(quarantined=len(work.invalid))
        for store, outcome in outcomes.items():
            result.written[store] += outcome.written
            if outcome.failed:
                receipt = self.backup.record_failures(store, outcome.failed, outcome.error or "unknown error")
                result.backed_up[store] += len(outcome.failed)
                result.backed_up_to_files += receipt.get("files", 0)
                metrics.backed_up[store] += len(outcome.failed)
                metrics.errors += 1
                log.warning(f"{offset_range}: {len(outcome.failed)} payments backed up for {store} "
                            f"({receipt}): {outcome.error}")

        already_everywhere = {r.payment_id for r in work.candidates
                              if all(r.payment_id in o.already for o in outcomes.values())}
        metrics.duplicates = work.in_chunk_duplicates + len(already_everywhere)
        stale = [i for i in work.landed if i not in already_everywhere]
        if stale:
            result.redis_stale += len(stale)
            log.warning(f"{offset_range}: Redis marked {len(stale)} payments landed that the stores did not hold "
                        f"(stale idempotency keys); they were landed now")
        result.duplicates_skipped += metrics.duplicates
        for record in work.candidates:
            if record.payment_id in already_everywhere:
                continue
            p = record.payment
            metrics.processed += 1
            metrics.by_rail[p.payment_type] += 1
            metrics.by_currency[p.currency] += 1
            metrics.amount_by_currency[p.currency] = metrics.amount_by_currency.get(p.currency, Decimal(0)) + p.amount
        metrics.seconds = time.monotonic() - work.started
        # Every candidate is now in each store or in its backup: safe to call it landed.
        marked = self._redis_call(state, result, log, self.redis.mark_landed, [r.payment_id for r in work.candidates])
        result.written[STORE_REDIS] += marked or 0
        self._redis_call(state, result, log, self.redis.record_chunk, metrics)

    def _settle_poison(self, offset_range: OffsetRange, work: _Chunk, outcomes: dict[str, _StoreOutcome],
                       state: _RangeState, log) -> None:
        """Payments a store refused on their own: quarantined with the store's error, taken out of the other
        store if it took them (only its row from this very message: same Kafka position), never backed up and
        never called landed. Each store is touched on its own writer thread (one connection, one thread)."""
        reasons: dict[str, list[str]] = {}
        for outcome in outcomes.values():
            for payment_id, why in outcome.rejected.items():
                reasons.setdefault(payment_id, []).append(why)
        poison = [r for r in work.candidates if r.payment_id in reasons]
        entries = [self._quarantine_entry(self._message_of(work, r), r.position, "; ".join(reasons[r.payment_id]),
                                          None) for r in poison]
        for record in poison:
            log.warning(f"{offset_range}: poison message at offset {record.position.offset} (payment "
                        f"{record.payment_id}) quarantined: "
                        f"{redact_text('; '.join(reasons[record.payment_id]), pan_hash_key_from_env())}")
        writers = state.writers
        quarantined = writers[STORE_POSTGRES].submit(self._quarantine, entries, offset_range)
        removals = {}
        for store, outcome in outcomes.items():  # the stores that took (or held) it; not one that was unreachable
            unwritten = set(outcome.rejected) | {r.payment_id for r in outcome.failed}
            removals[store] = writers[store].submit(self._remove, store,
                                                    [r for r in poison if r.payment_id not in unwritten])
        quarantined.result()  # raises IngestionError if the quarantine cannot be written: nothing settled
        for store, removal in removals.items():
            outcomes[store].written = max(0, outcomes[store].written - removal.result())
        for outcome in outcomes.values():
            outcome.failed = [r for r in outcome.failed if r.payment_id not in reasons]
        work.candidates = [r for r in work.candidates if r.payment_id not in reasons]
        work.invalid.extend(entries)
        work.poison += len(entries)

    def _remove(self, name: str, records: list[PaymentRecord]) -> int:
        """Take back from one store the rows these messages wrote (a poison payment lands nowhere)."""
        if not records:
            return 0
        store = self.hbase if name == STORE_HBASE else self.postgres
        try:
            return store.remove_payments(records)
        except Exception:  # noqa: BLE001 - one retry, as for every write
            time.sleep(WRITE_RETRY_DELAY_S)
            try:
                return store.remove_payments(records)
            except Exception as error:
                raise IngestionError(f"{len(records)} poison payments could not be taken back out of {name}, "
                                     f"nothing recorded: {error!r}") from error

    @staticmethod
    def _quarantine_entry(message, position: KafkaPosition, reason: str, field_name: str | None) -> QuarantineEntry:
        defect = message.headers.get("defect") if message.headers else None
        return QuarantineEntry(raw=message.value or b"", position=position, reason=reason, field=field_name,
                               payment_id=_payment_id_hint(message.value or b""), key=message.key,
                               defect_label=defect.decode("utf-8", "replace") if defect else None)

    def _quarantine(self, entries: list[QuarantineEntry], offset_range: OffsetRange) -> int:
        """Quarantine lives in Postgres; if it cannot be written the messages are not settled."""
        try:
            return self.postgres.quarantine(entries)
        except Exception:  # noqa: BLE001 - retried once, then raised
            time.sleep(WRITE_RETRY_DELAY_S)
            try:
                return self.postgres.quarantine(entries)
            except Exception as error:
                raise IngestionError(f"{offset_range}: {len(entries)} invalid messages could not be quarantined "
                                     f"(Postgres): {error!r}") from error

    def _land(self, name: str, store, candidates: list[PaymentRecord], state: _RangeState, log,
              prepared=None) -> _StoreOutcome:
        """Write to one store the candidates it does not hold yet (nor holds in its backup)."""
        outcome = _StoreOutcome()
        if not candidates:
            return outcome
        ids = [r.payment_id for r in candidates]
        # The backup is asked at the same time as the store (both are round trips; the store's is on the critical
        # path of the range).
        in_backup = state.backup_lookups.submit(self.backup.stored_ids, name, ids)
        # A store that already failed in this range gets one attempt per chunk, not two: a hung server then
        # costs one timeout per chunk.
        attempts = 1 if name in state.failed_stores else 2
        for attempt in range(1, attempts + 1):
            try:
                outcome.already = store.existing_ids(ids)
                break
            except Exception as error:  # noqa: BLE001 - retried, then the payments go to the backup
                if attempt < attempts:
                    time.sleep(WRITE_RETRY_DELAY_S)
                    continue
                # Unknown what it holds: writing blind could overwrite a first version, so back them all up.
                outcome.failed, outcome.error = list(candidates), f"{name} unreachable: {error!r}"
                self._note_failure(name, state, outcome.error, log)
                return outcome
        try:
            outcome.already |= in_backup.result()
        except Exception as error:  # noqa: BLE001 - the store is the truth; this only saves a rewrite
            log.warning(f"backup lookup for {name} failed, carrying on: {error!r}")
        todo = [r for r in candidates if r.payment_id not in outcome.already]
        if not todo:
            return outcome
        def write(records: list[PaymentRecord]) -> int:
            return (store.write_payments(records, prepared=prepared) if prepared is not None
                    else store.write_payments(records))

        error = None
        for attempt in range(1, attempts + 1):
            try:
                outcome.written = write(todo)
                state.accepted.add(name)  # proof the store takes writes (see _isolate)
                return outcome
            except Exception as caught:  # noqa: BLE001 - sorted below: outage or refusal
                error = caught
                outcome.error = f"{name} write failed: {describe(caught)}"
                if attempt < attempts:
                    time.sleep(WRITE_RETRY_DELAY_S)
        if not is_outage(error):
            return self._isolate(name, write, todo, error, outcome, state, log)
        outcome.failed = todo
        self._note_failure(name, state, outcome.error, log)
        return outcome

    def _isolate(self, name: str, write, todo: list[PaymentRecord], error: BaseException, outcome: _StoreOutcome,
                 state: _RangeState, log) -> _StoreOutcome:
        """The store refused the chunk for something other than an outage: bisect it. Halves it accepts are
        written (exactly once, like any write); a payment refused on its own is `rejected` (quarantined by
        _finish). An outage meanwhile, or a store refusing every payment alone, backs the rest up instead."""
        written: set[str] = set()
        groups = [(todo, error)]
        try:
            while groups:
                group, group_error = groups.pop()
                if len(group) == 1:
                    outcome.rejected[group[0].payment_id] = (
                        f"{name} refused it: {describe(group_error)}")
                    if not written and len(outcome.rejected) >= SYSTEMIC_REFUSALS:  # see below
                        raise RuntimeError(f"{name} refused {len(outcome.rejected)} payments one by one and "
                                           f"accepted none: the store is failing, not the messages ({group_error})")
                    continue
                half = len(group) // 2
                for part in (group[half:], group[:half]):  # popped first half first: offsets stay in order
                    try:
                        outcome.written += write(part)
                        written.update(r.payment_id for r in part)
                        state.accepted.add(name)
                    except Exception as part_error:  # noqa: BLE001
                        if is_outage(part_error):
                            raise
                        groups.append((part, part_error))
        except Exception as stop:  # noqa: BLE001 - an outage, or the store refusing everything
            outcome.error = f"{name} write failed: {describe(stop)}"
            outcome.rejected.clear()
            outcome.failed = [r for r in todo if r.payment_id not in written]
            self._note_failure(name, state, outcome.error, log)
            return outcome
        # Refused, with no proof that the store takes anything (it accepted nothing in this range and holds none of
        # the chunk): the store's fault, not the payments'; they wait in the backup (replay sorts out a real poison
        # message there). A re-run whose only payments left are poison finds the store holding the rest.
        if not written and not outcome.already and name not in state.accepted:
            outcome.error = (f"{name} refused the chunk, one payment at a time too, and has accepted nothing in this "
                             f"range: {next(iter(outcome.rejected.values()))}")
            outcome.rejected.clear()
            outcome.failed = list(todo)
            self._note_failure(name, state, outcome.error, log)
            return outcome
        log.warning(f"{name} refused {len(outcome.rejected)} payment(s) on their own (isolated by bisection, to "
                    f"quarantine); {len(written)} others of the chunk written")
        return outcome

    @staticmethod
    def _note_failure(name: str, state: _RangeState, error: str, log) -> None:
        if name not in state.failed_stores:
            log.warning(f"{name} failing: {error}")
        state.failed_stores.add(name)

    def _redis_call(self, state: _RangeState, result: RangeResult, log, method, *args):
        """Redis is best effort: an error is counted and Redis is left alone for the rest of the range."""
        if not state.redis_ok:
            return None
        try:
            return method(*args)
        except Exception as error:  # noqa: BLE001 - Redis is best effort: counted and left alone
            result.redis_errors += 1
            state.redis_ok = False
            log.warning(f"Redis unavailable, ingestion carries on without it for this range: {error!r}")
            return None
