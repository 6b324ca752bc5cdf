"""PostgreSQL: the relational payments ledger of record, quarantine, and ingestion progress.

Tables (in `schema`, `public` by default; all created by `ensure_schema()`):
- `payments`: one row per payment, `payment_id` uuid primary key, typed columns (payment_type, amount numeric
  exactly as sent, currency, originator/beneficiary ids and names, status, created_at timestamptz, value_date
  date), `hbase_row_key` (the same payment's row in HBase), `document` jsonb (the message as received), its Kafka
  position (`kafka_topic`, `kafka_partition`, `kafka_offset`) and `ingested_at`.
  Bulk path: COPY into a session temp table, then `INSERT ... SELECT ... ON CONFLICT (payment_id) DO NOTHING`,
  one transaction per chunk (all or nothing), so a payment already there is never changed.
  Indexes for reads: created_at, (originator_id, created_at), (beneficiary_id, created_at).
- `payments_quarantine`: messages that could not be parsed or failed validation: `raw` bytea, `kafka_topic`,
  `kafka_partition`, `kafka_offset` (unique together: re-runs add nothing), `reason` (for a person), `field`,
  `payment_id` (when readable), `kafka_key`, `defect_label` (the producer's `defect` header, for scoring only),
  `quarantined_at`.
- `ingestion_progress` (topic, partition) -> `next_offset`: moves forward contiguously only (see `record_progress`).
- `ingestion_resets`: every time progress was moved by hand or because a broker's offsets went backwards.
- `ingested_ranges`: one row per recorded range with its counts (what checks reconcile range by range).

SQL is composed with `psycopg2.sql` (identifiers) and parameters (values), never string formatting of values.
"""
from __future__ import annotations

import csv
import io
import json
import time
import uuid
from dataclasses import dataclass
from typing import Iterable, Sequence

import psycopg2
import psycopg2.extras
from psycopg2 import sql

from payment_platform.stores.records import KafkaPosition, PaymentRecord

