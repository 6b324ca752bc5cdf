"""Drain the failed-payment backup (MongoDB and the local `failed_payments/` folder) into its stores.

For each store, oldest first attempt first, in batches: rebuild each payment from its raw message, write the
batch with the store's own idempotent write (HBase: same row key and cells; Postgres: ON CONFLICT DO NOTHING),
and only then remove it from the backup. A replay killed between the write and the removal writes the same
payment again next time, which changes nothing: a payment lands once.

Errors are sorted as ingestion sorts them (`stores.refusals`, one classification for both):
- an outage (connection refused, timeouts, server gone, a region or capacity problem): retried with backoff, then
  the store's drain stops and its payments stay in the backup (attempts + 1, last error) for the next replay;
- a refusal (the server refuses the write: a Thrift IOError or IllegalArgument, a Postgres DataError, ...; or the
  payment cannot be converted into the store's rows): the batch is split to find the payments refused on their
  own. Each is quarantined with the store's error and leaves the backup, so it never loops forever, but only
  with proof that the store takes writes (the loader's rule): the store accepted another payment in this replay
  run, or, when nothing else was there to accept (a backlog of a few refused payments and nothing else), its
  write probe passed (`probe_writes`: a write the server checks fully and that changes no payment; see each
  store's docstring). Without proof (the probe refused too: a disabled or dropped table, a revoked permission;
  or SYSTEMIC_REFUSALS payments refused one by one and none accepted) the payments stay in the backup with
  "no proof <store> takes writes" and the store's error as their last error, and the run fails naming them, so a
  store refusing everything never quarantines the backlog; the next replay looks again.
A raw message that no longer parses is quarantined without asking any store.

A quarantined payment lands nowhere, as when ingestion isolates a poison message (`loader._settle_poison`): in
this order, each step idempotent, so a replay killed between two steps finishes the job next time (the backup
entry is dropped last and the next replay meets the same refusal again):
  1. quarantine it with the store's error (a row per Kafka position: a second time changes nothing);
  2. take it back out of every other store, only the row written from the same Kafka position (a copy written
     from another message is that message's, and stays), and drop the other stores' backup entries for that same
     position (it must not land there later either); a store that cannot be reached stops the drain here;
  3. forget its Redis "landed" key (best effort: Redis is never a store of record);
  4. drop its backup entry.
Throughput is bounded by `max_rate_per_s` so a large backlog does not starve live ingestion.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

from payment_platform.config import pan_hash_key_from_env
from payment_platform.domain.redaction import redact_text
from payment_platform.stores.records import DATA_STORES, PaymentRecord
from payment_platform.stores.refusals import SYSTEMIC_REFUSALS, describe, is_outage

SAMPLE_SIZE = 20


@dataclass(frozen=True)
class ReplaySettings:
    batch_size: int = 500
    max_rate_per_s: float = 2000.0  # payments per second across the whole replay
    max_payments: int | None = None  # per run; None drains everything
    connection_retries: int = 3
    retry_backoff_s: float = 0.5

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_rate_per_s <= 0:
            raise ValueError(f"max_rate_per_s must be > 0, got {self.max_rate_per_s}")
        if self.connection_retries < 0:
            raise ValueError(f"connection_retries must be >= 0, got {self.connection_retries}")


@dataclass
class StoreOutcome:
    landed: int = 0
    quarantined: int = 0
    left_in_backup: int = 0
    attempts_failed: int = 0
    stopped: str | None = None  # why the drain of this store stopped early
    landed_sample: list[str] = field(default_factory=list)
    quarantined_sample: list[str] = field(default_factory=list)
    # rows of quarantined payments taken back out of the other stores (and their backup entries dropped)
    removed_elsewhere: dict[str, int] = field(default_factory=dict)
    # payments the store refused on their own but kept in the backup: no proof the store takes writes
    refused_unproven: list[str] = field(default_factory=list)


@dataclass
class ReplayResult:
    stores: dict[str, StoreOutcome]
    seconds: float = 0.0

    @property
    def landed(self) -> int:
        return sum(o.landed for o in self.stores.values())

    @property
    def quarantined(self) -> int:
        return sum(o.quarantined for o in self.stores.values())

    def as_metadata(self) -> dict:
        """Stable keys: what the replay landed and quarantined, per store, and what is left."""
        metadata: dict = {"landed": self.landed, "quarantined": self.quarantined,
                          "seconds": round(self.seconds, 3),
                          "rate_per_s": round(self.landed / self.seconds, 1) if self.seconds > 0 else 0.0}
        for store, outcome in sorted(self.stores.items()):
            metadata[f"landed_{store}"] = outcome.landed
            metadata[f"quarantined_{store}"] = outcome.quarantined
            metadata[f"left_in_backup_{store}"] = outcome.left_in_backup
            metadata[f"landed_sample_{store}"] = outcome.landed_sample
            if outcome.quarantined_sample:
                metadata[f"quarantined_sample_{store}"] = outcome.quarantined_sample
            for other, removed in sorted(outcome.removed_elsewhere.items()):
                metadata[f"quarantined_{store}_removed_from_{other}"] = removed
            if outcome.refused_unproven:
                metadata[f"refused_unproven_{store}"] = outcome.refused_unproven[:SAMPLE_SIZE]
            if outcome.stopped:
                metadata[f"stopped_{store}"] = outcome.stopped
        return metadata


Writer = Callable[[Sequence[PaymentRecord]], int]
Remover = Callable[[Sequence[PaymentRecord]], int]  # remove_payments: only rows carrying the record's Kafka position
Probe = Callable[[], object]  # probe_writes: raises unless the store takes writes now, changing no payment
QuarantineSink = Callable[[list[tuple[object, str]]], int]  # [(BackedUpPayment, reason)] -> stored


class Replayer:
    """Drains `backup` into `writers` (store name -> idempotent batch write)."""

    def __init__(self, backup, writers: dict[str, Writer], quarantine: QuarantineSink,
                 settings: ReplaySettings = ReplaySettings(), log=None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 prepare: dict[str, Callable[[], object]] | None = None, salt_buckets: int = 0,
                 removers: dict[str, Remover] | None = None,
                 forget_landed: Callable[[list[str]], object] | None = None,
                 probes: dict[str, Probe] | None = None):
        self.backup = backup
        # store -> probe_writes: the proof a store takes writes when it accepted nothing else in this run
        self.probes = probes or {}
        self._proven: set[str] = set()  # stores that accepted a write (or passed the probe) in this drain
        # store -> remove_payments: a payment quarantined for one store is taken back out of the others
        self.removers = removers or {}
        self.forget_landed = forget_landed  # Redis: a quarantined payment is not landed
        self.salt_buckets = salt_buckets  # HBase row-key layout of the rebuilt records (Postgres keeps the key too)
        self.writers = writers
        self.prepare = prepare or {}  # store -> ensure_schema: a store back empty gets its tables first
        self.quarantine = quarantine
        self.settings = settings
        self.log = log
        self.sleep, self.clock = sleep, clock

    def _info(self, message: str) -> None:
        if self.log is not None:
            self.log.info(message)

    def drain(self, stores: Iterable[str] | None = None) -> ReplayResult:
        started = self.clock()
        budget = self.settings.max_payments
        result = ReplayResult({})
        landed_total = 0
        self._proven = set()
        for store in (list(stores) if stores is not None else [s for s in DATA_STORES if s in self.writers]):
            outcome = result.stores[store] = StoreOutcome()
            if store in self.prepare and self.backup.size(store):
                error = self._with_retries(self.prepare[store])
                if error is not None:
                    outcome.stopped = f"{store} schema not ready: {error!r}"
                    outcome.left_in_backup = self.backup.size(store)
                    continue
            while budget is None or budget > 0:
                limit = self.settings.batch_size if budget is None else min(budget, self.settings.batch_size)
                entries = self.backup.list_oldest(limit, store=store)
                if not entries:
                    break
                before = outcome.landed + outcome.quarantined
                landed_total += self._replay_batch(store, entries, outcome)
                if budget is not None:
                    budget -= len(entries)
                if outcome.stopped:
                    break
                if outcome.landed + outcome.quarantined == before:  # nothing left the backup: never spin
                    outcome.stopped = "no progress"
                    break
                self._respect_rate(started, landed_total)
            outcome.left_in_backup = self.backup.size(store)
            self._info(f"replay {store}: landed {outcome.landed}, quarantined {outcome.quarantined}, "
                       f"left {outcome.left_in_backup}" + (f", stopped: {outcome.stopped}" if outcome.stopped else ""))
        result.seconds = self.clock() - started
        return result

    def _respect_rate(self, started: float, handled: int) -> None:
        earliest = started + handled / self.settings.max_rate_per_s
        wait = earliest - self.clock()
        if wait > 0:
            self.sleep(wait)

    def _keyed(self, record: PaymentRecord) -> PaymentRecord:
        """The record in the HBase layout in use: its row key goes to HBase and to the Postgres ledger."""
        return replace(record, salt_buckets=self.salt_buckets) if self.salt_buckets else record

    def _replay_batch(self, store: str, entries: list, outcome: StoreOutcome) -> int:
        records, unreadable = [], []
        for entry in entries:
            try:
                records.append((entry, self._keyed(entry.record())))
            except Exception as error:  # noqa: BLE001 - a backup entry whose raw message no longer parses
                unreadable.append((entry, None, f"replay to {store}: backed-up message unreadable: {error}"))
        if unreadable:
            self._quarantine(store, unreadable, outcome)
        if not records or outcome.stopped:
            return len(unreadable)
        batch = _Batch()
        self._write(store, records, outcome, batch)
        if batch.refused and not outcome.stopped:
            self._settle_refused(store, batch.refused, outcome)
        return len(entries)

    def _write(self, store: str, records: list[tuple], outcome: StoreOutcome, batch: "_Batch") -> None:
        """Write and bisect; what the store refuses on its own is added to `batch.refused`."""
        writer = self.writers[store]
        error = self._write_with_retries(writer, [r for _, r in records])
        if error is None:
            self._proven.add(store)
            batch.accepted += len(records)
            self._landed(store, [e for e, _ in records], outcome)
            return
        if is_outage(error):
            outcome.stopped = f"{store} unreachable after {self.settings.connection_retries} retries: {error!r}"
            outcome.attempts_failed += len(records)
            try:
                self.backup.record_failures(store, [r for _, r in records], f"replay: {error!r}")
            except Exception:  # noqa: BLE001 - the payments are still in the backup, only the count is stale
                pass
            return
        if len(records) == 1:
            batch.refused.append((*records[0], error))
            if not batch.accepted and len(batch.refused) >= SYSTEMIC_REFUSALS:  # as the loader does per chunk
                self._keep_refused(store, batch.refused, outcome, (
                    f"it refused {len(batch.refused)} payments one by one and accepted none of them: the store (or "
                    f"the code writing to it) is failing, not the payments"))
            return
        middle = len(records) // 2  # split to find the payments the store refuses
        self._write(store, records[:middle], outcome, batch)
        if not outcome.stopped:
            self._write(store, records[middle:], outcome, batch)

    def _settle_refused(self, store: str, refused: list[tuple], outcome: StoreOutcome) -> None:
        """Payments the store refused on their own: quarantined with proof that the store takes writes, else kept."""
        why_not = self._no_proof(store)
        if why_not is not None:
            self._keep_refused(store, refused, outcome, why_not)
            return
        self._quarantine(store, [(entry, record, f"replay to {store} rejected: {describe(error)}")
                                 for entry, record, error in refused], outcome)

    def _no_proof(self, store: str) -> str | None:
        """None when `store` is known to take writes; else why it is not known. The proof is the loader's: the
        store accepted another payment in this run. When it accepted none, the few refused payments may be all
        there was to replay (a lone poison message waits in the backup alone), so the store's write probe decides:
        a write the server checks like any other and that changes no payment (`probe_writes`; a write of a real
        payment would change data, and rewriting a stored one could bring back a row another replay or ingestion
        is removing). A batch with SYSTEMIC_REFUSALS payments refused and none accepted never gets here (`_write`):
        then the store, or the code writing to it, is failing, whatever a probe says."""
        if store in self._proven:
            return None
        probe = self.probes.get(store)
        if probe is None:
            return f"{store} accepted no other payment in this replay and has no write probe"
        error = self._with_retries(probe)
        if error is not None:
            return f"{store} accepted no other payment in this replay and refused its write probe too: {describe(error)}"
        self._proven.add(store)
        self._info(f"replay {store}: accepted no other payment in this replay, but its write probe passed: the "
                   f"table takes writes, so what it refuses on its own is poison")
        return None

    def _keep_refused(self, store: str, refused: list[tuple], outcome: StoreOutcome, why_not: str) -> None:
        """Refused without proof the store takes writes: kept in the backup (its last error says why) and the drain
        of this store stops, naming each payment and the store's error."""
        named = []
        for entry, record, error in refused:
            reason = f"replay: {store} refused it ({describe(error)}); not quarantined: no proof {store} takes writes"
            try:
                self.backup.record_failures(store, [record], f"{reason} ({why_not})")
            except Exception:  # noqa: BLE001 - the payment is still in the backup, only its last error is stale
                pass
            named.append(f"{entry.payment_id} (Kafka {_position_text(entry.position)}): {describe(error)}")
            outcome.refused_unproven.append(entry.payment_id)
        outcome.stopped = (f"{store} refused {len(refused)} payment(s) on their own, kept in the backup, not "
                           f"quarantined: no proof {store} takes writes ({why_not}). Refused: {'; '.join(named)}")
        if self.log is not None:
            self.log.warning(f"replay {store}: {outcome.stopped}")

    def _write_with_retries(self, writer: Writer, records: list[PaymentRecord]) -> BaseException | None:
        return self._with_retries(lambda: writer(records))

    def _with_retries(self, call: Callable[[], object]) -> BaseException | None:
        """None once `call` succeeds; the error when it is a refusal or still an outage after the retries."""
        for attempt in range(self.settings.connection_retries + 1):
            try:
                call()
                return None
            except Exception as error:  # noqa: BLE001 - sorted below
                if not is_outage(error):  # a refusal: asking again gets the same answer
                    return error
                if attempt == self.settings.connection_retries:
                    return error
                self.sleep(self.settings.retry_backoff_s * (2 ** attempt))
        return None  # pragma: no cover

    def _landed(self, store: str, entries: list, outcome: StoreOutcome) -> None:
        for entry in entries:
            self.backup.remove(entry.payment_id, store)
        outcome.landed += len(entries)
        room = SAMPLE_SIZE - len(outcome.landed_sample)
        outcome.landed_sample.extend(e.payment_id for e in entries[:max(room, 0)])

    def _quarantine(self, store: str, rejected: list[tuple], outcome: StoreOutcome) -> None:
        """[(backup entry, its record or None when unreadable, reason)]: quarantined, taken back out of the other
        stores and their backups, forgotten by Redis, and only then dropped from this store's backup (module doc)."""
        self.quarantine([(entry, reason) for entry, _, reason in rejected])
        error = self._take_back(store, rejected, outcome)
        if error is not None:  # still in the backup: the next replay quarantines (no-op) and removes again
            outcome.stopped = (f"{len(rejected)} payment(s) quarantined for {store} could not be taken back out of "
                               f"the other stores: {error!r}; they stay in the backup until that succeeds")
            return
        self._forget_landed([entry.payment_id for entry, _, _ in rejected])
        for entry, _, _ in rejected:
            self.backup.remove(entry.payment_id, store)
        outcome.quarantined += len(rejected)
        room = SAMPLE_SIZE - len(outcome.quarantined_sample)
        outcome.quarantined_sample.extend(e.payment_id for e, _, _ in rejected[:max(room, 0)])
        for entry, _, reason in rejected:
            self._info(f"replay {store}: quarantined payment {entry.payment_id} "
                       f"(Kafka {_position_text(entry.position)}): {redact_text(reason, pan_hash_key_from_env())}")

    def _take_back(self, store: str, rejected: list[tuple], outcome: StoreOutcome) -> BaseException | None:
        """Every other store gives back the rows these very messages wrote (same Kafka position), and its backup
        entries for the same positions are dropped. None when done; the error when a store could not be asked."""
        records = [record for _, record, _ in rejected if record is not None and record.position is not None]
        for other, remove in self.removers.items():
            if other == store:
                continue
            removed = 0
            if records:
                counted: list[int] = []
                error = self._with_retries(lambda remove=remove, counted=counted: counted.append(remove(records)))
                if error is not None:
                    return error
                removed = counted[-1]
            for entry, _, _ in rejected:
                try:
                    pending = self.backup.find(entry.payment_id, other)
                    if pending is not None and entry.position is not None and pending.position == entry.position:
                        self.backup.remove(entry.payment_id, other)
                        removed += 1
                except Exception as error:  # noqa: BLE001 - the backup unreachable: retried by the next replay
                    return error
            if removed:
                outcome.removed_elsewhere[other] = outcome.removed_elsewhere.get(other, 0) + removed
                self._info(f"replay {store}: {removed} quarantined payment(s) taken back out of {other} "
                           f"(rows or backup entries written from the same Kafka positions)")
        return None

    def _forget_landed(self, payment_ids: list[str]) -> None:
        if self.forget_landed is None or not payment_ids:
            return
        try:
            self.forget_landed(payment_ids)
        except Exception as error:  # noqa: BLE001 - Redis is best effort; ingestion never trusts it alone
            if self.log is not None:
                self.log.warning(f"replay: Redis could not forget {len(payment_ids)} quarantined payment(s) as "
                                 f"landed (harmless: ingestion checks the stores): {error!r}")


