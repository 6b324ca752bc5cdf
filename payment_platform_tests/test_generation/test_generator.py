"""The generator: reproducible, valid, realistic, and honest about its deliberately bad records."""
import collections
import json
import statistics
from datetime import datetime, timezone

import pytest

from payment_platform.domain import business_calendar as cal
from payment_platform.domain import schema, validation
from payment_platform.domain.rails import INDICATIVE_USD_RATES, RAIL_RULES
from payment_platform.errors import UsageError
from payment_platform.generation.generator import generate
from payment_platform.generation.settings import DEFECTS, QUARANTINE_DEFECTS, GenerationSettings


def test_same_seed_and_settings_give_identical_bytes_and_another_seed_does_not():
    settings = GenerationSettings(bad_fraction=0.05)
    first = [(m.key, m.value, m.defect) for m in generate(2000, 11, settings)]
    again = [(m.key, m.value, m.defect) for m in generate(2000, 11, GenerationSettings(bad_fraction=0.05))]
    other = [m.payment_id for m in generate(2000, 12, settings)]
    assert first == again
    assert len({m.payment_id for m in generate(2000, 11, settings)} & set(other)) == 0


def test_good_messages_pass_validation_in_their_canonical_wire_form():
    for message in generate(5000, 1):
        payment = validation.parse_and_validate(message.value)
        assert schema.encode(payment.doc) == message.value
        assert message.defect is None and message.headers == {}
        assert (payment.payment_id, payment.payment_type, payment.currency, str(payment.amount)) == \
            (message.payment_id, message.payment_type, message.currency, message.amount)
        assert message.key == message.payment_id.encode()


@pytest.mark.parametrize("start", ["2026-12-07T22:30:00+00:00", "2026-12-08T03:00:00+00:00",
                                   "2026-12-08T20:30:00+00:00"])
def test_good_messages_around_utc_midnight_pass_validation(start):
    """Between UTC midnight and midnight in New York (or before midnight UTC in Asia), a payment's UTC date is
    not the day its rail books it: a US rail's value date may be the UTC day before. Each one must still pass."""
    moment = datetime.fromisoformat(start)
    settings = GenerationSettings(start=moment, peak_rate_per_s=2.0)
    refused = []
    for message in generate(3000, 5, settings):
        try:
            validation.parse_and_validate(message.value, now=moment.replace(year=moment.year + 1))
        except schema.InvalidMessage as error:
            refused.append(error.reason)
    assert refused == []


def test_bad_records_are_labelled_and_every_quarantine_defect_is_refused():
    messages = list(generate(6000, 2, GenerationSettings(bad_fraction=0.1)))
    seen_ids: set[str] = set()
    labels = collections.Counter()
    for message in messages:
        labels[message.defect] += 1
        if message.defect in QUARANTINE_DEFECTS:
            assert message.headers == {"defect": message.defect.encode()}
            with pytest.raises(schema.InvalidMessage):
                validation.parse_and_validate(message.value)
        else:
            validation.parse_and_validate(message.value)
            if message.defect == "duplicate_payment_id":
                assert message.payment_id in seen_ids  # reuses an id that was already sent
            else:
                assert message.payment_id not in seen_ids
        seen_ids.add(message.payment_id)
    assert set(labels) == {None, *DEFECTS}
    assert 0.08 < (len(messages) - labels[None]) / len(messages) < 0.12
    assert not any(m.defect for m in generate(3000, 2))  # zero by default


def test_one_kind_of_defect_can_be_chosen():
    messages = list(generate(500, 3, GenerationSettings(bad_fraction=1.0, defects=("negative_amount",))))
    assert {m.defect for m in messages} == {"negative_amount"}
    assert all(m.amount.startswith("-") for m in messages)


def test_cards_carry_token_bin_and_last_four_only():
    cards = [json.loads(m.value) for m in generate(2000, 4, GenerationSettings(rails=("CARD",)))]
    assert cards and {c["payment_type"] for c in cards} == {"CARD"}
    for card in cards:
        payer = card["originator"]
        assert set(payer) == {"party_id", "name", "country", "card_token", "card_bin", "card_last4"}


def test_rails_follow_their_rules_and_amounts_their_distributions():
    docs = [json.loads(m.value) for m in generate(20000, 5)]
    by_rail = collections.defaultdict(list)
    for doc in docs:
        rule = RAIL_RULES[doc["payment_type"]]
        assert doc["amount"]["currency"] in rule.currencies
        usd = float(doc["amount"]["value"]) * float(INDICATIVE_USD_RATES[doc["amount"]["currency"]])
        by_rail[doc["payment_type"]].append(usd)
        created = schema.parse_timestamp(doc["created_at"])
        calendar, _ = rule.calendar_for(doc["amount"]["currency"])
        assert cal.is_business_day(calendar, datetime.fromisoformat(doc["value_date"]).date())
        assert doc["value_date"] >= created.date().isoformat()
    shares = {rail: len(amounts) / len(docs) for rail, amounts in by_rail.items()}
    for rail, rule in RAIL_RULES.items():
        assert shares[rail] == pytest.approx(rule.share, abs=0.02)
    medians = {rail: statistics.median(amounts) for rail, amounts in by_rail.items()}
    assert medians["CARD"] < medians["ACH"] < medians["WIRE"]


