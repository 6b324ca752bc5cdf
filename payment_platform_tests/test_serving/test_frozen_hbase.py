"""A hung HBase never stalls the API: with the gateway frozen (SIGSTOP: the port accepts, nothing answers) a lookup
waits on HBase in its worker thread while `/livez` and the Postgres-backed endpoints keep answering."""
from __future__ import annotations

import os
import signal
import threading
import urllib.request

import pytest

from payment_platform.serving.api import create_app
from payment_platform.serving.queries import PaymentQueries

from ..test_healing.conftest import private_hbase  # noqa: F401 - the fixture: a gateway process of our own
from .conftest import ApiServer

pytestmark = pytest.mark.stack


def test_a_frozen_gateway_holds_only_the_lookups_that_wait_on_it(served, private_hbase):  # noqa: F811
    asked_hbase = threading.Event()

    def queries() -> PaymentQueries:
        # a timeout far longer than the test: the lookup can only end once the gateway is thawed
        hbase = served.hbase(port=private_hbase.port, timeout_ms=120_000)
        original = hbase.row_key_for

        def row_key_for(payment_id):
            asked_hbase.set()
            return original(payment_id)

        hbase.row_key_for = row_key_for
        return PaymentQueries(hbase, served.postgres(), served.backup(), hbase_retry_after_s=0)

    payment = served.docs[0]["payment_id"]
    lookup: dict = {}
    with ApiServer(create_app(queries)) as api:
        os.kill(private_hbase.popen.pid, signal.SIGSTOP)
        try:
            waiting = threading.Thread(target=lambda: lookup.update(answer=api.get(f"/payments/{payment}")))
            waiting.start()
            assert asked_hbase.wait(60), "the lookup never reached HBase"
            # the lookup now waits on the frozen gateway; everything that does not need HBase still answers
            request = urllib.request.Request(api.url + "/livez")
            with urllib.request.urlopen(request, timeout=20) as response:  # a stalled loop would not answer
                assert response.status == 200
            status, _, totals = api.get("/stats/daily", {"created_from": "2026-11-24", "created_to": "2026-11-25"})
            assert status == 200 and sum(row["count"] for row in totals["rows"]) > 0
            status, _, quarantined = api.get("/quarantine", {"limit": 5})
            assert status == 200 and quarantined["count"] > 0
            assert waiting.is_alive() and not lookup, "the lookup should still be waiting on the frozen gateway"
        finally:
            os.kill(private_hbase.popen.pid, signal.SIGCONT)
        waiting.join(150)
    status, headers, body = lookup["answer"]
    # thawed, the gateway does not hold this namespace's tables: the answer comes from Postgres, saying why
    assert status == 200 and body["payment_id"] == payment
    assert headers["X-Served-By"] == "postgres" and body["degraded"]
