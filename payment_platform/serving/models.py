"""The typed results of the read side. Amounts are decimal strings, times ISO 8601 UTC text (`...Z`), card data
only as stored (token, BIN, last 4: the message never holds more). `to_frame()` gives a pandas DataFrame."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

SOURCE_HBASE, SOURCE_POSTGRES, SOURCE_BACKUP = "hbase", "postgres", "backup"


@dataclass(frozen=True)
class Party:
    party_id: str
    name: str
    country: str | None = None
    identifiers: dict[str, str] = field(default_factory=dict)  # iban/bic, account/routing number, card token/BIN/last4

    def as_dict(self) -> dict:
        return {"party_id": self.party_id, "name": self.name, "country": self.country,
                "identifiers": dict(self.identifiers)}


@dataclass(frozen=True)
class PaymentView:
    payment_id: str
    payment_type: str
    amount: str
    currency: str
    status: str
    created_at: str
    value_date: str | None
    originator: Party
    beneficiary: Party
    reference: str | None = None
    remittance_info: str | None = None
    kafka_position: str | None = None  # topic:partition:offset
    hbase_row_key: str | None = None
    source: str = SOURCE_HBASE  # the store that answered: hbase, postgres, or backup (not landed yet)
    pending_in_backup: list[str] = field(default_factory=list)  # stores whose write of it waits in the backup
    degraded: str | None = None  # why the primary store did not answer (None: it did)

    def as_dict(self) -> dict:
        # by hand: dataclasses.asdict deep-copies recursively, slower than the lookup itself (docs/decisions.md)
        return {"payment_id": self.payment_id, "payment_type": self.payment_type, "amount": self.amount,
                "currency": self.currency, "status": self.status, "created_at": self.created_at,
                "value_date": self.value_date, "originator": self.originator.as_dict(),
                "beneficiary": self.beneficiary.as_dict(), "reference": self.reference,
                "remittance_info": self.remittance_info, "kafka_position": self.kafka_position,
                "hbase_row_key": self.hbase_row_key, "source": self.source,
                "pending_in_backup": list(self.pending_in_backup), "degraded": self.degraded}

    def flat(self) -> dict:
        """One flat row (for tables, CSV and DataFrames)."""
        return {"payment_id": self.payment_id, "created_at": self.created_at, "payment_type": self.payment_type,
                "amount": self.amount, "currency": self.currency, "status": self.status,
                "originator_id": self.originator.party_id, "originator_name": self.originator.name,
                "beneficiary_id": self.beneficiary.party_id, "beneficiary_name": self.beneficiary.name,
                "value_date": self.value_date, "reference": self.reference, "kafka_position": self.kafka_position,
                "source": self.source, "pending_in_backup": ",".join(self.pending_in_backup)}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.flat()])


@dataclass(frozen=True)
class PaymentPage:
    items: list[PaymentView]
    next_cursor: str | None  # None: this was the last page
    source: str  # hbase, or postgres when HBase did not answer
    degraded: str | None = None  # why the answer comes from the fallback store (None: the primary answered)

    def as_dict(self) -> dict:
        return {"items": [p.as_dict() for p in self.items], "next_cursor": self.next_cursor, "source": self.source,
                "degraded": self.degraded, "count": len(self.items)}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([p.flat() for p in self.items], columns=list(_PAYMENT_COLUMNS))


_PAYMENT_COLUMNS = ("payment_id", "created_at", "payment_type", "amount", "currency", "status", "originator_id",
                    "originator_name", "beneficiary_id", "beneficiary_name", "value_date", "reference",
                    "kafka_position", "source", "pending_in_backup")


@dataclass(frozen=True)
class DailyTotal:
    day: str  # YYYY-MM-DD (UTC)
    payment_type: str
    currency: str
    status: str | None  # None unless grouped by status
    count: int
    amount: str  # exact sum, decimal string


@dataclass(frozen=True)
class DailyTotals:
    rows: list[DailyTotal]
    created_from: str | None
    created_to: str | None
    source: str = SOURCE_POSTGRES

    def as_dict(self) -> dict:
        return {"rows": [asdict(r) for r in self.rows], "created_from": self.created_from,
                "created_to": self.created_to, "source": self.source}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.rows], columns=["day", "payment_type", "currency", "status",
                                                                      "count", "amount"])


@dataclass(frozen=True)
class QuarantinedMessage:
    id: int
    reason: str
    field: str | None
    payment_id: str | None
    kafka_position: str | None  # topic:partition:offset
    raw_text: str  # the raw bytes as text (undecodable bytes shown as U+FFFD)
    quarantined_at: str


@dataclass(frozen=True)
class QuarantinePage:
    items: list[QuarantinedMessage]
    next_cursor: str | None

    def as_dict(self) -> dict:
        return {"items": [asdict(q) for q in self.items], "next_cursor": self.next_cursor, "count": len(self.items)}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(q) for q in self.items], columns=["id", "reason", "field", "payment_id",
                                                                       "kafka_position", "raw_text", "quarantined_at"])


@dataclass(frozen=True)
class BackupItem:
    payment_id: str
    store: str
    error: str
    attempts: int
    first_attempt_at: str
    last_attempt_at: str
    kafka_position: str | None
    location: str  # mongo or file


@dataclass(frozen=True)
class BackupStore:
    store: str
    size: int
    oldest_age_s: float | None
    items: list[BackupItem]


@dataclass(frozen=True)
class BackupReport:
    stores: list[BackupStore]
    mongo_error: str | None

    def as_dict(self) -> dict:
        return {"stores": [asdict(s) for s in self.stores], "mongo_error": self.mongo_error,
                "size": sum(s.size for s in self.stores)}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(item) for s in self.stores for item in s.items],
                            columns=["payment_id", "store", "error", "attempts", "first_attempt_at",
                                     "last_attempt_at", "kafka_position", "location"])
