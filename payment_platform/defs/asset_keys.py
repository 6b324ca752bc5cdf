"""Asset keys shared across rooms: the lineage generation -> topic -> stores -> summaries in one place."""
import dagster as dg

GENERATED_BATCH = dg.AssetKey(["generation", "payment_batch"])
PAYMENTS_TOPIC = dg.AssetKey(["kafka", "payment_transactions"])
HBASE_PAYMENTS = dg.AssetKey(["hbase", "payments"])
POSTGRES_PAYMENTS = dg.AssetKey(["postgres", "payments"])
FAILED_PAYMENT_BACKUP = dg.AssetKey(["mongo", "failed_payments"])
QUARANTINE = dg.AssetKey(["postgres", "payments_quarantine"])
DAILY_SETTLEMENT_SUMMARY = dg.AssetKey(["postgres", "daily_settlement_summary"])
