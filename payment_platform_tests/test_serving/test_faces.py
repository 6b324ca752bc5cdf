"""The other faces of the query module: the Python API (typed results, DataFrames), the token, the command line
(`query`, `hbase`, `api`) against the session stack's default tables."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from payment_platform.cli import main
from payment_platform.domain.validation import parse_and_validate
from payment_platform.serving import PaymentPage, PaymentView
from payment_platform.serving.api import create_app
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger
from payment_platform.stores.records import PaymentRecord

from payment_platform_tests.waiting import wait_until

from ..test_loader.conftest import free_port
from ..test_stores.payments import payment_doc, raw
from .conftest import SPECIAL_PARTIES, ApiServer

pytestmark = pytest.mark.stack


def test_python_api_typed_results_and_frames(served):
    queries = served.queries()
    party = SPECIAL_PARTIES[1]["party_id"]
    page = queries.list_payments(originator_id=party, limit=3)
    assert isinstance(page, PaymentPage) and all(isinstance(p, PaymentView) for p in page.items)
    frame = page.to_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 3
    assert list(frame["originator_name"]) == [SPECIAL_PARTIES[1]["name"]] * 3
    assert frame["amount"].map(type).eq(str).all()  # decimal strings, never floats
    one = queries.payment(page.items[0].payment_id).to_frame()
    assert one.loc[0, "payment_id"] == page.items[0].payment_id
    totals = queries.daily_totals(created_from="2026-11-24", created_to="2026-11-25").to_frame()
    assert list(totals.columns) == ["day", "payment_type", "currency", "status", "count", "amount"]
    assert totals["count"].sum() == sum(1 for d in served.docs if d["created_at"].startswith("2026-11-24"))
    assert len(queries.quarantine(limit=2).to_frame()) == 2
    assert queries.backup_report().to_frame().empty


def test_token_required_when_set(served):
    with ApiServer(create_app(served.queries, token="s3cret-token")) as api:
        doc = served.docs[0]
        assert api.get(f"/payments/{doc['payment_id']}")[0] == 401
        status, headers, body = api.get(f"/payments/{doc['payment_id']}", token="wrong")
        assert status == 401 and body["parameter"] == "Authorization" and headers["WWW-Authenticate"] == "Bearer"
        assert api.get("/openapi.json")[0] == 401
        assert api.get(f"/payments/{doc['payment_id']}", token="s3cret-token")[0] == 200
        # the liveness probe alone needs no token; a path that merely starts like it still does
        status, _, body = api.get("/livez")
        assert (status, body) == (200, {"live": True})
        assert api.get("/livez/../health")[0] == 401 and api.get("/livez2")[0] == 401


def test_liveness_asks_no_store():
    def no_stores():
        raise AssertionError("the liveness probe must not build store clients")

    with ApiServer(create_app(no_stores, probes_factory=no_stores)) as api:
        status, _, body = api.get("/livez")
        assert (status, body) == (200, {"live": True})


@pytest.fixture
def default_tables(stack_env):
    """A few payments written straight into the stack's default tables (what the commands read)."""
    namespace = f"cli{uuid.uuid4().hex[:8]}"
    docs = [payment_doc(i, namespace) for i in range(6)]
    party = f"PTY-CLI-{namespace}"
    for doc in docs:
        doc["originator"]["party_id"] = party
        doc["originator"]["name"] = "Crème \"Brûlée\" O'Neil"
    records = [PaymentRecord(parse_and_validate(raw(d)), raw(d)) for d in docs]
    hbase = HBaseStore(stack_env["HBASE_HOST"], int(stack_env["HBASE_PORT"]))
    ledger = PostgresLedger(stack_env["POSTGRES_DSN"])
    hbase.ensure_schema()
    ledger.ensure_schema()
    hbase.write_payments(records)
    ledger.write_payments(records)
    hbase.close()
    ledger.close()
    return party, docs


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_query_commands(default_tables, capsys):
    party, docs = default_tables
    code, out, _ = run(capsys, "query", "payment", docs[2]["payment_id"], "--json")
    body = json.loads(out)
    assert code == 0 and body["amount"] == docs[2]["amount"]["value"] and body["source"] == "hbase"
    assert body["originator"]["name"] == "Crème \"Brûlée\" O'Neil"
    code, out, _ = run(capsys, "query", "list", "--originator", party, "--limit", "4")
    assert code == 0 and "Crème" in out and "4 payments from hbase" in out and "next page: --cursor " in out
    cursor = out.rsplit("--cursor ", 1)[1].strip()
    code, out, _ = run(capsys, "query", "list", "--originator", party, "--limit", "4", "--cursor", cursor, "--csv")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].startswith("payment_id,created_at") and len(lines) == 3
    code, out, _ = run(capsys, "query", "stats", "--from", "2026-11-24", "--to", "2026-11-25", "--json")
    assert code == 0 and json.loads(out)["rows"]
    code, out, _ = run(capsys, "query", "quarantine", "--limit", "1")
    code2, out2, _ = run(capsys, "query", "backup")
    assert code == 0 and code2 == 0 and "hbase:" in out2


