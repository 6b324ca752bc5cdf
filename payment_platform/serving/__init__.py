"""The read side: one query module (`queries.PaymentQueries`) behind a Python API, the REST API (`api`) and
`payment-platform query` / `payment-platform hbase` (`cli`).

    from payment_platform.serving import PaymentQueries
    queries = PaymentQueries.from_endpoints(endpoints_from_env())
    queries.list_payments(originator_id="PTY-000042", created_from="2026-11-24").to_frame()
"""
from payment_platform.serving.models import (BackupReport, DailyTotals, Party, PaymentPage, PaymentView,
                                             QuarantinePage)
from payment_platform.serving.params import InvalidParameter
from payment_platform.serving.queries import NotFound, PaymentQueries, StoreUnavailable

__all__ = ["PaymentQueries", "PaymentView", "PaymentPage", "Party", "DailyTotals", "QuarantinePage", "BackupReport",
           "InvalidParameter", "NotFound", "StoreUnavailable"]
