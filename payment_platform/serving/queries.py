"""The read side's one query module: plain Python over the store clients (no Dagster, no web framework).

HBase serves point and range reads: by id through `payments_by_id`, by party and time through the party indexes,
by time through the `payments` row key. Postgres serves aggregates, the quarantine, and answers for HBase when
HBase does not (the page then says `source="postgres"` and why in `degraded`). The failed-payment backup is asked
for every payment looked up by id, so one still waiting there is found and marked.

Not thread-safe (each store client holds one connection): one PaymentQueries per thread.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Callable, Iterator

from payment_platform.config import pan_hash_key_from_env
from payment_platform.domain.redaction import redact_message, redact_text
from payment_platform.domain.rowkeys import (KEY_END, STAMP_FORMAT, STAMP_LENGTH, party_prefix, row_key,
                                             stamp_in_party_key, stamp_of, unsalted)
from payment_platform.domain.schema import PARTY_FIELDS
from payment_platform.serving import cursor as cursors
from payment_platform.serving import params
from payment_platform.serving.models import (SOURCE_BACKUP, SOURCE_HBASE, SOURCE_POSTGRES, BackupItem, BackupReport,
                                             BackupStore, DailyTotal, DailyTotals, Party, PaymentPage, PaymentView,
                                             QuarantinedMessage, QuarantinePage)
from payment_platform.serving.params import InvalidParameter, PaymentFilter
from payment_platform.stores.hbase import Q_CREATED_AT, decode_row

IDENTIFIER_FIELDS = PARTY_FIELDS[3:]  # iban/bic, account/routing number, card token/BIN/last 4: all a message holds
HBASE_RETRY_AFTER_S = 5.0  # after HBase failed, answer from Postgres without asking it again for this long
# A filtered page stops after examining this many index rows even if it is not full (its cursor continues there),
# so a filter that matches little cannot make one request scan a whole party.
SCAN_BUDGET_MIN = 5_000
SCAN_BUDGET_PER_ITEM = 20


class StoreUnavailable(RuntimeError):
    """A store needed for the answer did not answer (`stores` names it, or them)."""

    def __init__(self, stores: list[str], detail: str):
        self.stores, self.detail = stores, detail
        super().__init__(f"{' and '.join(stores)} unavailable: {detail}")


class NotFound(LookupError):
    """No payment with that id in any store or in the backup."""


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


def _position(topic, partition, offset) -> str | None:
    return f"{topic}:{partition}:{offset}" if topic is not None and offset is not None else None


def _document(raw) -> dict:
    if isinstance(raw, dict):
        return raw
    try:
        doc = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _party(doc: dict, role: str, party_id: str | None, name: str | None) -> Party:
    section = doc.get(role) if isinstance(doc.get(role), dict) else {}
    identifiers = {k: section[k] for k in IDENTIFIER_FIELDS if isinstance(section.get(k), str)}
    return Party(party_id if party_id is not None else str(section.get("party_id", "")),
                 _shown(name if name is not None else str(section.get("name", ""))),
                 section.get("country") if isinstance(section.get("country"), str) else None, identifiers)


def _optional_text(doc: dict, key: str) -> str | None:
    value = doc.get(key)
    return _shown(value) if isinstance(value, str) else None


def _shown(text: str | None) -> str | None:
    """Free text as it may be shown: a full card number in it redacted (stored before redaction existed, or
    arrived by a path that did not redact): the read side never shows one, whatever the stores hold."""
    return redact_text(text, pan_hash_key_from_env()) if text else text


def view_from_hbase(cells: dict[bytes, bytes], row_key: bytes, source: str = SOURCE_HBASE) -> PaymentView:
    row = decode_row(cells)
    doc = _document(row.get("raw"))
    return PaymentView(
        payment_id=row.get("paymentId", ""), payment_type=row.get("paymentType", ""),
        amount=row.get("amountValue", ""), currency=row.get("amountCurrency", ""), status=row.get("status", ""),
        created_at=row.get("createdAt", ""), value_date=row.get("valueDate"),
        originator=_party(doc, "originator", row.get("originatorId"), row.get("originatorName")),
        beneficiary=_party(doc, "beneficiary", row.get("beneficiaryId"), row.get("beneficiaryName")),
        reference=_optional_text(doc, "reference"), remittance_info=_optional_text(doc, "remittance_info"),
        kafka_position=row.get("kafkaPosition"), hbase_row_key=row_key.decode("utf-8", "replace"), source=source)


def view_from_postgres(row: dict) -> PaymentView:
    doc = _document(row.get("document"))
    return PaymentView(
        payment_id=row["payment_id"], payment_type=row["payment_type"], amount=row["amount"],
        currency=row["currency"], status=row["status"], created_at=_iso(row["created_at"]),
        value_date=row.get("value_date"),
        originator=_party(doc, "originator", row["originator_id"], row["originator_name"]),
        beneficiary=_party(doc, "beneficiary", row["beneficiary_id"], row["beneficiary_name"]),
        reference=_optional_text(doc, "reference"), remittance_info=_optional_text(doc, "remittance_info"),
        kafka_position=_position(row.get("kafka_topic"), row.get("kafka_partition"), row.get("kafka_offset")),
        hbase_row_key=row.get("hbase_row_key"), source=SOURCE_POSTGRES)


def view_from_backup(entry, pending: list[str], salt_buckets: int = 0) -> PaymentView:
    """A payment known only to the backup (no store holds it yet), rebuilt from its raw message; its HBase key is
    the one it will have in the layout with `salt_buckets` (HBASE_SALT_BUCKETS)."""
    record = entry.record()
    p = record.payment
    doc = p.doc
    position = entry.position
    return PaymentView(
        payment_id=p.payment_id, payment_type=p.payment_type, amount=record.amount_text, currency=p.currency,
        status=p.status, created_at=record.created_at_text, value_date=p.value_date,
        originator=_party(doc, "originator", p.originator.party_id, p.originator.name),
        beneficiary=_party(doc, "beneficiary", p.beneficiary.party_id, p.beneficiary.name),
        reference=_optional_text(doc, "reference"), remittance_info=_optional_text(doc, "remittance_info"),
        kafka_position=_position(position.topic, position.partition, position.offset) if position else None,
        hbase_row_key=row_key(p, salt_buckets).decode(), source=SOURCE_BACKUP, pending_in_backup=pending)


def _matches(view: PaymentView, f: PaymentFilter, low: str | None, high: str | None) -> bool:
    """The exact checks a key range cannot make: sub-second window edges, the party (an id may hold '_'), values."""
    if (low is not None and view.created_at < low) or (high is not None and view.created_at >= high):
        return False
    if f.originator_id is not None and view.originator.party_id != f.originator_id:
        return False
    if f.beneficiary_id is not None and view.beneficiary.party_id != f.beneficiary_id:
        return False
    if (f.payment_type and view.payment_type != f.payment_type) or (f.currency and view.currency != f.currency) \
            or (f.status and view.status != f.status):
        return False
    if f.min_amount is not None or f.max_amount is not None:
        try:
            value = Decimal(view.amount)
        except ArithmeticError:
            return False
        if (f.min_amount is not None and value < f.min_amount) or (f.max_amount is not None and value > f.max_amount):
            return False
    return True


def exact_order(views: list[PaymentView]) -> list[PaymentView]:
    """Newest first by created_at (ISO text of fixed width: text order is time order), ties by payment_id."""
    ordered = sorted(views, key=lambda v: v.payment_id)
    ordered.sort(key=lambda v: v.created_at, reverse=True)  # stable: equal times keep the id order
    return ordered


def _stamp_of_text(created_at: str) -> str:
    """`yyyyMMddHHmmss` of a created_at text `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
    t = created_at
    return t[0:4] + t[5:7] + t[8:10] + t[11:13] + t[14:16] + t[17:19]


@dataclass(frozen=True)
class Position:
    """Where a page of payments stopped: the second (`yyyyMMddHHmmss`) and, inside it, the last payment served
    (created_at text, payment_id); both None: the whole second was served."""

    stamp: str
    created_at: str | None
    payment_id: str | None

    @classmethod
    def after(cls, view: PaymentView) -> "Position":
        return cls(_stamp_of_text(view.created_at), view.created_at, view.payment_id)

    def precedes(self, view: PaymentView) -> bool:
        """True when `view` comes after this position in the listing order (not served yet)."""
        if self.created_at is None:
            return _stamp_of_text(view.created_at) < self.stamp
        return view.created_at < self.created_at or (view.created_at == self.created_at
                                                      and view.payment_id > self.payment_id)

    def for_postgres(self) -> tuple:
        """(created_at, payment_id) to continue after, or (start of the second, None) when it was served whole."""
        if self.created_at is None:
            return datetime.strptime(self.stamp, STAMP_FORMAT).replace(tzinfo=timezone.utc), None
        return datetime.fromisoformat(self.created_at.replace("Z", "+00:00")), self.payment_id

    def __iter__(self):
        return iter((self.stamp, self.created_at, self.payment_id))


def _position_of(value) -> Position | None:
    """The Position a cursor holds (None: first page); InvalidParameter("cursor") if it holds anything else."""
    if value is None:
        return None
    if (len(value) != 3 or not isinstance(value[0], str) or len(value[0]) != STAMP_LENGTH or not value[0].isdigit()
            or not all(v is None or isinstance(v, str) for v in value[1:]) or (value[1] is None) != (value[2] is None)):
        raise InvalidParameter("cursor", "not a cursor of this kind of page")
    if value[1] is not None:
        try:
            datetime.fromisoformat(value[1].replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameter("cursor", "not a cursor of this kind of page") from None
    return Position(*value)


class PaymentQueries:
    """Every read the platform answers, over the store clients it is given (any may be None: not configured)."""

    def __init__(self, hbase=None, postgres=None, backup=None, *, hbase_retry_after_s: float = HBASE_RETRY_AFTER_S,
                 clock: Callable[[], float] = time.monotonic):
        self.hbase, self.postgres, self.backup = hbase, postgres, backup
        self.hbase_retry_after_s = hbase_retry_after_s
        self.clock = clock
        self._hbase_down_until = 0.0
        self._hbase_error: str | None = None

    @classmethod
    def from_endpoints(cls, endpoints, backup_dir=None, timeout_s: float = 3.0) -> "PaymentQueries":
        """Clients for the configured services (`payment_platform.config.endpoints_from_env()`)."""
        from payment_platform.stores.backup import FailedPaymentBackup, default_fallback_dir
        from payment_platform.stores.hbase import HBaseStore
        from payment_platform.stores.postgres import PostgresLedger

        ms = int(timeout_s * 1000)
        hbase = HBaseStore(endpoints.hbase_host, endpoints.hbase_port, endpoints.hbase_transport,
                           endpoints.hbase_protocol, timeout_ms=ms, health_timeout_ms=ms) if endpoints.hbase else None
        postgres = PostgresLedger(endpoints.postgres, connect_timeout_s=max(1, round(timeout_s)),
                                  statement_timeout_ms=max(ms, 30_000)) if endpoints.postgres else None
        backup = FailedPaymentBackup(endpoints.mongo, backup_dir or default_fallback_dir(), timeout_ms=ms)
        return cls(hbase, postgres, backup)

    def close(self) -> None:
        for client in (self.hbase, self.postgres, self.backup):
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass

    # -- store calls -----------------------------------------------------------------------------------
    def _hbase_call(self, work):
        """work(hbase); raises StoreUnavailable(["hbase"]) when HBase does not answer (and for a few seconds
        after, without asking it: a dead server then costs one timeout, not one per request)."""
        if self.hbase is None:
            raise StoreUnavailable(["hbase"], "not configured (HBASE_HOST)")
        if self.clock() < self._hbase_down_until:
            raise StoreUnavailable(["hbase"], self._hbase_error or "down")
        try:
            return work(self.hbase)
        except Exception as error:  # noqa: BLE001 - any failure to answer (socket, Thrift, missing table)
            self.hbase.reset()
            self._hbase_error = f"HBase {self.hbase.address}: {type(error).__name__}: {str(error)[:300]}"
            self._hbase_down_until = self.clock() + self.hbase_retry_after_s
            raise StoreUnavailable(["hbase"], self._hbase_error) from error

    def _postgres_call(self, work):
        if self.postgres is None:
            raise StoreUnavailable(["postgres"], "not configured (POSTGRES_DSN)")
        try:
            return work(self.postgres)
        except Exception as error:  # noqa: BLE001 - unreachable, timed out, schema missing
            raise StoreUnavailable(["postgres"], f"PostgreSQL: {type(error).__name__}: "
                                                 f"{str(error).strip()[:300]}") from error

    def _pending(self, payment_id: str) -> list[str]:
        """Stores whose write of this payment waits in the backup."""
        if self.backup is None:
            return []
        pending = []
        for store in (SOURCE_HBASE, SOURCE_POSTGRES):
            try:
                if self.backup.stored_ids(store, [payment_id]):
                    pending.append(store)
            except Exception:  # noqa: BLE001 - the backup is extra information here, never a reason to fail
                continue
        return pending

    def _backup_entry(self, payment_id: str, stores: list[str]):
        for store in stores:
            entry = self.backup.find(payment_id, store)
            if entry is not None:
                return entry
        return None

    # -- by id -----------------------------------------------------------------------------------------
    def payment(self, payment_id) -> PaymentView:
        """One payment by id: HBase (two gets), else Postgres, else the backup. Raises NotFound, or
        StoreUnavailable when no store answered and the backup does not hold it."""
        pid = params.payment_id(payment_id)
        pending = self._pending(pid)
        down: list[str] = []
        details: list[str] = []
        try:
            found = self._hbase_call(lambda h: self._hbase_get(h, pid))
            if found is not None:
                return _with(found, pending_in_backup=pending)
        except StoreUnavailable as error:
            down.append("hbase")
            details.append(error.detail)
        try:
            row = self._postgres_call(lambda p: p.payment_row(pid))
            if row is not None:
                return _with(view_from_postgres(row), pending_in_backup=pending,
                             degraded=details[0] if details else None)
        except StoreUnavailable as error:
            down.append("postgres")
            details.append(error.detail)
        if pending:
            entry = self._backup_entry(pid, pending)
            if entry is not None:
                return _with(view_from_backup(entry, pending, self._salt_buckets()), degraded="; ".join(details) or None)
        if len(down) == 2 or (down == ["hbase"] and self.postgres is None):
            raise StoreUnavailable(down, "; ".join(details))
        raise NotFound(f"no payment {pid} in HBase, Postgres or the failed-payment backup"
                       + (f" ({'; '.join(details)})" if details else ""))

    def _salt_buckets(self) -> int:
        if self.hbase is not None:
            return self.hbase.salt_buckets
        from payment_platform.config import salt_buckets_from_env

        return salt_buckets_from_env()

    @staticmethod
    def _hbase_get(hbase, pid: str) -> PaymentView | None:
        key = hbase.row_key_for(pid)
        if key is None:
            return None
        cells = hbase.payment_rows([key]).get(key)
        return view_from_hbase(cells, key) if cells else None

    # -- lists -----------------------------------------------------------------------------------------
    def list_payments(self, *, originator_id=None, beneficiary_id=None, created_from=None, created_to=None,
                      payment_type=None, currency=None, status=None, min_amount=None, max_amount=None,
                      limit=None, cursor=None) -> PaymentPage:
        """Payments newest first: one party's (originator preferred when both are given) through its HBase index,
        or every party's through the `payments` row key; a window (created_from inclusive, created_to exclusive)
        and filters. Postgres answers, marked degraded, when HBase does not."""
        f = PaymentFilter.parse(originator_id=originator_id, beneficiary_id=beneficiary_id,
                                created_from=created_from, created_to=created_to, payment_type=payment_type,
                                currency=currency, status=status, min_amount=min_amount, max_amount=max_amount)
        size = params.limit(limit)
        scope = "payments|" + f.scope()
        after = _position_of(cursors.decode(cursor, scope, kind=list))
        role, party = (("originator", f.originator_id) if f.originator_id is not None else
                       ("beneficiary", f.beneficiary_id) if f.beneficiary_id is not None else (None, None))
        low, high = self._key_bounds(f, party)
        if after is not None:
            prefix = party_prefix(party) if party is not None else b""
            second = prefix + after.stamp.encode()
            if not (low[:len(second)] <= second <= high):
                raise InvalidParameter("cursor", "points outside this query's window")
            # the cursor's second is read again (what is left of it) unless the whole second was served
            high = min(high, second + KEY_END if after.created_at is not None else second)
        try:
            items, last = self._hbase_call(lambda h: self._page_from_hbase(h, f, role, low, high, size, after))
            source, degraded = SOURCE_HBASE, None
        except StoreUnavailable as error:
            items, last = self._page_from_postgres(f, role, party, after, size, error)
            source, degraded = SOURCE_POSTGRES, error.detail
        next_cursor = cursors.encode(scope, list(last)) if last is not None else None
        return PaymentPage(items=items, next_cursor=next_cursor, source=source, degraded=degraded)

    @staticmethod
    def _key_bounds(f: PaymentFilter, party: str | None) -> tuple[bytes, bytes]:
        """[low, high) of the keys that can hold the window: a party index range, or a `payments` range."""
        prefix = party_prefix(party) if party is not None else b""
        low = prefix + (stamp_of(f.created_from).encode() if f.created_from else b"")
        high = prefix + (stamp_of(f.created_to).encode() if f.created_to else b"") + KEY_END
        return low, high

    @staticmethod
    def _window_text(f: PaymentFilter) -> tuple[str | None, str | None]:
        return _iso(f.created_from), _iso(f.created_to)

    def _page_from_hbase(self, hbase, f: PaymentFilter, role: str | None, low: bytes, high: bytes, size: int,
                         after: Position | None):
        """(items, position to continue after or None) from HBase, exactly newest first, keys in [low, high).

        Keys order payments only to the second, so the rows of one second are read whole and sorted by
        (created_at desc, payment_id asc) before any of them is served; a page ends inside a second when it must,
        and its cursor (second, created_at, payment_id) resumes in that same second."""
        lo_text, hi_text = self._window_text(f)
        filtered = any(v is not None for v in (f.payment_type, f.currency, f.status, f.min_amount, f.max_amount)) \
            or (role == "originator" and f.beneficiary_id is not None)
        budget = max(SCAN_BUDGET_MIN, SCAN_BUDGET_PER_ITEM * size)
        items: list[PaymentView] = []
        group: list[PaymentView] = []
        group_stamp: str | None = None
        examined = 0

        def flush() -> None:
            for view in exact_order(group):
                if after is not None and not after.precedes(view):
                    continue  # served by an earlier page (the cursor's own second)
                if _matches(view, f, lo_text, hi_text):
                    items.append(view)
            group.clear()

        stamp_of_key = stamp_in_party_key if role is not None else (lambda key: key[:STAMP_LENGTH].decode())
        for key, view in self._scan_views(hbase, role, low, high, size if not filtered else min(1000, size * 4)):
            stamp = stamp_of_key(key)
            if stamp != group_stamp and group_stamp is not None:
                flush()
                if len(items) >= size:  # a further row exists: the page is full and continues after its last item
                    return items[:size], Position.after(items[size - 1])
                if examined >= budget:  # not full, but this request has read enough: continue before that second
                    return items, Position(group_stamp, None, None)
            group_stamp = stamp
            examined += 1
            if view is not None:
                group.append(view)
        flush()
        if len(items) > size:
            return items[:size], Position.after(items[size - 1])
        return items, None

    def _scan_views(self, hbase, role: str | None, low: bytes, high: bytes, batch: int) -> Iterator[tuple]:
        """(position key, PaymentView or None for an index entry whose row is missing), newest first."""
        if role is None:
            for key, cells in hbase.scan_time_window(low, high, newest_first=True, batch_size=batch + 1):
                # the position (cursor) is the unsalted key: the window's bounds are time keys in any layout
                yield unsalted(key, hbase.salt_buckets), view_from_hbase(cells, key) if Q_CREATED_AT in cells else None
            return
        entries = hbase.scan_party_index(role, low, high, newest_first=True, batch_size=batch + 1)
        while True:
            group = []
            for entry in entries:
                group.append(entry)
                if len(group) > batch:
                    break
            if not group:
                return
            rows = hbase.payment_rows([payment_key for _, payment_key in group])
            for index_key, payment_key in group:
                cells = rows.get(payment_key)
                yield index_key, view_from_hbase(cells, payment_key) if cells else None
            if len(group) <= batch:
                return

    def _page_from_postgres(self, f: PaymentFilter, role: str | None, party: str | None, after: Position | None,
                            size: int, hbase_error: StoreUnavailable):
        """The same page from Postgres (`ORDER BY created_at DESC, payment_id`), continuing the same cursors."""
        try:
            rows = self._postgres_call(lambda p: p.payments_page(
                party_role=role, party_id=party, created_from=f.created_from, created_to=f.created_to,
                after=None if after is None else after.for_postgres(),
                limit=size + 1, payment_type=f.payment_type, currency=f.currency, status=f.status,
                min_amount=f.min_amount, max_amount=f.max_amount,
                beneficiary_id=f.beneficiary_id if role == "originator" else None))
        except StoreUnavailable as error:
            raise StoreUnavailable(["hbase", "postgres"], f"{hbase_error.detail}; {error.detail}") from error
        items = [view_from_postgres(row) for row in rows[:size]]
        return items, Position.after(items[-1]) if len(rows) > size else None

    # -- aggregates and operators ----------------------------------------------------------------------
    def daily_totals(self, *, created_from=None, created_to=None, payment_type=None, currency=None,
                     by_status=False) -> DailyTotals:
        """Count and exact sum per UTC day x rail x currency (x status when by_status), from Postgres."""
        start, end = params.window(created_from, created_to)
        rail, code = params.rail(payment_type), params.currency_code(currency)
        rows = self._postgres_call(lambda p: p.daily_totals(start, end, payment_type=rail, currency=code,
                                                            by_status=bool(by_status)))
        return DailyTotals([DailyTotal(day, rail_, cur.strip(), st, int(count), total)
                            for day, rail_, cur, st, count, total in rows], _iso(start), _iso(end))

    def quarantine(self, *, limit=None, cursor=None) -> QuarantinePage:
        """Quarantined messages newest first: reason, Kafka position, raw bytes as text."""
        size = params.limit(limit)
        before = cursors.decode(cursor, "quarantine", kind=int)
        rows = self._postgres_call(lambda p: p.quarantine_page(before, size + 1))
        key = pan_hash_key_from_env()
        items = [QuarantinedMessage(
            id=int(r["id"]), reason=redact_text(r["reason"], key), field=r["field"],
            payment_id=redact_text(r["payment_id"], key),
            kafka_position=_position(r["kafka_topic"], r["kafka_partition"], r["kafka_offset"]),
            raw_text=redact_message(bytes(r["raw"]), key).decode("utf-8", "replace"),
            quarantined_at=_iso(r["quarantined_at"]))
            for r in rows[:size]]
        next_cursor = cursors.encode("quarantine", items[-1].id) if len(rows) > size else None
        return QuarantinePage(items, next_cursor)

    def backup_report(self, *, limit=None) -> BackupReport:
        """The failed-payment backup per store: size, age of the oldest entry, the oldest `limit` entries."""
        size = params.limit(limit)
        if self.backup is None:
            raise StoreUnavailable(["backup"], "not configured")
        stores = []
        for store in (SOURCE_HBASE, SOURCE_POSTGRES):
            entries = self.backup.list_oldest(size, store=store)
            stores.append(BackupStore(store, self.backup.size(store), self.backup.oldest_age_seconds(store), [
                BackupItem(e.payment_id, e.store, _shown(e.error), e.attempts, _iso(e.first_attempt_at),
                           _iso(e.last_attempt_at),
                           _position(e.position.topic, e.position.partition, e.position.offset) if e.position else None,
                           e.location) for e in entries]))
        return BackupReport(stores, self.backup.last_mongo_error)


def _with(view: PaymentView, **changes) -> PaymentView:
    return replace(view, **changes)
