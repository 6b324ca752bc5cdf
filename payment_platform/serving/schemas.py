"""The REST API's answers as pydantic models: what `/openapi.json` publishes, so clients can be generated from it.

The routes serialise their answers by hand (`models.*.as_dict()`: validating a returned dict costs more than the
store reads); these models describe exactly those dicts, and the suite proves it (schemathesis against the live API).
"""
from __future__ import annotations

from pydantic import BaseModel, Field

SOURCE_TEXT = ("The store that answered: `hbase` (primary), `postgres` (HBase did not answer: see `degraded`), or "
               "`backup` (not landed in any store yet, known only to the failed-payment backup).")


class ErrorBody(BaseModel):
    """Every error: what is wrong, and the parameter (or header) to fix when the caller can fix it."""

    error: str
    parameter: str | None = None
    stores: list[str] | None = Field(None, description="503 only: the stores that did not answer")


class PartyOut(BaseModel):
    party_id: str
    name: str = Field(description="As sent, except that a full card number found in it is redacted "
                                  "(`[PAN REDACTED ...]`)")
    country: str | None
    identifiers: dict[str, str] = Field(description="Account identifiers of the rail, exactly as stored: IBAN + "
                                                    "BIC, account + routing number, or card token + BIN + last 4 "
                                                    "(never a full card number)")


class PaymentOut(BaseModel):
    payment_id: str
    payment_type: str
    amount: str = Field(description="Decimal string with the currency's minor units, never a float")
    currency: str
    status: str
    created_at: str = Field(description="ISO 8601 UTC with microseconds (`...Z`)")
    value_date: str | None
    originator: PartyOut
    beneficiary: PartyOut
    reference: str | None
    remittance_info: str | None = Field(description="Free text; a full card number in it is redacted")
    kafka_position: str | None = Field(description="topic:partition:offset of the message")
    hbase_row_key: str | None
    source: str = Field(description=SOURCE_TEXT)
    pending_in_backup: list[str] = Field(description="Stores whose write of this payment still waits in the backup")
    degraded: str | None = Field(description="Why the primary store did not answer (null: it did)")


class PaymentPageOut(BaseModel):
    items: list[PaymentOut] = Field(description="Exactly newest first by created_at (to the microsecond), ties by "
                                                "payment_id ascending, across pages")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: this was the last page")
    source: str = Field(description="`hbase`, or `postgres` when HBase did not answer (see `degraded`)")
    degraded: str | None
    count: int


class DailyTotalOut(BaseModel):
    day: str
    payment_type: str
    currency: str
    status: str | None
    count: int
    amount: str = Field(description="Exact sum, decimal string")


class DailyTotalsOut(BaseModel):
    rows: list[DailyTotalOut]
    created_from: str | None
    created_to: str | None
    source: str


class QuarantinedOut(BaseModel):
    id: int
    reason: str
    field: str | None
    payment_id: str | None
    kafka_position: str | None
    raw_text: str = Field(description="The message as text, every full card number replaced by "
                                      "`[PAN REDACTED hmac:<16 hex>]` (a keyed hash an operator can match)")
    quarantined_at: str


class QuarantinePageOut(BaseModel):
    items: list[QuarantinedOut]
    next_cursor: str | None
    count: int


class BackupItemOut(BaseModel):
    payment_id: str
    store: str
    error: str
    attempts: int
    first_attempt_at: str | None
    last_attempt_at: str | None
    kafka_position: str | None
    location: str


class BackupStoreOut(BaseModel):
    store: str
    size: int
    oldest_age_s: float | None
    items: list[BackupItemOut]


class BackupReportOut(BaseModel):
    stores: list[BackupStoreOut]
    mongo_error: str | None
    size: int


class ServiceOut(BaseModel):
    up: bool
    error: str | None
    detail: str | None
    seconds: float


class HealthOut(BaseModel):
    healthy: bool
    services: dict[str, ServiceOut]


class LiveOut(BaseModel):
    live: bool


class StatusOut(BaseModel):
    """The figures of `payment-platform status --json`."""

    taken_at: float
    services: dict[str, dict]
    figures: dict[str, float | int | None]
    problems: list[str]
    backup_latest_failure: dict | None
