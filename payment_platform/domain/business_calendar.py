"""Business days, holidays and cut-offs of the payment calendars (plain date arithmetic, no I/O).

- FED: US Federal Reserve holidays. A holiday on a Sunday is observed the Monday after; one on a
  Saturday is not moved (the Fed is open the Friday before), as the Federal Reserve publishes it.
- TARGET2: Eurosystem closing days: New Year's Day, Good Friday, Easter Monday, 1 May, 25 and 26 December.
- ALWAYS: instant rails (RTP, SEPA Instant) settle every day of the year.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dateutil.easter import easter

FED, TARGET2, ALWAYS = "FED", "TARGET2", "ALWAYS"


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given weekday (Mon=0) of a month; n=-1 for the last."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = (date(year, month + 1, 1) if month < 12 else date(year + 1, 1, 1)) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _sunday_to_monday(day: date) -> date:
    return day + timedelta(days=1) if day.weekday() == 6 else day


@lru_cache(maxsize=256)
def holidays(calendar: str, year: int) -> frozenset[date]:
    if calendar == FED:
        fixed = [date(year, 1, 1), date(year, 6, 19), date(year, 7, 4), date(year, 11, 11), date(year, 12, 25)]
        floating = [
            _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
            _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
            _nth_weekday(year, 5, 0, -1),  # Memorial Day
            _nth_weekday(year, 9, 0, 1),  # Labor Day
            _nth_weekday(year, 10, 0, 2),  # Columbus Day
            _nth_weekday(year, 11, 3, 4),  # Thanksgiving Day
        ]
        return frozenset([_sunday_to_monday(d) for d in fixed] + floating)
    if calendar == TARGET2:
        sunday = easter(year)
        return frozenset({date(year, 1, 1), sunday - timedelta(days=2), sunday + timedelta(days=1),
                          date(year, 5, 1), date(year, 12, 25), date(year, 12, 26)})
    if calendar == ALWAYS:
        return frozenset()
    raise ValueError(f"unknown calendar {calendar!r}")


def is_business_day(calendar: str, day: date) -> bool:
    if calendar == ALWAYS:
        return True
    return day.weekday() < 5 and day not in holidays(calendar, day.year)


def next_business_day(calendar: str, day: date, days: int = 1) -> date:
    """The business day `days` business days after `day` (days=0: `day` itself if open, else the next)."""
    while not is_business_day(calendar, day):
        day += timedelta(days=1)
    for _ in range(days):
        day += timedelta(days=1)
        while not is_business_day(calendar, day):
            day += timedelta(days=1)
    return day


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def booking_date(created_at: datetime, zone: str) -> date:
    """The calendar day `created_at` falls on in `zone` (a rail's booking time zone), not in UTC."""
    return created_at.astimezone(_zone(zone)).date()


def value_date(calendar: str, created_at: datetime, cutoff: time | None, cutoff_tz: str,
               settlement_days: int) -> date:
    """Settlement date: the booking day in the rail's time zone, moved to the next business day when the
    payment arrives after the cut-off or on a closed day, then `settlement_days` business days on."""
    local = created_at.astimezone(_zone(cutoff_tz))
    booking = booking_date(created_at, cutoff_tz)
    if cutoff is not None and local.time() >= cutoff:
        booking += timedelta(days=1)
    return next_business_day(calendar, booking, settlement_days)


def is_month_end_peak(day: date, last_days: int = 3) -> bool:
    """The last few days of a month, when corporate payables and payroll peak."""
    return (day + timedelta(days=last_days)).month != day.month
