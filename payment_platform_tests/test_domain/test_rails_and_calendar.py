"""The rail table and the payment calendars: the rules a payments engineer would check first."""
from datetime import date, datetime, time, timezone
from decimal import Decimal

import pytest

from payment_platform.domain import business_calendar as cal
from payment_platform.domain.rails import RAIL_RULES, rail_rules
from payment_platform.domain.schema import RAILS, STATUS_CODES


def test_every_rail_has_rules_with_known_statuses_and_shares_summing_to_one():
    assert set(RAIL_RULES) == set(RAILS)
    assert sum(rule.share for rule in RAIL_RULES.values()) == pytest.approx(1.0)
    for rule in RAIL_RULES.values():
        assert {code for code, _ in rule.statuses} <= set(STATUS_CODES)


def test_currencies_and_limits_per_rail():
    assert RAIL_RULES["SEPA"].currencies == ("EUR",)
    for rail in ("ACH", "RTP", "CHECK"):
        assert RAIL_RULES[rail].currencies == ("USD",)
    assert len(RAIL_RULES["WIRE"].currencies) > 5
    assert RAIL_RULES["ACH"].limit == Decimal("1000000.00")
    assert RAIL_RULES["RTP"].limit == Decimal("10000000.00")


def test_sepa_instant_cap_is_a_setting_and_limits_convert_between_currencies():
    assert rail_rules("15000")["SEPA"].limit == Decimal("15000.00")
    assert rail_rules()["SEPA"].limit == RAIL_RULES["SEPA"].limit
    with pytest.raises(ValueError):
        rail_rules("0")
    wire = RAIL_RULES["WIRE"]
    assert wire.limit_in("JPY") > wire.limit * 100  # a yen is worth far less than a dollar


def test_federal_reserve_holidays_2026():
    fed = cal.holidays(cal.FED, 2026)
    assert date(2026, 11, 26) in fed  # Thanksgiving, fourth Thursday
    assert date(2026, 1, 19) in fed  # Martin Luther King Jr. Day
    assert date(2026, 5, 25) in fed  # Memorial Day, last Monday of May
    assert date(2026, 6, 19) in fed  # Juneteenth
    assert date(2026, 7, 4) in fed and date(2026, 7, 3) not in fed  # Saturday: the Fed does not move it
    assert date(2027, 12, 25) in cal.holidays(cal.FED, 2027)  # a Saturday
    assert date(2028, 1, 1) in cal.holidays(cal.FED, 2028)
    assert date(2023, 1, 2) in cal.holidays(cal.FED, 2023)  # 1 January 2023 was a Sunday: observed Monday


def test_target2_closing_days_follow_easter():
    t2 = cal.holidays(cal.TARGET2, 2026)
    assert {date(2026, 4, 3), date(2026, 4, 6), date(2026, 5, 1), date(2026, 12, 25), date(2026, 12, 26)} <= t2
    assert date(2026, 11, 26) not in t2


def test_next_business_day_skips_weekends_and_holidays():
    # Wednesday before Thanksgiving + 1 business day = Friday
    assert cal.next_business_day(cal.FED, date(2026, 11, 25)) == date(2026, 11, 27)
    assert cal.next_business_day(cal.TARGET2, date(2026, 12, 24)) == date(2026, 12, 28)
    assert cal.next_business_day(cal.FED, date(2026, 11, 28), 0) == date(2026, 11, 30)
    assert cal.next_business_day(cal.ALWAYS, date(2026, 11, 28), 0) == date(2026, 11, 28)


def test_value_date_moves_after_the_cut_off():
    before = datetime(2026, 11, 24, 21, 0, tzinfo=timezone.utc)  # 16:00 in New York
    after = datetime(2026, 11, 24, 22, 0, tzinfo=timezone.utc)  # 17:00 in New York
    kwargs = dict(cutoff=time(16, 45), cutoff_tz="America/New_York", settlement_days=0)
    assert cal.value_date(cal.FED, before, **kwargs) == date(2026, 11, 24)
    assert cal.value_date(cal.FED, after, **kwargs) == date(2026, 11, 25)
    saturday = datetime(2026, 11, 28, 15, 0, tzinfo=timezone.utc)
    assert cal.value_date(cal.FED, saturday, **kwargs) == date(2026, 11, 30)


def test_month_end_peak_days():
    assert cal.is_month_end_peak(date(2026, 11, 30)) and cal.is_month_end_peak(date(2026, 11, 28))
    assert not cal.is_month_end_peak(date(2026, 11, 27))
