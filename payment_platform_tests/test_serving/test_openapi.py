"""The published OpenAPI document is true: schemathesis generates requests from it and checks every answer of the
live API against it (status codes, content types, headers, response schemas, no server error), and a client
generated from it by openapi-python-client looks a payment up and walks a party's payments."""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from payment_platform.serving.api import create_app

from .conftest import SPECIAL_PARTIES, ApiServer

pytestmark = pytest.mark.stack
BIN = Path(sys.executable).parent
EXAMPLES = 12  # per operation and phase: enough to hit every parameter, bounded for the suite's time


@pytest.fixture(scope="module")
def live(served):
    with ApiServer(create_app(served.queries, probes_factory=served.probes)) as server:
        yield server


def test_schemathesis_finds_no_answer_that_breaks_the_published_schema(live, tmp_path):
    checks = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
              "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
              "unsupported_method"]
    run = subprocess.run(
        [str(BIN / "schemathesis"), "run", f"{live.url}/openapi.json", "--checks", ",".join(checks),
         "--max-examples", str(EXAMPLES), "--seed", "22", "--workers", "1", "--no-color",
         "--phases", "examples,coverage,fuzzing", "--request-timeout", "30",
         "--exclude-path", "/metrics",  # text, not JSON: parsed by test_metrics with Prometheus' parser
         "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout or "passed" in run.stdout, run.stdout[-3000:]


def test_a_generated_client_looks_up_and_walks(live, served, tmp_path):
    with urllib.request.urlopen(live.url + "/openapi.json", timeout=30) as response:
        (tmp_path / "openapi.json").write_bytes(response.read())
    (tmp_path / "config.yml").write_text("project_name_override: payments-client\npackage_name_override: "
                                         "payments_client\npost_hooks: []\n")
    generated = subprocess.run(
        [str(BIN / "openapi-python-client"), "generate", "--path", "openapi.json", "--config", "config.yml",
         "--meta", "none", "--output-path", "payments_client"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert generated.returncode == 0, generated.stdout[-3000:] + generated.stderr[-3000:]
    sys.path.insert(0, str(tmp_path))
    try:
        client_module = importlib.import_module("payments_client")
        lookup = importlib.import_module("payments_client.api.default.get_payment_payments_payment_id_get")
        listing = importlib.import_module("payments_client.api.default.list_payments_payments_get")
        client = client_module.Client(base_url=live.url)
        doc = served.docs[0]
        payment = lookup.sync(client=client, payment_id=doc["payment_id"])
        assert payment.payment_id == doc["payment_id"] and payment.amount == doc["amount"]["value"]
        assert payment.originator.party_id == doc["originator"]["party_id"] and payment.source == "hbase"

        party = SPECIAL_PARTIES[0]["party_id"]
        walked, cursor = [], None
        while True:
            page = listing.sync(client=client, originator_id=party, limit=2, **({"cursor": cursor} if cursor else {}))
            walked += [item.payment_id for item in page.items]
            cursor = page.next_cursor
            if not isinstance(cursor, str):
                break
        assert walked == [d["payment_id"] for d in served.of("originator", party)] and len(walked) >= 3
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "payments_client" or m.startswith("payments_client.")]:
            del sys.modules[name]
    assert json.loads((tmp_path / "openapi.json").read_text())["paths"]
