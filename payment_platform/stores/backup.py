"""The failed-payment backup: a payment whose write to a store failed is kept, whole, until replay lands it.

Primary home: MongoDB, database `payments`, collection `failed_payments`, one document per (payment_id, store)
(unique index), fields:
    payment_id, store ("hbase" | "postgres"), raw (the message text exactly as received), document (the parsed
    message), error (the last error), attempts, first_attempt_at, last_attempt_at (UTC datetimes),
    kafka {topic, partition, offset} (or null).
Last resort, when MongoDB fails too: one JSON file per (payment, store) in a local folder (`failed_payments/` by
default): the complete payment as JSON plus the same fields, named
`{store}__{payment_id}.json`, written atomically (temp file, fsync, rename, fsync of the folder).
If neither home can be written, `record_failures` raises BackupUnavailable: the caller must not record progress.

API for replay (oldest first, from both homes):
    list_oldest(limit, store=None) -> [BackedUpPayment]   # .record() rebuilds the PaymentRecord to land again
    size(store=None) -> int ; oldest_age_seconds(store=None) -> float | None ; stats() -> dict
    latest_failure() -> BackedUpPayment | None         # what the latest failed attempt said (checks show it)
    record_failures(store, records, error)                # again after a failed replay attempt: attempts + 1
    remove(payment_id, store) -> bool                     # after the payment landed in that store
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pymongo
from pymongo import UpdateOne

from payment_platform.domain.redaction import redact_document, redact_message, redact_text
from payment_platform.domain.schema import Payment, decode
from payment_platform.stores.records import KafkaPosition, PaymentRecord

DEFAULT_DATABASE = "payments"
DEFAULT_COLLECTION = "failed_payments"
DEFAULT_FALLBACK_DIR = "failed_payments"
FILE_SUFFIX = ".json"
REDACTED_MARKER = ".pan_redacted"  # in the folder once its files stored before redaction are redacted


class BackupUnavailable(RuntimeError):
    """Neither MongoDB nor the local folder could take the backup."""


@dataclass(frozen=True)
class BackedUpPayment:
    payment_id: str
    store: str
    raw: bytes
    error: str
    attempts: int
    first_attempt_at: datetime
    last_attempt_at: datetime
    position: KafkaPosition | None
    location: str  # "mongo" or "file"

    def payment(self) -> Payment:
        return decode(self.raw)

    def record(self) -> PaymentRecord:
        """The record to write to `store` again (structure re-checked: the raw bytes are the source)."""
        return PaymentRecord(self.payment(), self.raw, self.position)


def _utc_now() -> datetime:
    # Mongo keeps milliseconds; truncate so both homes hold the same value.
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


FILE_TIME_MARGIN_S = 0.1  # file modification times advance in kernel ticks (a few ms), not exactly


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile
        return 0.0


def _as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):  # nx-27017 (the embedded MongoDB) hands back a `$set` datetime as text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _position_doc(position: KafkaPosition | None) -> dict | None:
    if position is None:
        return None
    return {"topic": position.topic, "partition": position.partition, "offset": position.offset}


def _position_of(doc: dict | None) -> KafkaPosition | None:
    if not doc:
        return None
    return KafkaPosition(doc["topic"], int(doc["partition"]), int(doc["offset"]))


class FailedPaymentBackup:
    """MongoDB first, a local JSON folder as last resort. Mongo is skipped for `mongo_retry_after_s` seconds after
    it failed, so a dead Mongo costs one timeout per window, not one per chunk."""

    def __init__(self, mongo_uri: str | None, fallback_dir: str | os.PathLike = DEFAULT_FALLBACK_DIR,
                 database: str = DEFAULT_DATABASE, collection: str = DEFAULT_COLLECTION,
                 timeout_ms: int = 3000, mongo_retry_after_s: float = 15.0, pan_key: bytes | None = None):
        self.mongo_uri = mongo_uri
        self.pan_key = pan_key  # of PAN fingerprints; PAN_HASH_KEY when None (read on first use)
        self.fallback_dir = Path(fallback_dir)
        self.database_name, self.collection_name = database, collection
        self.timeout_ms = timeout_ms
        self.mongo_retry_after_s = mongo_retry_after_s
        self._client: pymongo.MongoClient | None = None
        self._indexes_ready = False
        self._mongo_down_until = 0.0
        self.last_mongo_error: str | None = None
        # store -> monotonic time until which Mongo is known to hold nothing for it (saves a round trip per chunk
        # of a busy ingestion while the backup is empty; cleared by this instance's own writes)
        self._empty_until: dict[str, float] = {}
        self.empty_ttl_s = 2.0

    def __repr__(self) -> str:
        return f"FailedPaymentBackup(mongo={'set' if self.mongo_uri else None}, fallback_dir={str(self.fallback_dir)!r})"

    # -- MongoDB ---------------------------------------------------------------------------------------
    def _collection(self):
        if not self.mongo_uri:
            raise BackupUnavailable("no MongoDB URI configured (MONGO_URI)")
        if self._client is None:
            self._client = pymongo.MongoClient(
                self.mongo_uri, serverSelectionTimeoutMS=self.timeout_ms, connectTimeoutMS=self.timeout_ms,
                socketTimeoutMS=self.timeout_ms * 4, appname="payment_platform", tz_aware=True)
        collection = self._client[self.database_name][self.collection_name]
        if not self._indexes_ready:
            collection.create_index([("payment_id", 1), ("store", 1)], unique=True, name="payment_store_unique")
            collection.create_index([("first_attempt_at", 1)], name="first_attempt_at")
            self._indexes_ready = True
        return collection

    def _mongo_usable(self) -> bool:
        return bool(self.mongo_uri) and time.monotonic() >= self._mongo_down_until

    def _mongo_failed(self, error: Exception) -> None:
        self.last_mongo_error = f"{type(error).__name__}: {error}"
        self._mongo_down_until = time.monotonic() + self.mongo_retry_after_s
        if self._client is not None:
            self._client.close()
            self._client = None
            self._indexes_ready = False

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- schema and health -----------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create the fallback folder and Mongo's unique (payment_id, store) index. Raises if Mongo fails."""
        self.fallback_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._indexes_ready = False
            self._collection()
        except Exception as error:
            self._mongo_failed(error)
            raise
        self.redact_stored(max_entries=2000)  # bounded: a large backlog is finished by the next calls

    # -- full card numbers (PCI DSS 3.4) ---------------------------------------------------------------
    def _pan_key(self) -> bytes:
        if self.pan_key is None:
            from payment_platform.config import pan_hash_key_from_env

            self.pan_key = pan_hash_key_from_env()
        return self.pan_key

    def _redacted(self, record: PaymentRecord) -> PaymentRecord:
        raw = redact_message(record.raw, self._pan_key())
        if raw is record.raw:
            return record
        return PaymentRecord(decode(raw), raw, record.position, record.salt_buckets)

    def redact_stored(self, max_entries: int = 0) -> dict:
        """Migration: redact full card numbers in entries stored before redaction (raw, document, error), in
        MongoDB (at most `max_entries` per call, 0: all) and in the folder (once: a marker file remembers the
        pass; entries written since are redacted as written). Idempotent; {"mongo": n, "files": m} rewritten."""
        key = self._pan_key()
        done = {"mongo": 0, "files": 0}
        if self._mongo_usable():
            collection = self._collection()
            # each entry once: entries written since redaction carry pan_redacted
            pending = collection.find({"pan_redacted": {"$ne": True}}, {"raw": 1, "error": 1, "document": 1},
                                      limit=max_entries)
            for doc in list(pending):
                raw = doc.get("raw", "").encode("utf-8")
                new_raw, new_error = redact_message(raw, key), redact_text(doc.get("error", ""), key)
                changed = new_raw is not raw or new_error != doc.get("error", "")
                collection.update_one({"_id": doc["_id"]}, {"$set": {"pan_redacted": True, **({
                    "raw": new_raw.decode("utf-8"), "error": new_error,
                    "document": redact_document(doc.get("document"), key)} if changed else {})}})
                done["mongo"] += changed
        marker_file = self.fallback_dir / REDACTED_MARKER
        if marker_file.exists() or not self.fallback_dir.is_dir():
            return done
        for path in self._files():
            body = json.loads(path.read_text(encoding="utf-8"))
            raw = body.get("raw", "").encode("utf-8")
            new_raw, new_error = redact_message(raw, key), redact_text(body.get("error", ""), key)
            if new_raw is raw and new_error == body.get("error", ""):
                continue
            body.update(raw=new_raw.decode("utf-8"), error=new_error,
                        payment=redact_document(body.get("payment"), key))
            self._write_body(path, body)
            done["files"] += 1
        marker_file.write_text("every entry file here has had its full card numbers redacted\n", encoding="utf-8")
        return done

    def health(self) -> dict:
        """Mongo `ping` and the folder's writability. Raises BackupUnavailable only when neither home works
        (Mongo down alone is reported as degraded: the folder still keeps payments safe)."""
        report: dict = {"fallback_dir": str(self.fallback_dir)}
        try:
            if not self.mongo_uri:
                raise BackupUnavailable("no MongoDB URI configured")
            client = pymongo.MongoClient(self.mongo_uri, serverSelectionTimeoutMS=self.timeout_ms,
                                         connectTimeoutMS=self.timeout_ms, socketTimeoutMS=self.timeout_ms)
            try:
                client.admin.command("ping")
            finally:
                client.close()
            report["mongo"] = "ok"
        except Exception as error:  # noqa: BLE001 - reported in the health report
            report["mongo"] = f"error: {type(error).__name__}: {error}"
        report["fallback_writable"] = self._folder_writable()
        if report["mongo"] != "ok" and not report["fallback_writable"]:
            raise BackupUnavailable(f"backup unavailable: MongoDB {report['mongo']}; "
                                    f"folder {self.fallback_dir} not writable")
        return report

    def _folder_writable(self) -> bool:
        try:
            self.fallback_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.fallback_dir, prefix=".probe-"):
                pass
            return True
        except OSError:
            return False

    # -- writing ---------------------------------------------------------------------------------------
    def record_failures(self, store: str, records: Sequence[PaymentRecord], error: str) -> dict[str, int]:
        """Keep these payments for `store` (upsert: attempts + 1, last error and time updated).

        Returns {"mongo": n, "files": m}. Raises BackupUnavailable if neither home took them all.
        """
        if not records:
            return {"mongo": 0, "files": 0}
        # never a full card number in the backup: the loader redacts already; the store errors may quote values
        records = [self._redacted(r) for r in records]
        error = redact_text(error, self._pan_key())
        self._empty_until.pop(store, None)
        now = _utc_now()
        mongo_error = "MongoDB skipped: " + (self.last_mongo_error or "no URI configured")
        if self._mongo_usable():
            try:
                self._collection().bulk_write([
                    UpdateOne({"payment_id": r.payment_id, "store": store}, {
                        "$setOnInsert": {"payment_id": r.payment_id, "store": store, "first_attempt_at": now,
                                         "raw": r.raw.decode("utf-8"), "document": r.payment.doc,
                                         "pan_redacted": True,
                                         "kafka": _position_doc(r.position)},
                        "$set": {"error": error, "last_attempt_at": now},
                        "$inc": {"attempts": 1},
                    }, upsert=True) for r in records], ordered=False)
                return {"mongo": len(records), "files": 0}
            except Exception as err:  # noqa: BLE001 - any Mongo failure: fall back to the folder
                self._mongo_failed(err)
                mongo_error = self.last_mongo_error or repr(err)
        try:
            for record in records:
                self._write_file(store, record, error, now)
        except OSError as err:
            raise BackupUnavailable(f"backup unavailable for {len(records)} {store} payments: {mongo_error}; "
                                    f"folder {self.fallback_dir}: {err}") from err
        return {"mongo": 0, "files": len(records)}

    def _path(self, store: str, payment_id: str) -> Path:
        return self.fallback_dir / f"{store}__{payment_id}{FILE_SUFFIX}"

    def _write_file(self, store: str, record: PaymentRecord, error: str, now: datetime) -> None:
        self.fallback_dir.mkdir(parents=True, exist_ok=True)
        path = self._path(store, record.payment_id)
        previous = self._read_file(path) if path.exists() else None
        body = {
            "payment_id": record.payment_id, "store": store,
            "payment": record.payment.doc,  # the complete payment as JSON
            "raw": record.raw.decode("utf-8"),
            "error": error,
            "attempts": (previous.attempts if previous else 0) + 1,
            "first_attempt_at": (previous.first_attempt_at if previous else now).isoformat(),
            "last_attempt_at": now.isoformat(),
            "kafka": _position_doc(record.position),
        }
        self._write_body(path, body)

    def _write_body(self, path: Path, body: dict) -> None:
        """One entry file replaced whole and durably (temp file, fsync, rename, fsync of the folder)."""
        fd, tmp = tempfile.mkstemp(dir=self.fallback_dir, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(body, handle, ensure_ascii=False, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        dir_fd = os.open(self.fallback_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # -- reading ---------------------------------------------------------------------------------------
    def _read_file(self, path: Path) -> BackedUpPayment:
        body = json.loads(path.read_text(encoding="utf-8"))
        return BackedUpPayment(
            payment_id=body["payment_id"], store=body["store"], raw=body["raw"].encode("utf-8"),
            error=body.get("error", ""), attempts=int(body.get("attempts", 1)),
            first_attempt_at=_as_utc(datetime.fromisoformat(body["first_attempt_at"])),
            last_attempt_at=_as_utc(datetime.fromisoformat(body["last_attempt_at"])),
            position=_position_of(body.get("kafka")), location="file")

    def _files(self, store: str | None = None) -> list[Path]:
        if not self.fallback_dir.is_dir():
            return []
        prefix = f"{store}__" if store else ""
        return [self.fallback_dir / name for name in os.listdir(self.fallback_dir)
                if name.endswith(FILE_SUFFIX) and not name.startswith(".") and name.startswith(prefix)]

    @staticmethod
    def _from_mongo(doc: dict) -> BackedUpPayment:
        return BackedUpPayment(
            payment_id=doc["payment_id"], store=doc["store"], raw=doc["raw"].encode("utf-8"),
            error=doc.get("error", ""), attempts=int(doc.get("attempts", 1)),
            first_attempt_at=_as_utc(doc["first_attempt_at"]), last_attempt_at=_as_utc(doc["last_attempt_at"]),
            position=_position_of(doc.get("kafka")), location="mongo")

    def stored_ids(self, store: str, payment_ids: Iterable[str]) -> set[str]:
        """Which of these payments the backup already holds for `store` (Mongo if reachable, and the folder)."""
        ids = list(payment_ids)
        found: set[str] = set()
        if not ids:
            return found
        if self._mongo_usable() and time.monotonic() >= self._empty_until.get(store, 0.0):
            try:
                collection = self._collection()
                if collection.find_one({"store": store}, projection={"_id": 1}) is None:
                    self._empty_until[store] = time.monotonic() + self.empty_ttl_s
                else:
                    found |= {d["payment_id"] for d in collection.find(
                        {"store": store, "payment_id": {"$in": ids}}, projection={"payment_id": 1, "_id": 0})}
            except Exception as error:  # noqa: BLE001 - any Mongo failure: the folder is read alone
                self._mongo_failed(error)
        files = self._files(store)
        if files:
            names = {p.name for p in files}
            found |= {i for i in ids if self._path(store, i).name in names}
        return found

    def find(self, payment_id: str, store: str) -> BackedUpPayment | None:
        """The backed-up entry of one payment for `store` (Mongo if reachable, else the folder), or None."""
        if self._mongo_usable():
            try:
                doc = self._collection().find_one({"payment_id": payment_id, "store": store})
                if doc is not None:
                    return self._from_mongo(doc)
            except Exception as error:  # noqa: BLE001 - any Mongo failure: the folder is asked instead
                self._mongo_failed(error)
        path = self._path(store, payment_id)
        try:
            return self._read_file(path) if path.exists() else None
        except (OSError, ValueError, KeyError):
            return None

    def list_oldest(self, limit: int = 100, store: str | None = None) -> list[BackedUpPayment]:
        """Up to `limit` backed-up payments, oldest first attempt first, from Mongo and the folder."""
        entries: list[BackedUpPayment] = []
        query = {"store": store} if store else {}
        if self._mongo_usable():
            try:
                docs = list(self._collection().find(query).sort("first_attempt_at", 1).limit(limit))
            except Exception as error:  # noqa: BLE001 - any Mongo failure: the folder is read alone
                self._mongo_failed(error)
                docs = []
            entries += [self._from_mongo(d) for d in docs]
        for path in self._files(store):
            try:
                entries.append(self._read_file(path))
            except (OSError, ValueError, KeyError):
                continue  # removed meanwhile, or not one of ours
        entries.sort(key=lambda e: e.first_attempt_at)
        return entries[:limit]

    def size(self, store: str | None = None) -> int:
        """Payments held (a payment kept in both homes counts twice until replay removes it)."""
        count = len(self._files(store))
        if self._mongo_usable():
            try:
                count += self._collection().count_documents({"store": store} if store else {})
            except Exception as error:  # noqa: BLE001 - any Mongo failure: the folder is read alone
                self._mongo_failed(error)
        return count

    def oldest_age_seconds(self, store: str | None = None) -> float | None:
        oldest = self.list_oldest(limit=1, store=store)
        if not oldest:
            return None
        return (datetime.now(timezone.utc) - oldest[0].first_attempt_at).total_seconds()

    def latest_failure(self) -> BackedUpPayment | None:
        """The entry whose last attempt failed most recently, from both homes: what the latest write or replay of a
        waiting payment said (e.g. that a store refused it and replay has no proof the store takes writes)."""
        latest: list[BackedUpPayment] = []
        if self._mongo_usable():
            try:
                latest += [self._from_mongo(d) for d in self._collection().find({}).sort("last_attempt_at", -1).limit(1)]
            except Exception as error:  # noqa: BLE001 - any Mongo failure: the folder is read alone
                self._mongo_failed(error)
        # A file is rewritten whole (temp file, rename) at every attempt, so the newest files hold the latest one:
        # only those are read, however many wait in the folder (file times tick coarsely: a small margin).
        stamped = [(_mtime(path), path) for path in self._files()]
        newest = max((stamp for stamp, _ in stamped), default=0.0)
        for stamp, path in stamped:
            if stamp < newest - FILE_TIME_MARGIN_S:
                continue
            try:
                latest.append(self._read_file(path))
            except (OSError, ValueError, KeyError):
                continue  # removed meanwhile, or not one of ours
        return max(latest, key=lambda e: e.last_attempt_at, default=None)

    def stats(self) -> dict:
        """size per store and in total, oldest age in seconds, the latest failure (payment, store, attempts, error)
        when the backup holds any, and whether Mongo answered."""
        by_store = {store: self.size(store) for store in ("hbase", "postgres")}
        latest = self.latest_failure() if sum(by_store.values()) else None
        return {"size": sum(by_store.values()), "by_store": by_store,
                "oldest_age_s": self.oldest_age_seconds(),
                "latest_failure": None if latest is None else {
                    "payment_id": latest.payment_id, "store": latest.store, "attempts": latest.attempts,
                    "error": latest.error, "at": latest.last_attempt_at.isoformat()},
                "mongo_error": self.last_mongo_error if not self._mongo_usable() else None}

    def remove(self, payment_id: str, store: str) -> bool:
        """Forget a payment for `store` in both homes (after it landed there). True if anything was removed."""
        removed = False
        if self._mongo_usable():
            removed = self._collection().delete_one({"payment_id": payment_id, "store": store}).deleted_count > 0
        path = self._path(store, payment_id)
        try:
            path.unlink()
            removed = True
        except FileNotFoundError:
            pass
        return removed


FALLBACK_DIR_SETTING = "FAILED_PAYMENTS_DIR"


def default_fallback_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the folder backup goes when not configured: $FAILED_PAYMENTS_DIR, else `failed_payments/` inside
    $PAYMENT_PLATFORM_DATA_DIR (the stack's data dir), else `./failed_payments`."""
    env = os.environ if env is None else env
    if env.get(FALLBACK_DIR_SETTING, "").strip():
        return Path(env[FALLBACK_DIR_SETTING].strip()).expanduser()
    if env.get("PAYMENT_PLATFORM_DATA_DIR", "").strip():
        return Path(env["PAYMENT_PLATFORM_DATA_DIR"].strip()).expanduser() / DEFAULT_FALLBACK_DIR
    return Path(DEFAULT_FALLBACK_DIR)