def test_timestamps_follow_business_hours_business_days_and_month_end_peaks():
    # a slow arrival rate so 15,000 payments span more than two months
    settings = GenerationSettings(peak_rate_per_s=0.004, start=datetime(2026, 9, 1, tzinfo=timezone.utc))
    stamps = [schema.parse_timestamp(json.loads(m.value)["created_at"]) for m in generate(15000, 6, settings)]
    assert stamps == sorted(stamps) and stamps[0] >= settings.start
    assert (stamps[-1] - stamps[0]).days > 60
    weekday_business = sum(1 for t in stamps if t.weekday() < 5 and 7 <= t.hour < 22)
    assert weekday_business / len(stamps) > 0.85
    per_day = collections.Counter(t.date() for t in stamps)
    month_end = [n for day, n in per_day.items() if cal.is_month_end_peak(day) and day.weekday() < 5]
    ordinary = [n for day, n in per_day.items() if not cal.is_month_end_peak(day) and day.weekday() < 5
                and day.day not in (15,) and not any(day in cal.holidays(c, day.year) for c in (cal.FED, cal.TARGET2))]
    assert statistics.mean(month_end) > 1.4 * statistics.mean(ordinary)


def test_parties_are_stable_payers_pareto_and_counterparties_recurring():
    def parties(seed):
        return [json.loads(m.value) for m in generate(20000, seed)]
    docs = parties(7)
    identity: dict[tuple[str, str], str] = {}
    for doc in docs + parties(8):  # another seed: same party ids mean the same companies and accounts
        for role in ("originator", "beneficiary"):
            party = doc[role]
            for field, value in party.items():
                assert identity.setdefault((party["party_id"], field), value) == value
    payers = collections.Counter(d["originator"]["party_id"] for d in docs)
    top_tenth = sum(n for _, n in payers.most_common(max(1, len(payers) // 10)))
    assert top_tenth / len(docs) > 0.4  # a few large payers send much of the traffic
    pairs = collections.Counter((d["originator"]["party_id"], d["beneficiary"]["party_id"]) for d in docs)
    biggest = payers.most_common(1)[0][0]
    payees_of_biggest = {b for (a, b) in pairs if a == biggest}
    assert len(payees_of_biggest) < payers[biggest] / 3  # the same suppliers paid again and again


@pytest.mark.parametrize("strategy, expected", [
    ("payment_id", lambda d: d["payment_id"].encode()),
    ("originator", lambda d: d["originator"]["party_id"].encode()),
    ("payment_type", lambda d: d["payment_type"].encode()),
    ("none", lambda d: None),
])
def test_key_strategies(strategy, expected):
    for message in generate(200, 9, GenerationSettings(key_strategy=strategy)):
        assert message.key == expected(json.loads(message.value))


@pytest.mark.parametrize("changes, option", [
    (dict(bad_fraction=1.5), "--bad-fraction"),
    (dict(rails=("ACH", "SWIFT")), "--rails"),
    (dict(rails=()), "--rails"),
    (dict(key_strategy="random"), "--key-strategy"),
    (dict(defects=("typo",)), "defects"),
    (dict(start=datetime(2026, 1, 1)), "--start"),
])
def test_bad_settings_name_the_option(changes, option):
    with pytest.raises(UsageError, match=f"^{option}: "):
        GenerationSettings(**changes)


def test_streaming_does_not_build_the_batch_in_memory():
    stream = generate(10**9, 1)  # a billion: only works because nothing is built up front
    assert next(stream).value and next(stream).value


def test_a_live_stream_is_stamped_with_the_wall_clock():
    before = datetime.now(timezone.utc)
    stamps = [schema.parse_timestamp(json.loads(m.value)["created_at"])
              for m in generate(200, 1, GenerationSettings(live_clock=True, start=datetime(2020, 1, 1, tzinfo=timezone.utc)))]
    assert before <= stamps[0] and stamps == sorted(stamps) and stamps[-1] <= datetime.now(timezone.utc)


def test_a_defect_that_cannot_apply_to_the_rail_leaves_the_payment_good():
    messages = list(generate(100, 1, GenerationSettings(bad_fraction=1.0, rails=("SEPA",),
                                                        defects=("card_number_present",))))
    assert all(m.defect is None for m in messages)
    for m in messages:
        validation.parse_and_validate(m.value)
