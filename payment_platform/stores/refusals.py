"""One classification of a store error, shared by ingestion (`ingestion.loader`) and replay (`replay.replayer`).

- An **outage**: the store cannot be reached or cannot take writes right now (connection refused or lost, timeouts,
  Postgres's operational errors, a Thrift transport error, an HBase server naming a region or capacity problem).
  It goes away by itself: the payments wait in the failed-payment backup.
- Anything else is a **refusal**: the store (or the conversion of the payment into its rows) refused what it was
  sent. A refusal is a poison message only with proof that the store takes writes (something else was accepted,
  or a write probe passed): a dropped or disabled table and a revoked permission refuse every payment too, and
  must never quarantine a live stream one message at a time. That proof is the caller's to find; this module only
  sorts the error.
"""
from __future__ import annotations

# What an HBase Thrift server reports as `IOError` when a region is moving or the server is out of capacity
# (retried by HBase's own client until it gives up): not the payment's fault, so an outage. A space quota's
# NO_INSERTS policy (SpaceLimitingException) refuses puts but lets deletes and checks through, so a write probe
# passes while every put fails: without this line a lone payment would be quarantined for a full quota.
HBASE_AVAILABILITY_ERRORS = (
    "NotServingRegionException", "RegionTooBusyException", "RegionMovedException", "RegionOpeningException",
    "ServerNotRunningYetException", "RegionServerStoppedException", "RegionServerAbortedException",
    "CallQueueTooBigException", "RpcThrottlingException", "QuotaExceededException", "SpaceLimitingException",
)

# Isolating by bisection: this many payments refused one by one while the store accepted none means the store itself
# (or the code writing to it) refuses everything, not that the messages are poison.
SYSTEMIC_REFUSALS = 8


def is_outage(error: BaseException) -> bool:
    """A store that cannot be reached or cannot take writes right now: the payments wait in the backup."""
    if isinstance(error, (ConnectionError, TimeoutError, OSError)):  # incl. HBaseUnavailable, PostgresUnavailable
        return True
    import psycopg2
    if isinstance(error, (psycopg2.OperationalError, psycopg2.InterfaceError, psycopg2.InternalError)):
        return True  # connection lost, statement timeout, deadlock, disk full, server out of resources
    from thriftpy2.transport import TTransportException
    if isinstance(error, TTransportException):
        return True
    if type(error).__name__ == "IOError" and type(error).__module__ != "builtins":  # HBase Thrift's IOError
        message = _message(error)
        return any(name in message for name in HBASE_AVAILABILITY_ERRORS)
    return False


def is_refusal(error: BaseException) -> bool:
    """The store (or the payment's conversion into its rows) refused what it was sent: poison only with proof the
    store takes writes (module doc)."""
    return not is_outage(error)


def describe(error: BaseException) -> str:
    """`Type: message` of a store error, as quarantine reasons and backup entries show it."""
    message = _message(error).strip()
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _message(error: BaseException) -> str:
    """The error's text; a Thrift exception's `message` field (bytes from HBase's server) decoded."""
    message = getattr(error, "message", None) or str(error)
    return message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