@pytest.mark.parametrize("argv,parameter", [
    (["query", "list", "--limit", "0"], "--limit: "),
    (["query", "list", "--type", "BITCOIN"], "--type: "),
    (["query", "list", "--from", "2026-11-25", "--to", "2026-11-24"], "--to: "),
    (["query", "list", "--from", "2026-13-01"], "--from: "),
    (["query", "list", "--cursor", "nope"], "--cursor: "),
    (["query", "list", "--min-amount", "ten"], "--min-amount: "),
    (["query", "list", "--originator", "x" * 300], "--originator: "),
    (["query", "stats", "--currency", "EURO"], "--currency: "),
    (["query", "payment", "12345"], "PAYMENT_ID: "),
    (["hbase", "scan", "payments", "--limit", "0"], "--limit"),
    (["hbase", "get", "no_such_table", "x"], "no_such_table"),
    (["hbase", "get", "payments", "x", "--columns", "nocolon"], "--columns"),
    (["api", "--port", "70000"], "--port"),
])
def test_bad_command_input_is_one_line_and_exit_2(stack_env, capsys, argv, parameter):
    code, out, err = run(capsys, *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and parameter in err, err
    assert not any(name in err for name in ("created_from", "created_to", "payment_type", "min_amount")), err


def test_unknown_payment_is_exit_2(stack_env, capsys):
    code, _, err = run(capsys, "query", "payment", str(uuid.uuid4()))
    assert code == 2 and "no payment" in err


def test_hbase_inspection_commands(default_tables, capsys):
    party, docs = default_tables
    code, out, _ = run(capsys, "hbase", "tables")
    assert code == 0 and {"payments", "payments_by_id", "payments_by_originator",
                          "payments_by_beneficiary"} <= set(out.split())
    code, out, _ = run(capsys, "hbase", "describe", "payments_by_originator")
    assert code == 0 and "cf" in json.loads(out)["families"]
    code, out, _ = run(capsys, "hbase", "get", "payments_by_id", docs[0]["payment_id"], "--json")
    row_key = json.loads(out)["cells"]["cf:rowKey"]
    assert code == 0 and row_key.endswith(docs[0]["payment_id"])
    code, out, _ = run(capsys, "hbase", "get", "payments", row_key, "--columns", "cf:originatorName")
    assert code == 0 and "Crème \"Brûlée\" O'Neil" in out
    code, out, _ = run(capsys, "hbase", "scan", "payments_by_originator", "--prefix", f"{party}_", "--reverse",
                       "--limit", "2", "--json")
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert code == 0 and len(rows) == 2 and rows[0]["row"] > rows[1]["row"] and rows[0]["row"].startswith(party)
    code, out, _ = run(capsys, "hbase", "scan", "payments_by_originator", "--start", f"{party}_",
                       "--stop", f"{party}_~", "--limit", "100")
    assert code == 0 and out.strip().endswith("6 row(s)")
    code, out, _ = run(capsys, "hbase", "count", "payments_by_originator")
    assert code == 0 and int(out.split()[0].replace(",", "")) >= 6
    code, out, _ = run(capsys, "hbase", "backfill-index", "--batch-size", "500")
    assert code == 0 and "party indexes written for" in out


def test_api_command_serves_with_the_token(stack_env):
    port = free_port()
    env = {**os.environ, "PAYMENT_API_TOKEN": "t0ken"}
    process = subprocess.Popen([sys.executable, "-m", "payment_platform.cli", "api", "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def health() -> dict:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/health", headers={"Authorization": "Bearer t0ken"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())

        body = wait_until(health, 30, "the API answering /health", every_s=0.2, retry_on=(OSError,),
                          give_up=lambda: process.poll() is not None and "the API process exited")
        assert body["healthy"] and set(body["services"]) == {"kafka", "postgres", "hbase", "mongo", "redis"}
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(f"http://127.0.0.1:{port}/status", headers={"Authorization": "Bearer t0ken"})
        with urllib.request.urlopen(request, timeout=10) as response:
            figures = json.loads(response.read())
        assert "kafka_lag" in figures["figures"] and "backup_size" in figures["figures"]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer t0ken"})
        with urllib.request.urlopen(request, timeout=10) as response:
            exposition = response.read().decode()
        names = {family.name for family in text_string_to_metric_families(exposition)}
        assert {"payment_platform_service_up", "payment_api_requests"} <= names
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=20)
    assert f"payment API on http://127.0.0.1:{port}" in out and "Bearer token required" in out
