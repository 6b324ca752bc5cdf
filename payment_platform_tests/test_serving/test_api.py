"""The REST API over really ingested payments, through real HTTP: every query, paging, stats, operators, errors."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from payment_platform.domain.schema import PARTY_FIELDS

from .conftest import SPECIAL_PARTIES, amount_of, in_listing_order

pytestmark = pytest.mark.stack


def walk(api, params: dict, limit: int) -> tuple[list[dict], int]:
    """Every item of a paged query, following next_cursor; (items, pages)."""
    items, cursor, pages = [], None, 0
    while True:
        status, headers, body = api.get("/payments", {**params, "limit": limit, "cursor": cursor})
        assert status == 200, body
        assert headers["X-Served-By"] == "hbase" and "X-Degraded" not in headers
        assert body["count"] == len(body["items"]) <= limit
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def test_every_payment_by_id_is_served_from_hbase_exactly_as_sent(served, api):
    for doc in served.docs:
        status, headers, body = api.get(f"/payments/{doc['payment_id']}")
        assert status == 200, body
        assert headers["X-Served-By"] == "hbase" and body["source"] == "hbase" and body["degraded"] is None
        assert body["amount"] == doc["amount"]["value"] and body["currency"] == doc["amount"]["currency"]
        assert body["payment_type"] == doc["payment_type"] and body["status"] == doc["status"]
        sent = datetime.fromisoformat(doc["created_at"].replace("Z", "+00:00")).astimezone(timezone.utc)
        assert body["created_at"] == sent.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for role in ("originator", "beneficiary"):
            assert body[role]["party_id"] == doc[role]["party_id"] and body[role]["name"] == doc[role]["name"]
            # account identifiers exactly as stored, and nothing else (a card only as token, BIN and last 4)
            assert body[role]["identifiers"] == {k: doc[role][k] for k in PARTY_FIELDS[3:] if k in doc[role]}
        assert body["pending_in_backup"] == []


def test_card_payments_show_token_bin_and_last4_only(served, api):
    cards = [d for d in served.docs if d["payment_type"] == "CARD"]
    assert cards, "the generated data should hold CARD payments"
    body = api.get(f"/payments/{cards[0]['payment_id']}")[2]
    held = {k for role in ("originator", "beneficiary") for k in body[role]["identifiers"]}
    assert held & {"card_token", "card_bin", "card_last4"} and not held & {"card_number", "pan"}


def test_unknown_and_malformed_ids(api):
    status, _, body = api.get("/payments/6f1c1d36-9a39-4c43-a1a5-0c0d2b0b0b0b")
    assert status == 404 and "6f1c1d36-9a39-4c43-a1a5-0c0d2b0b0b0b" in body["error"]
    status, _, body = api.get("/payments/not-a-uuid")
    assert status == 400 and body["parameter"] == "payment_id"


@pytest.mark.parametrize("party", [p["party_id"] for p in SPECIAL_PARTIES] + ["PTY-000004"])
def test_one_originator_walked_page_by_page_newest_first(served, api, party):
    expected = served.of("originator", party)
    assert len(expected) >= 3
    items, pages = walk(api, {"originator_id": party}, limit=2)
    assert [i["payment_id"] for i in items] == [d["payment_id"] for d in expected]
    assert pages >= len(expected) // 2
    assert all(i["originator"]["name"] == expected[0]["originator"]["name"] for i in items)


def test_beneficiary_with_every_filter(served, api):
    party = SPECIAL_PARTIES[0]["party_id"]
    docs = served.of("beneficiary", party)
    low, high = sorted(amount_of(d) for d in docs)[1], sorted(amount_of(d) for d in docs)[-2]
    rail, currency = docs[0]["payment_type"], docs[0]["amount"]["currency"]
    expected = [d for d in docs if d["payment_type"] == rail and d["amount"]["currency"] == currency
                and d["status"] == "ACSP" and low <= amount_of(d) <= high]
    items, _ = walk(api, {"beneficiary_id": party, "payment_type": rail.lower(), "currency": currency,
                          "status": "ACSP", "min_amount": str(low), "max_amount": str(high)}, limit=1000)
    assert [i["payment_id"] for i in items] == [d["payment_id"] for d in expected] and expected


def test_window_across_all_parties(served, api):
    # payment_doc i is created at 14:00:00 + i//3 s (+ i µs): [14:00:10.000004, 14:00:20) holds i = 31 .. 59
    window = {"created_from": "2026-11-24T14:00:10.000004Z", "created_to": "2026-11-24T15:00:20+01:00"}
    ours = {d["payment_id"] for d in served.docs}
    items, _ = walk(api, window, limit=7)
    mine = [i for i in items if i["payment_id"] in ours]
    expected = [d for d in served.docs if "2026-11-24T14:00:10.000004" <= d["created_at"][:26] < "2026-11-24T14:00:20"]
    assert {i["payment_id"] for i in mine} == {d["payment_id"] for d in expected} and len(expected) >= 29
    assert in_listing_order(items)
    sepa, _ = walk(api, {**window, "payment_type": "SEPA", "currency": "EUR"}, limit=1000)
    assert {i["payment_id"] for i in sepa if i["payment_id"] in ours} == \
        {d["payment_id"] for d in expected if d["payment_type"] == "SEPA"}


def test_daily_totals_match_the_payments(served, api):
    status, headers, body = api.get("/stats/daily", {"created_from": "2026-11-24", "created_to": "2026-11-25",
                                                      "by_status": "true"})
    assert status == 200 and headers["X-Served-By"] == "postgres"
    expected = defaultdict(lambda: [0, Decimal(0)])
    for d in served.docs:
        if d["created_at"].startswith("2026-11-24"):
            key = ("2026-11-24", d["payment_type"], d["amount"]["currency"], d["status"])
            expected[key][0] += 1
            expected[key][1] += amount_of(d)
    got = {(r["day"], r["payment_type"], r["currency"], r["status"]): [r["count"], Decimal(r["amount"])]
           for r in body["rows"]}
    assert got == dict(expected)
    ach = api.get("/stats/daily", {"created_from": "2026-11-24", "created_to": "2026-11-25", "payment_type": "ACH"})[2]
    assert {r["payment_type"] for r in ach["rows"]} == {"ACH"} and all(r["status"] is None for r in ach["rows"])


def test_quarantine_paged_with_reason_position_and_raw_text(served, api):
    items, cursor = [], None
    while True:
        status, _, body = api.get("/quarantine", {"limit": 2, "cursor": cursor})
        assert status == 200, body
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(items) == served.quarantined >= 5
    assert len({i["id"] for i in items}) == len(items)
    assert any(i["raw_text"] == "{not json" for i in items)
    assert all(i["reason"] and i["kafka_position"].startswith(served.topic + ":0:") for i in items)


def test_backup_report_when_empty(api):
    status, _, body = api.get("/backup")
    assert status == 200 and body["size"] == 0 and [s["store"] for s in body["stores"]] == ["hbase", "postgres"]


BAD = [
    ("/payments", {"originator_id": "PTY-1", "limit": "0"}, "limit"),
    ("/payments", {"limit": "10001"}, "limit"),
    ("/payments", {"limit": "ten"}, "limit"),
    ("/payments", {"payment_type": "BITCOIN"}, "payment_type"),
    ("/payments", {"currency": "XXX"}, "currency"),
    ("/payments", {"status": "DONE"}, "status"),
    ("/payments", {"min_amount": "12,50"}, "min_amount"),
    ("/payments", {"max_amount": "NaN"}, "max_amount"),
    ("/payments", {"min_amount": "10", "max_amount": "5"}, "max_amount"),
    ("/payments", {"created_from": "yesterday"}, "created_from"),
    ("/payments", {"created_from": "2026-11-25", "created_to": "2026-11-24"}, "created_to"),
    ("/payments", {"cursor": "garbage!!"}, "cursor"),
    ("/payments", {"originator_id": "x" * 300}, "originator_id"),
    ("/stats/daily", {"currency": "usd1"}, "currency"),
    ("/stats/daily", {"created_from": "2026-13-01"}, "created_from"),
    ("/quarantine", {"limit": "-1"}, "limit"),
    ("/quarantine", {"cursor": "eyJ2IjoxfQ"}, "cursor"),
    ("/backup", {"limit": "1001"}, "limit"),
]


@pytest.mark.parametrize("path,params,parameter", BAD)
def test_bad_input_is_a_400_naming_the_parameter(api, path, params, parameter):
    status, _, body = api.get(path, params)
    assert status == 400, body
    assert body["parameter"] == parameter and parameter in body["error"]


def test_a_tampered_or_foreign_cursor_is_refused(served, api):
    party = SPECIAL_PARTIES[0]["party_id"]
    body = api.get("/payments", {"originator_id": party, "limit": 1})[2]
    cursor = body["next_cursor"]
    assert cursor
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    for params in ({"originator_id": party, "cursor": flipped},
                   {"originator_id": SPECIAL_PARTIES[1]["party_id"], "cursor": cursor},  # another query's cursor
                   {"originator_id": party, "currency": "EUR", "cursor": cursor}):
        status, _, answer = api.get("/payments", params)
        assert status == 400 and answer["parameter"] == "cursor", answer
    assert api.get("/payments", {"originator_id": party, "cursor": cursor})[0] == 200


@pytest.mark.parametrize("path, params, parameter", [
    ("/stats/daily", {"by_status": "perhaps"}, "by_status"),
    ("/payments", {"limit": "ten"}, "limit"),
    ("/payments", {"min_amount": "NaN"}, "min_amount"),
    ("/quarantine", {"limit": "0"}, "limit"),
])
def test_typed_parameter_refused_by_fastapi_is_a_400_naming_it(api, path, params, parameter):
    status, _, body = api.get(path, params)
    assert status == 400 and body["parameter"] == parameter, body


def test_openapi_and_docs_are_served(api):
    status, _, body = api.get("/openapi.json")
    assert status == 200 and {"/payments", "/payments/{payment_id}", "/stats/daily", "/quarantine", "/backup",
                              "/health", "/metrics", "/status"} <= set(body["paths"])