PAYMENT_COLUMNS = (
    "payment_id", "payment_type", "amount", "currency", "originator_id", "originator_name", "beneficiary_id",
    "beneficiary_name", "status", "created_at", "value_date", "hbase_row_key", "document",
    "kafka_topic", "kafka_partition", "kafka_offset",
)

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS {schema}.payments (
    payment_id        uuid PRIMARY KEY,
    payment_type      text NOT NULL,
    amount            numeric NOT NULL,
    currency          char(3) NOT NULL,
    originator_id     text NOT NULL,
    originator_name   text NOT NULL,
    beneficiary_id    text NOT NULL,
    beneficiary_name  text NOT NULL,
    status            text NOT NULL,
    created_at        timestamptz NOT NULL,
    value_date        date,
    hbase_row_key     text NOT NULL,
    document          jsonb NOT NULL,
    kafka_topic       text,
    kafka_partition   integer,
    kafka_offset      bigint,
    ingested_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS payments_created_at_idx ON {schema}.payments (created_at);
CREATE INDEX IF NOT EXISTS payments_originator_created_idx ON {schema}.payments (originator_id, created_at);
CREATE INDEX IF NOT EXISTS payments_beneficiary_created_idx ON {schema}.payments (beneficiary_id, created_at);
-- How many (UTC day, rail, currency, status) groups there are: without it the planner guesses a group per row and
-- sorts the whole table for the daily totals (spilling to disk at a million rows) instead of hashing a few thousand.
CREATE STATISTICS IF NOT EXISTS {schema}.payments_daily_groups (ndistinct)
    ON ((created_at AT TIME ZONE 'UTC')::date), payment_type, currency, status FROM {schema}.payments;
CREATE TABLE IF NOT EXISTS {schema}.payments_quarantine (
    id                bigserial PRIMARY KEY,
    kafka_topic       text,
    kafka_partition   integer,
    kafka_offset      bigint,
    raw               bytea NOT NULL,
    reason            text NOT NULL,
    field             text,
    payment_id        text,
    kafka_key         bytea,
    defect_label      text,
    quarantined_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);
-- full card numbers are redacted before a row is stored (domain.redaction); rows stored before that are redacted
-- by `redact_quarantine` (run by ensure_schema) and marked, so it runs once per row
ALTER TABLE {schema}.payments_quarantine ADD COLUMN IF NOT EXISTS pan_redacted boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS payments_quarantine_unredacted_idx ON {schema}.payments_quarantine (id)
    WHERE NOT pan_redacted;
CREATE TABLE IF NOT EXISTS {schema}.ingestion_progress (
    topic             text NOT NULL,
    partition         integer NOT NULL,
    next_offset       bigint NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS {schema}.ingestion_resets (
    id                bigserial PRIMARY KEY,
    topic             text NOT NULL,
    partition         integer NOT NULL,
    previous_offset   bigint,
    next_offset       bigint NOT NULL,
    reason            text NOT NULL,
    reset_at          timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.ingested_ranges (
    id                bigserial PRIMARY KEY,
    topic             text NOT NULL,
    partition         integer NOT NULL,
    start_offset      bigint NOT NULL,
    end_offset        bigint NOT NULL,
    summary           jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    recorded_at       timestamptz NOT NULL DEFAULT now()
);
"""

SETTLEMENT_SUMMARY_TABLE = "daily_settlement_summary"

_SETTLEMENT_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    settlement_date  date NOT NULL,
    payment_type     text NOT NULL,
    currency         char(3) NOT NULL,
    payments         bigint NOT NULL,
    total_amount     numeric NOT NULL,
    settled          bigint NOT NULL,
    settled_amount   numeric NOT NULL,
    rejected         bigint NOT NULL,
    built_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (settlement_date, payment_type, currency)
)"""

# settlement day: the value date when the payment has one, else its UTC creation day
_SETTLEMENT_BUILD = """
INSERT INTO {table} (settlement_date, payment_type, currency, payments, total_amount, settled, settled_amount, rejected)
SELECT coalesce(value_date, (created_at AT TIME ZONE 'UTC')::date), payment_type, currency, count(*), sum(amount),
       count(*) FILTER (WHERE status = ANY(%(settled)s)),
       coalesce(sum(amount) FILTER (WHERE status = ANY(%(settled)s)), 0),
       count(*) FILTER (WHERE status = ANY(%(rejected)s))
FROM {payments} GROUP BY 1, 2, 3"""


def lock_schema(cursor, schema: str) -> None:
    """Serialises DDL on `schema` until the cursor's transaction ends: `CREATE ... IF NOT EXISTS` is not safe
    against a concurrent twin (both see no table, the second fails on a duplicate type name)."""
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"payment_platform.schema.{schema}",))


class PostgresUnavailable(ConnectionError):
    """PostgreSQL did not answer; the message says why."""


class ProgressConflict(RuntimeError):
    """Recording a range would leave a gap or an overlap in a partition's progress."""


@dataclass(frozen=True)
class QuarantineEntry:
    """A message that cannot be ingested, kept with its raw bytes, position and a reason a person can act on."""

    raw: bytes
    position: KafkaPosition | None
    reason: str
    field: str | None = None
    payment_id: str | None = None
    key: bytes | None = None
    defect_label: str | None = None


def _redact_dsn(dsn: str) -> str:
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except Exception:  # noqa: BLE001 - a DSN libpq cannot parse is still redacted
        return "<unparsable DSN>"
    params.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in params.items())


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except (ValueError, TypeError, AttributeError):
        return False


def payment_csv_row(record: PaymentRecord) -> tuple:
    p = record.payment
    position = record.position
    return (
        p.payment_id, p.payment_type, record.amount_text, p.currency, p.originator.party_id, p.originator.name,
        p.beneficiary.party_id, p.beneficiary.name, p.status, record.created_at_text, p.value_date,
        record.row_key.decode(), record.raw.decode("utf-8"),
        position.topic if position else None,
        position.partition if position else None,
        position.offset if position else None,
    )


# psycopg2 reads the COPY data 8 KiB per call by default, taking the GIL back from the parsing thread each time;
# a chunk's CSV (~3 MB) goes in a few calls instead.
COPY_READ_BYTES = 1 << 20