@dataclass
class _Batch:
    """One batch's write: how many payments the store accepted, and (entry, record, error) it refused alone."""

    accepted: int = 0
    refused: list[tuple] = field(default_factory=list)


def _position_text(position) -> str:
    return f"{position.topic}[{position.partition}]@{position.offset}" if position is not None else "position unknown"


def quarantine_into_ledger(ledger) -> QuarantineSink:
    """Quarantine rejected backup entries in the ledger's `payments_quarantine` table, with the reason."""
    from payment_platform.stores.postgres import QuarantineEntry

    def sink(rejected: list[tuple[object, str]]) -> int:
        return ledger.quarantine([QuarantineEntry(raw=entry.raw, position=entry.position, reason=reason,
                                                  field=None, payment_id=entry.payment_id)
                                  for entry, reason in rejected])
    return sink


def replayer_for(backup, hbase, postgres, settings: ReplaySettings = ReplaySettings(), log=None,
                 redis=None) -> Replayer:
    """A Replayer writing with the store classes' own idempotent writes, proving a store takes writes with its
    `probe_writes`, taking a quarantined payment back out of the other store with its `remove_payments`, and
    forgetting it in `redis` (a RedisState) when given."""
    return Replayer(backup, {"hbase": hbase.write_payments, "postgres": postgres.write_payments},
                    quarantine_into_ledger(postgres), settings, log=log,
                    prepare={"hbase": hbase.ensure_schema, "postgres": postgres.ensure_schema},
                    salt_buckets=hbase.salt_buckets,
                    removers={"hbase": hbase.remove_payments, "postgres": postgres.remove_payments},
                    forget_landed=redis.forget_landed if redis is not None else None,
                    probes={"hbase": hbase.probe_writes, "postgres": postgres.probe_writes})
