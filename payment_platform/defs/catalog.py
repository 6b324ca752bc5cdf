"""What the Dagster catalog shows about each asset besides its data: table schemas, where the data lives, owners.

Static facts only (nothing here reads the environment): the host and port of each store are added to the
materializations at run time (`store_uri`), with any password left out.
"""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import dagster as dg

OWNERS = ["team:payments-data"]


def _schema(*columns: tuple[str, str, str]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, type_, description=text) for name, type_, text in columns])


POSTGRES_PAYMENTS_SCHEMA = _schema(
    ("payment_id", "uuid", "primary key"),
    ("payment_type", "text", "rail: ACH, WIRE, RTP, SEPA, CARD, DIRECT_DEBIT, CHECK"),
    ("amount", "numeric", "exact decimal, the currency's minor units"),
    ("currency", "char(3)", "ISO 4217"),
    ("originator_id", "text", ""), ("originator_name", "text", ""),
    ("beneficiary_id", "text", ""), ("beneficiary_name", "text", ""),
    ("status", "text", "ISO 20022 transaction status"),
    ("created_at", "timestamptz", "UTC"), ("value_date", "date", "settlement day on the rail"),
    ("hbase_row_key", "text", "the row in HBase table payments"),
    ("document", "jsonb", "the message as received"),
    ("kafka_topic", "text", ""), ("kafka_partition", "integer", ""), ("kafka_offset", "bigint", ""),
    ("ingested_at", "timestamptz", ""),
)

HBASE_PAYMENTS_SCHEMA = _schema(
    ("row key", "bytes", "{yyyyMMddHHmmss}_{paymentType}_{originatorId}_{paymentId}"),
    ("cf:paymentId", "string", ""), ("cf:paymentType", "string", ""),
    ("cf:amountValue", "decimal string", ""), ("cf:amountCurrency", "string", "ISO 4217"),
    ("cf:originatorId", "string", ""), ("cf:originatorName", "string", ""),
    ("cf:beneficiaryId", "string", ""), ("cf:beneficiaryName", "string", ""),
    ("cf:createdAt", "string", "ISO 8601 UTC"), ("cf:status", "string", ""), ("cf:valueDate", "string", ""),
    ("cf:raw", "bytes", "the message as received"), ("cf:kafkaPosition", "string", "topic:partition:offset"),
)

QUARANTINE_SCHEMA = _schema(
    ("id", "bigserial", ""), ("kafka_topic", "text", ""), ("kafka_partition", "integer", ""),
    ("kafka_offset", "bigint", ""), ("raw", "bytea", "the message's bytes"),
    ("reason", "text", "why it was refused, in words a person can act on"), ("field", "text", ""),
    ("payment_id", "text", "when it could be read"), ("kafka_key", "bytea", ""),
    ("defect_label", "text", "generator's label (header `defect`), for scoring only"),
    ("quarantined_at", "timestamptz", ""),
)

BACKUP_SCHEMA = _schema(
    ("payment_id", "string", ""), ("store", "string", "the store the write failed for: hbase or postgres"),
    ("payment", "document", "the whole message"), ("error", "string", "the store's error"),
    ("attempts", "int", ""), ("first_failed_at", "datetime", ""), ("last_failed_at", "datetime", ""),
)

SUMMARY_SCHEMA = _schema(
    ("settlement_date", "date", "value date, else the UTC creation day"), ("payment_type", "text", ""),
    ("currency", "char(3)", ""), ("payments", "bigint", ""), ("total_amount", "numeric", ""),
    ("settled", "bigint", "ISO 20022 ACSC/ACCC"), ("settled_amount", "numeric", ""),
    ("rejected", "bigint", "RJCT/CANC/BLCK"), ("built_at", "timestamptz", ""),
)


def table_metadata(table_name: str, schema: dg.TableSchema) -> dict:
    return {"dagster/table_name": table_name, "dagster/column_schema": schema}


def store_uri(url: str, path: str = "") -> str:
    """A store's address for the catalog, without user or password: `postgresql://host:5432/payments`."""
    parts = urlsplit(url if "://" in url else f"postgresql://{url}")
    host = parts.hostname or ""
    if not host and "host=" in parts.query:  # a unix socket (embedded Postgres): say where it is
        host = parts.query.split("host=", 1)[1].split("&", 1)[0]
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, path or parts.path, "", ""))