class PartitionLease:
    """The right to ingest one partition, held by one run at a time: a session-level advisory lock on a
    connection of its own. A run whose process dies loses the connection and with it the lease, at once, so the
    next run takes over without waiting for anyone to judge the dead one. (Progress keeps its own per-transaction
    check in `record_progress`: even two writers could never record a gap or an overlap.)"""

    _KEY = "SELECT {}(hashtext(%s), %s)"

    def __init__(self, dsn: str, topic: str, partition: int, connect_timeout_s: int = 5):
        self.dsn, self.topic, self.partition = dsn, topic, partition
        self.connect_timeout_s = connect_timeout_s
        self._conn = None

    def _call(self, function: str) -> bool:
        with self._conn.cursor() as cur:
            cur.execute(sql.SQL(self._KEY).format(sql.SQL(function)), (f"lease:{self.topic}", self.partition))
            return bool(cur.fetchone()[0])

    def acquire(self, wait_s: float, should_stop=lambda: False, poll_s: float = 0.05) -> bool:
        """Take the lease, waiting up to `wait_s` for the run holding it to let go; False if it did not."""
        deadline = time.monotonic() + wait_s
        try:
            self._conn = psycopg2.connect(self.dsn, connect_timeout=self.connect_timeout_s, application_name=(
                f"payment_platform lease {self.topic}[{self.partition}]"))
            self._conn.autocommit = True
            while not self._call("pg_try_advisory_lock"):
                if time.monotonic() >= deadline or should_stop():
                    self.release()
                    return False
                time.sleep(poll_s)
            return True
        except psycopg2.Error as error:
            self.release()
            raise PostgresUnavailable(f"PostgreSQL {_redact_dsn(self.dsn)}: cannot take the lease of "
                                      f"{self.topic}[{self.partition}]: {str(error).strip()}") from error

    def held(self) -> bool:
        """Whether the lease's session is still alive (a lost session means another run may hold it now)."""
        if self._conn is None or self._conn.closed:
            return False
        try:
            with self._conn.cursor() as cur:
                cur.execute("SELECT 1")
            return True
        except psycopg2.Error:
            return False

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()  # ending the session releases its advisory locks
            except Exception:  # noqa: BLE001 - a broken connection: the server released the lock already
                pass


