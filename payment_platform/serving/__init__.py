"""The read side: one query module (`queries.PaymentQueries`) behind a Python API, the REST API (`api`) and
`payment-platform query` / `payment-platform hbase` (`cli`).

    from payment_platform.serving import PaymentQueries
    queries = PaymentQueries.from_endpoints(endpoints_from_env())
    queries.list_payments(originator_id="PTY-000042", created_from="2026-11-24").to_frame()
"""
# Resolved on first use (PEP 562): importing the package, as every `payment-platform` command does to register
# `query`/`hbase`/`api`, must not load pandas and happybase (~2 s of start-up for `generate`, `stack ...`).
_EXPORTS = {
    "BackupReport": "models", "DailyTotals": "models", "Party": "models", "PaymentPage": "models",
    "PaymentView": "models", "QuarantinePage": "models", "InvalidParameter": "params", "NotFound": "queries",
    "PaymentQueries": "queries", "StoreUnavailable": "queries",
}

__all__ = ["PaymentQueries", "PaymentView", "PaymentPage", "Party", "DailyTotals", "QuarantinePage", "BackupReport",
           "InvalidParameter", "NotFound", "StoreUnavailable"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