class PostgresLedger:
    """The payments ledger in PostgreSQL. One connection, opened lazily, reopened after an error."""

    def __init__(self, dsn: str, schema: str = "public", connect_timeout_s: int = 5,
                 statement_timeout_ms: int = 60_000, pan_key: bytes | None = None):
        self.dsn = dsn
        self.pan_key = pan_key  # of PAN fingerprints; PAN_HASH_KEY when None (read on first use)
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_ms = statement_timeout_ms
        self._conn = None

    def __repr__(self) -> str:
        return f"PostgresLedger({_redact_dsn(self.dsn)}, schema={self.schema!r})"

    def _t(self, table: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(table))

    def _open(self, connect_timeout_s: int, statement_timeout_ms: int):
        try:
            return psycopg2.connect(self.dsn, connect_timeout=connect_timeout_s, application_name="payment_platform",
                                    options=f"-c statement_timeout={int(statement_timeout_ms)}")
        except psycopg2.Error as error:
            raise PostgresUnavailable(f"PostgreSQL {_redact_dsn(self.dsn)} unreachable: {str(error).strip()}") from error

    def connection(self):
        if self._conn is None or self._conn.closed:
            self._conn = self._open(self.connect_timeout_s, self.statement_timeout_ms)
        return self._conn

    def reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection: nothing left to close
                pass

    close = reset

    def _run(self, work):
        """Run work(cursor) in one transaction; roll back and drop the connection on any error."""
        conn = self.connection()
        try:
            with conn.cursor() as cur:
                result = work(cur)
            conn.commit()
            return result
        except Exception:
            self._abandon(conn)
            raise

    def _abandon(self, conn) -> None:
        """After an error: roll back what `conn` was doing and drop it (the next call reconnects)."""
        try:
            conn.rollback()
        except Exception:  # noqa: BLE001 - the rollback of a broken connection
            pass
        self.reset()

    # -- schema and health -----------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create the schema, tables and indexes if missing. Idempotent (and safe against concurrent callers)."""
        def work(cur):
            lock_schema(cur, self.schema)
            cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            cur.execute(sql.SQL(_SCHEMA_SQL).format(schema=sql.Identifier(self.schema)))
        self._run(work)
        # bounded, so the sensor's ensure_schema stays quick: a large backlog is finished by the next calls
        self.redact_quarantine(max_batches=2)

    def _pan_key(self) -> bytes:
        if self.pan_key is None:
            from payment_platform.config import pan_hash_key_from_env

            self.pan_key = pan_hash_key_from_env()
        return self.pan_key

    def redact_quarantine(self, batch_size: int = 1000, max_batches: int | None = None) -> dict:
        """Migration: redact the full card numbers of quarantine rows stored before redaction (raw, reason, Kafka
        key), each row once (`pan_redacted`), at most `max_batches` batches (None: all). Idempotent;
        {"examined": n, "redacted": m}."""
        from payment_platform.domain.redaction import redact_message, redact_text

        key = self._pan_key()
        examined = redacted = batches = 0
        while True:
            def work(cur):
                cur.execute(sql.SQL("SELECT id, raw, reason, kafka_key FROM {} WHERE NOT pan_redacted ORDER BY id "
                                    "LIMIT %s FOR UPDATE").format(self._t("payments_quarantine")), (batch_size,))
                rows = cur.fetchall()
                changed = 0
                for row_id, raw, reason, kafka_key in rows:
                    raw, kafka_key = bytes(raw), bytes(kafka_key) if kafka_key is not None else None
                    new_raw, new_reason = redact_message(raw, key), redact_text(reason, key)
                    new_key = redact_message(kafka_key, key) if kafka_key is not None else None
                    changed += (new_raw, new_reason, new_key) != (raw, reason, kafka_key)
                    cur.execute(sql.SQL("UPDATE {} SET raw = %s, reason = %s, kafka_key = %s, pan_redacted = true "
                                        "WHERE id = %s").format(self._t("payments_quarantine")),
                                (psycopg2.Binary(new_raw), new_reason,
                                 psycopg2.Binary(new_key) if new_key is not None else None, row_id))
                return len(rows), changed
            seen, changed = self._run(work)
            examined, redacted, batches = examined + seen, redacted + changed, batches + 1
            if seen < batch_size or (max_batches is not None and batches >= max_batches):
                return {"examined": examined, "redacted": redacted}

    def health(self) -> dict:
        """Raises PostgresUnavailable unless `select 1` answers within a few seconds."""
        conn = self._open(connect_timeout_s=3, statement_timeout_ms=3000)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT current_setting('server_version')")
                version = cur.fetchone()[0]
        except psycopg2.Error as error:
            raise PostgresUnavailable(f"PostgreSQL {_redact_dsn(self.dsn)} did not answer: {error}") from error
        finally:
            conn.close()
        return {"server_version": version, "schema": self.schema}

    # -- payments --------------------------------------------------------------------------------------
    def write_payments(self, records: Sequence[PaymentRecord]) -> int:
        """COPY the records into a temp table and insert the new ones; returns how many were inserted.

        One transaction: on any error nothing of this call is in the ledger and the error is raised.
        """
        if not records:
            return 0
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for record in records:
            writer.writerow(payment_csv_row(record))
        buffer.seek(0)
        columns = sql.SQL(", ").join(map(sql.Identifier, PAYMENT_COLUMNS))

        def work(cur):
            cur.execute(sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS payments_staging (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            ).format(self._t("payments")))
            cur.copy_expert(sql.SQL("COPY payments_staging ({}) FROM STDIN WITH (FORMAT csv)").format(columns)
                            .as_string(cur), buffer, size=COPY_READ_BYTES)
            cur.execute(sql.SQL("INSERT INTO {} ({cols}) SELECT {cols} FROM payments_staging "
                                "ON CONFLICT (payment_id) DO NOTHING").format(self._t("payments"), cols=columns))
            return cur.rowcount
        return self._run(work)

    def probe_writes(self) -> None:
        """Raises (the server's error) unless `payments` takes an insert now; changes nothing.

        Proof that a lone payment Postgres refused is poison and not a table that refuses everything (replay's rule,
        `replay.replayer`): a well-formed row under a fresh id is inserted, so the server checks the table, the
        INSERT permission, a read-only server or transaction, constraints and triggers, and stores the tuple; the
        transaction is then rolled back, so no reader ever sees it and a process killed meanwhile leaves nothing.
        """
        conn = self.connection()
        columns = sql.SQL(", ").join(map(sql.Identifier, PAYMENT_COLUMNS))
        row = (str(uuid.uuid4()), "WRITE_PROBE", "0.01", "EUR", "write-probe", "write probe", "write-probe",
               "write probe", "PROBE", "2000-01-01T00:00:00Z", None, "~write-probe", "{}", None, None, None)
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    self._t("payments"), columns, sql.SQL(", ").join(sql.Placeholder() * len(row))), row)
                if cur.rowcount != 1:
                    raise psycopg2.DataError(f"the write probe inserted {cur.rowcount} rows, not 1")
        except Exception:
            self._abandon(conn)
            raise
        conn.rollback()  # the probe row is never committed

    def remove_payments(self, records: Sequence[PaymentRecord]) -> int:
        """Delete the rows these very messages wrote (same payment id AND Kafka position): a poison payment
        another store refused must land nowhere. Returns how many rows were deleted."""
        rows = [(r.payment_id, r.position.topic, r.position.partition, r.position.offset)
                for r in records if r.position is not None and _is_uuid(r.payment_id)]
        if not rows:
            return 0

        def work(cur):
            deleted = psycopg2.extras.execute_values(cur, sql.SQL(
                "DELETE FROM {} p USING (VALUES %s) AS v(payment_id, topic, part, off) "
                "WHERE p.payment_id = v.payment_id::uuid AND p.kafka_topic = v.topic "
                "AND p.kafka_partition = v.part AND p.kafka_offset = v.off RETURNING 1").format(
                    self._t("payments")).as_string(cur), rows, fetch=True)
            return len(deleted)
        return self._run(work)

    def existing_ids(self, payment_ids: Iterable[str]) -> set[str]:
        """Which of these payment ids are already in the ledger (a string that is not a UUID never is)."""
        ids = [i for i in payment_ids if _is_uuid(i)]
        if not ids:
            return set()

        def work(cur):
            cur.execute(sql.SQL("SELECT payment_id::text FROM {} WHERE payment_id = ANY(%s::uuid[])")
                        .format(self._t("payments")), (ids,))
            return {row[0] for row in cur.fetchall()}
        return self._run(work)

    def get_payment(self, payment_id: str) -> dict | None:
        def work(cur):
            cur.execute(sql.SQL("SELECT * FROM {} WHERE payment_id = %s::uuid").format(self._t("payments")),
                        (payment_id,))
            row = cur.fetchone()
            return dict(zip([d.name for d in cur.description], row)) if row else None
        return self._run(work)

    def count_payments(self) -> int:
        return self._scalar(sql.SQL("SELECT count(*) FROM {}").format(self._t("payments")))

    def _scalar(self, query, params=()):
        def work(cur):
            cur.execute(query, params)
            return cur.fetchone()[0]
        return self._run(work)

    # -- quarantine ------------------------------------------------------------------------------------
    def quarantine(self, entries: Sequence[QuarantineEntry]) -> int:
        """Store quarantined messages; an entry already there (same position) is left as it is.

        Returns how many were newly stored. Raises on failure (the messages are then not settled).
        """
        if not entries:
            return 0
        from payment_platform.domain.redaction import redact_message, redact_text

        key = self._pan_key()  # full card numbers never reach the table (PCI DSS 3.4): raw, reason and key redacted
        rows = [(e.position.topic if e.position else None, e.position.partition if e.position else None,
                 e.position.offset if e.position else None, psycopg2.Binary(redact_message(e.raw, key)),
                 redact_text(e.reason, key), e.field, redact_text(e.payment_id, key),
                 psycopg2.Binary(redact_message(e.key, key)) if e.key is not None else None, e.defect_label, True)
                for e in entries]

        def work(cur):
            inserted = psycopg2.extras.execute_values(cur, sql.SQL(
                "INSERT INTO {} (kafka_topic, kafka_partition, kafka_offset, raw, reason, field, payment_id, "
                "kafka_key, defect_label, pan_redacted) VALUES %s ON CONFLICT (kafka_topic, kafka_partition, kafka_offset) "
                "DO NOTHING RETURNING 1").format(self._t("payments_quarantine")).as_string(cur), rows, fetch=True)
            return len(inserted)
        return self._run(work)

    def count_quarantine(self) -> int:
        return self._scalar(sql.SQL("SELECT count(*) FROM {}").format(self._t("payments_quarantine")))

    def quarantined(self, limit: int = 100) -> list[dict]:
        """The most recent quarantined messages (raw as bytes), newest first."""
        def work(cur):
            cur.execute(sql.SQL("SELECT kafka_topic, kafka_partition, kafka_offset, raw, reason, field, payment_id, "
                                "defect_label, quarantined_at FROM {} ORDER BY id DESC LIMIT %s")
                        .format(self._t("payments_quarantine")), (limit,))
            names = [d.name for d in cur.description]
            return [{**dict(zip(names, row)), "raw": bytes(row[3])} for row in cur.fetchall()]
        return self._run(work)

    def quarantine_page(self, before_id: int | None, limit: int) -> list[dict]:
        """Quarantined messages newest first, those with id < before_id (a cursor) when given."""
        def work(cur):
            cur.execute(sql.SQL("SELECT id, kafka_topic, kafka_partition, kafka_offset, raw, reason, field, payment_id, "
                                "quarantined_at FROM {} WHERE %s::bigint IS NULL OR id < %s ORDER BY id DESC LIMIT %s")
                        .format(self._t("payments_quarantine")), (before_id, before_id, limit))
            names = [d.name for d in cur.description]
            return [{**dict(zip(names, row)), "raw": bytes(row[4])} for row in cur.fetchall()]
        return self._run(work)

    # -- reads (the serving room's fallback when HBase does not answer, and its aggregates) ---------------
    READ_COLUMNS = ("payment_id::text AS payment_id, payment_type, amount::text AS amount, currency, originator_id, "
                    "originator_name, beneficiary_id, beneficiary_name, status, created_at, value_date::text AS "
                    "value_date, hbase_row_key, document, kafka_topic, kafka_partition, kafka_offset, ingested_at")

    def payments_page(self, *, party_role: str | None, party_id: str | None, created_from, created_to,
                      after: tuple | None, limit: int, payment_type: str | None = None, currency: str | None = None,
                      status: str | None = None, min_amount=None, max_amount=None,
                      beneficiary_id: str | None = None) -> list[dict]:
        """Payments exactly newest first, `ORDER BY created_at DESC, payment_id` (the order the read side serves
        from HBase too), of one party (role "originator"/"beneficiary") or of all. `after` continues a previous
        page: (created_at, payment_id) of its last payment, or (a moment, None) for everything before that moment;
        created_from inclusive, created_to exclusive (either may be None)."""
        if party_role is not None:
            column = sql.Identifier({"originator": "originator_id", "beneficiary": "beneficiary_id"}[party_role])
            clauses, params = [sql.SQL("{} = %s").format(column)], [party_id]
        else:
            clauses, params = [], []
        for condition, value in (("created_at >= %s", created_from), ("created_at < %s", created_to),
                                 ("payment_type = %s", payment_type), ("currency = %s", currency),
                                 ("status = %s", status), ("amount >= %s", min_amount), ("amount <= %s", max_amount),
                                 ("beneficiary_id = %s", beneficiary_id)):
            if value is not None:
                clauses.append(sql.SQL(condition))
                params.append(value)
        if after is not None:
            moment, last_id = after
            if last_id is None:
                clauses.append(sql.SQL("created_at < %s"))
                params.append(moment)
            else:
                clauses.append(sql.SQL("(created_at < %s OR (created_at = %s AND payment_id > %s::uuid))"))
                params += [moment, moment, last_id]
        where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")

        def work(cur):
            cur.execute(sql.SQL("SELECT {} FROM {}{} ORDER BY created_at DESC, payment_id LIMIT %s").format(
                sql.SQL(self.READ_COLUMNS), self._t("payments"), where), (*params, limit))
            names = [d.name for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
        return self._run(work)

    def payment_row(self, payment_id: str) -> dict | None:
        """One payment by id, in the columns `payments_page` returns; None if absent."""
        def work(cur):
            cur.execute(sql.SQL("SELECT {} FROM {} WHERE payment_id = %s::uuid").format(
                sql.SQL(self.READ_COLUMNS), self._t("payments")), (payment_id,))
            row = cur.fetchone()
            return dict(zip([d.name for d in cur.description], row)) if row else None
        return self._run(work)

    def daily_totals(self, created_from, created_to, *, payment_type: str | None = None, currency: str | None = None,
                     by_status: bool = False) -> list[tuple]:
        """(day, payment_type, currency, status or None, count, sum as text) per UTC day, oldest day first."""
        clauses, params = [], []
        for condition, value in (("created_at >= %s", created_from), ("created_at < %s", created_to),
                                 ("payment_type = %s", payment_type), ("currency = %s", currency)):
            if value is not None:
                clauses.append(sql.SQL(condition))
                params.append(value)
        where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")
        status = sql.SQL("status") if by_status else sql.SQL("NULL::text")

        def work(cur):
            # grouped by the date itself, made text only for the few result rows (grouping by text is slower)
            cur.execute(sql.SQL("SELECT day::text, payment_type, currency, status, n, total::text FROM ("
                                "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, payment_type, currency, "
                                "{status} AS status, count(*) AS n, sum(amount) AS total FROM {table}{where} "
                                "GROUP BY 1, 2, 3, 4) AS daily ORDER BY day, payment_type, currency, status").format(
                status=status, table=self._t("payments"), where=where), params)
            return cur.fetchall()
        return self._run(work)

    # -- progress --------------------------------------------------------------------------------------
    def read_progress(self, topic: str) -> dict[int, int]:
        """partition -> next offset to ingest; a missing partition has nothing ingested yet."""
        def work(cur):
            cur.execute(sql.SQL("SELECT partition, next_offset FROM {} WHERE topic = %s")
                        .format(self._t("ingestion_progress")), (topic,))
            return {int(p): int(o) for p, o in cur.fetchall()}
        return self._run(work)

    def progress_rows(self, topic: str) -> dict[int, tuple[int, float]]:
        """partition -> (next offset to ingest, when the last range landed as Unix time): for `/metrics`."""
        def work(cur):
            cur.execute(sql.SQL("SELECT partition, next_offset, extract(epoch FROM updated_at) FROM {} "
                                "WHERE topic = %s").format(self._t("ingestion_progress")), (topic,))
            return {int(p): (int(o), float(t)) for p, o, t in cur.fetchall()}
        return self._run(work)

    def _lock_progress(self, cur, topic: str, partition: int):
        """Serialise progress changes of one partition (for this transaction); its progress row, or None."""
        cur.execute(sql.SQL("SELECT pg_advisory_xact_lock(hashtext(%s), %s)"), (topic, partition))
        cur.execute(sql.SQL("SELECT next_offset FROM {} WHERE topic = %s AND partition = %s FOR UPDATE")
                    .format(self._t("ingestion_progress")), (topic, partition))
        return cur.fetchone()

    def _set_next_offset(self, cur, topic: str, partition: int, next_offset: int) -> None:
        cur.execute(sql.SQL(
            "INSERT INTO {} (topic, partition, next_offset) VALUES (%s, %s, %s) ON CONFLICT (topic, partition) "
            "DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()")
            .format(self._t("ingestion_progress")), (topic, partition, next_offset))

    def record_progress(self, topic: str, partition: int, start: int, end: int, summary: dict | None = None) -> bool:
        """Move a partition's progress from `start` to `end` after the range [start, end) is settled.

        Returns True if progress moved, False if it was already at or past `end` (a re-run: a no-op).
        Raises ProgressConflict when the recorded next offset is neither `start` nor >= `end` (a gap or
        an overlap), and for a partition with no progress yet unless `start` is 0: a first range starting
        elsewhere needs `reset_progress` first, so where ingestion began is always on record.
        """
        if not 0 <= start <= end:
            raise ValueError(f"bad range [{start}, {end})")

        def work(cur):
            row = self._lock_progress(cur, topic, partition)
            current = int(row[0]) if row else 0
            if current >= end and (row or end == 0):
                return False
            if current != start:
                raise ProgressConflict(
                    f"{topic}[{partition}]: recorded next offset is {current if row else 'none (0)'}, "
                    f"cannot record [{start}, {end}): that would leave a "
                    f"{'gap' if start > current else 'overlap'}")
            self._set_next_offset(cur, topic, partition, end)
            cur.execute(sql.SQL("INSERT INTO {} (topic, partition, start_offset, end_offset, summary) "
                                "VALUES (%s, %s, %s, %s, %s)").format(self._t("ingested_ranges")),
                        (topic, partition, start, end, json.dumps(summary or {})))
            return True
        return self._run(work)

    def reset_progress(self, topic: str, partition: int, next_offset: int, reason: str) -> None:
        """Set a partition's next offset (offsets went backwards, or ingestion starts past 0) and record why."""
        if next_offset < 0:
            raise ValueError(f"next_offset must be >= 0, got {next_offset}")
        if not reason or not reason.strip():
            raise ValueError("reset_progress needs a reason a person can read")

        def work(cur):
            row = self._lock_progress(cur, topic, partition)
            self._set_next_offset(cur, topic, partition, next_offset)
            cur.execute(sql.SQL("INSERT INTO {} (topic, partition, previous_offset, next_offset, reason) "
                                "VALUES (%s, %s, %s, %s, %s)").format(self._t("ingestion_resets")),
                        (topic, partition, int(row[0]) if row else None, next_offset, reason))
        self._run(work)

    def resets(self, topic: str | None = None, limit: int = 100) -> list[dict]:
        """Recorded progress resets, newest first."""
        def work(cur):
            cur.execute(sql.SQL("SELECT topic, partition, previous_offset, next_offset, reason, reset_at FROM {} "
                                "WHERE %s::text IS NULL OR topic = %s ORDER BY id DESC LIMIT %s")
                        .format(self._t("ingestion_resets")), (topic, topic, limit))
            names = [d.name for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
        return self._run(work)

    # -- daily settlement summary ----------------------------------------------------------------------
    def rebuild_settlement_summary(self, settled_statuses: Sequence[str], rejected_statuses: Sequence[str]) -> dict:
        """Replace `daily_settlement_summary` (per settlement day, rail and currency: payments, total and settled
        amounts, rejections) from `payments` in one transaction, so readers see the old or the new table;
        returns its figures."""
        table = self._t(SETTLEMENT_SUMMARY_TABLE)

        def work(cur):
            cur.execute(sql.SQL(_SETTLEMENT_DDL).format(table=table))
            cur.execute(sql.SQL("DELETE FROM {}").format(table))
            cur.execute(sql.SQL(_SETTLEMENT_BUILD).format(table=table, payments=self._t("payments")),
                        {"settled": list(settled_statuses), "rejected": list(rejected_statuses)})
            cur.execute(sql.SQL("SELECT count(*), coalesce(sum(payments), 0), count(DISTINCT settlement_date), "
                                "min(settlement_date), max(settlement_date) FROM {}").format(table))
            rows, payments_count, days, first, last = cur.fetchone()
            return {"rows": int(rows), "payments": int(payments_count), "days": int(days),
                    "first_day": str(first) if first else "", "last_day": str(last) if last else ""}
        return self._run(work)
