"""Realistic B2B payments as Kafka-ready messages: `generate(count, seed, settings)`.

Per payment the hot path only draws from prepared tables (rail, payer, recurring counterparty, status),
samples a lognormal amount, advances a business-hours clock and a seeded uuid, and fills a JSON template
whose party fragments were serialised once (see parties.py). The output is byte-for-byte what
`schema.encode` gives for the same document, and the same seed and settings give the same bytes.

Time: arrivals follow a Poisson process whose rate follows the transatlantic business day (UTC hour
weights), drops at weekends and on Federal Reserve / TARGET2 holidays, and peaks in the last days of a
month and mid-month; so timestamps cluster in business hours on business days.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import ROUND_CEILING, Decimal
from typing import Iterator

from payment_platform.domain import business_calendar as cal
from payment_platform.domain.rails import COUNTRY_CURRENCY, INDICATIVE_USD_RATES, RailRule, rail_rules
from payment_platform.domain.schema import CURRENCY_MINOR_UNITS, SCHEMA_VERSION, encode
from payment_platform.generation.parties import PartyPool, build_pool
from payment_platform.generation.settings import DEFECTS, GenerationSettings

__all__ = ["GeneratedMessage", "GenerationSettings", "generate", "DEFECTS"]

# Weight of each UTC hour in a business day: Europe's morning, the transatlantic overlap, the US afternoon.
HOUR_WEIGHTS = (0.02, 0.02, 0.02, 0.02, 0.03, 0.06, 0.15, 0.40, 0.70, 0.85, 0.90, 0.80,
                0.75, 0.90, 1.00, 1.00, 0.95, 0.80, 0.70, 0.60, 0.50, 0.30, 0.10, 0.05)
WEEKEND_FACTOR = 0.04
HOLIDAY_FACTOR = 0.25  # per calendar (FED, TARGET2) closed that day
MONTH_END_FACTOR = 1.8  # last three days of a month: payables runs, payroll
MID_MONTH_FACTOR = 1.25  # the 15th: mid-month supplier runs

_TEMPLATE = ('{"schema_version":%d,"payment_id":"%s","payment_type":"%s","amount":{"value":"%s","currency":"%s"},'
             '"originator":%s,"beneficiary":%s,"created_at":"%s","value_date":"%s","status":"%s",'
             '"reference":"%s","remittance_info":"%s"}')
_UUID_VERSION_4 = (4 << 76) | (2 << 62)
_UUID_MASK = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_REMITTANCE = {
    "ACH": ("Invoice INV-%d", "Payroll batch PB-%d", "Vendor payment VP-%d"),
    "WIRE": ("Invoice INV-%d", "Intercompany funding IC-%d", "Purchase order PO-%d"),
    "RTP": ("Invoice INV-%d", "Urgent supplier payment SP-%d"),
    "SEPA": ("Rechnung RE-%d", "Facture FAC-%d", "Invoice INV-%d"),
    "CARD": ("Purchase order PO-%d", "Subscription SUB-%d", "Travel booking TB-%d"),
    "DIRECT_DEBIT": ("Mandate MND-%d collection", "Lease instalment LI-%d", "Utility bill UB-%d"),
    "CHECK": ("Check no. %d", "Invoice INV-%d"),
}


@dataclass(frozen=True, slots=True)
class GeneratedMessage:
    """One Kafka message: key, value (the wire bytes) and, for a deliberately bad record, its defect label."""

    key: bytes | None
    value: bytes
    defect: str | None
    payment_id: str
    payment_type: str
    currency: str
    amount: str  # decimal string as in the message ("" when not known)

    @property
    def headers(self) -> dict[str, bytes]:
        """Kafka headers: `defect` on bad records only (for scoring; ingestion never trusts it)."""
        return {"defect": self.defect.encode()} if self.defect else {}


def generate(count: int, seed: int, settings: GenerationSettings | None = None) -> Iterator[GeneratedMessage]:
    """Yields `count` messages; the same (count, seed, settings) always gives the same bytes.

    Streaming: nothing is kept per payment except a small ring of recent ids (for duplicate defects).
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    settings = settings or GenerationSettings()
    return _Generator(seed, settings).messages(count)


class _Clock:
    """A Poisson arrival clock whose rate follows business hours, business days and month-end peaks."""

    def __init__(self, start: datetime, peak_rate: float, rng: random.Random):
        self.t = start.timestamp()
        self.peak_rate = peak_rate
        self.rng = rng
        self._hour = -1
        self._rate = peak_rate
        self._second = -1
        self._prefix = ""

    def _rate_at(self, hour_index: int) -> float:
        return self.peak_rate * arrival_weight(datetime.fromtimestamp(hour_index * 3600, timezone.utc))

    def tick(self) -> str:
        """Advances to the next arrival and returns its ISO 8601 UTC timestamp (microseconds)."""
        hour = int(self.t // 3600)
        if hour != self._hour:
            self._hour, self._rate = hour, self._rate_at(hour)
        self.t += self.rng.expovariate(self._rate)
        micros = int(self.t * 1_000_000)
        second, micro = divmod(micros, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{micro:06d}Z"


class _WallClock(_Clock):
    """A live stream's clock (`produce`): each payment is stamped with the time it is generated."""

    def tick(self) -> str:
        micros = time.time_ns() // 1000
        second, micro = divmod(micros, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{micro:06d}Z"


def arrival_weight(moment: datetime) -> float:
    """How busy payments traffic is at a moment, relative to the busiest business hour (1.0; month-end
    peaks go above): the UTC hour's weight times the day's factor."""
    moment = moment.astimezone(timezone.utc)
    return HOUR_WEIGHTS[moment.hour] * _day_factor(moment.date())


_DAY_FACTORS: dict[date, float] = {}


def _day_factor(day: date) -> float:
    factor = _DAY_FACTORS.get(day)
    if factor is None:
        factor = 1.0
        if day.weekday() >= 5:
            factor *= WEEKEND_FACTOR
        for calendar in (cal.FED, cal.TARGET2):
            if day in cal.holidays(calendar, day.year):
                factor *= HOLIDAY_FACTOR
        if cal.is_month_end_peak(day):
            factor *= MONTH_END_FACTOR
        elif day.day == 15:
            factor *= MID_MONTH_FACTOR
        _DAY_FACTORS[day] = factor
    return factor


class _Generator:
    def __init__(self, seed: int, settings: GenerationSettings):
        self.settings = settings
        self.rng = random.Random(seed)
        self.rules = rail_rules(settings.sepa_instant_cap_eur)
        self.pool: PartyPool = build_pool(settings.pool_seed, settings.parties)
        clock = _WallClock if settings.live_clock else _Clock
        self.clock = clock(settings.start, settings.peak_rate_per_s, self.rng)
        self.rail_table = _quota_table([(rail, self.rules[rail].share) for rail in settings.rails])
        self.status_tables = {rail: _quota_table(rule.statuses) for rail, rule in self.rules.items()}
        self.value_dates: dict[tuple[str, str, int], str] = {}
        self.recent_ids: list[str] = []

    def messages(self, count: int) -> Iterator[GeneratedMessage]:
        rng = self.rng
        bad_fraction = self.settings.bad_fraction
        key_of = _KEYS[self.settings.key_strategy]
        recent = self.recent_ids
        good = self._good
        for n in range(count):
            fields, parts = good()
            if bad_fraction and rng.random() < bad_fraction:
                fields = self._bad(fields, parts)
            elif len(recent) < 512:
                recent.append(fields[2])
            else:
                recent[n % 512] = fields[2]
            yield GeneratedMessage(key_of(fields, parts), *fields)

    def _good(self) -> tuple[tuple, tuple]:
        """One good payment: the GeneratedMessage fields after the key (value, defect, payment_id, payment_type,
        currency, amount) and the parts the defects and keys need (payer, payee, rule)."""
        rnd = self.rng.random  # int(rnd() * n) draws an index: several times cheaper than randrange
        rail = self.rail_table[int(rnd() * len(self.rail_table))]
        rule = self.rules[rail]
        parties = self.pool.parties
        lane = self.pool.lanes[rail]
        payer = parties[lane.payers[int(rnd() * len(lane.payers))]]
        payee_table = lane.counterparties[payer.index]
        payee = parties[payee_table[int(rnd() * len(payee_table))]]
        currency = self._currency(rule, payer.country, payee.country)
        amount = self._amount(rule, currency)
        created_at = self.clock.tick()
        value_date = self._value_date(rule, currency, created_at)
        h = "%032x" % ((self.rng.getrandbits(128) & _UUID_MASK) | _UUID_VERSION_4)
        payment_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        statuses = self.status_tables[rail]
        status = statuses[int(rnd() * len(statuses))]
        reference = f"E2E{created_at[:4]}{created_at[5:7]}{created_at[8:10]}{h[:12].upper()}"
        templates = _REMITTANCE[rail]
        remittance = templates[int(rnd() * len(templates))] % (10_000 + int(rnd() * 990_000))
        originator = payer.card_json if rail == "CARD" else payer.bank_json
        value = (_TEMPLATE % (SCHEMA_VERSION, payment_id, rail, amount, currency, originator, payee.bank_json,
                              created_at, value_date, status, reference, remittance)).encode()
        return (value, None, payment_id, rail, currency, amount), (payer, payee, rule)

    def _currency(self, rule: RailRule, payer_country: str, payee_country: str) -> str:
        if len(rule.currencies) == 1:
            return rule.currencies[0]
        roll = self.rng.random()
        home = COUNTRY_CURRENCY.get(payee_country, "USD") if roll < 0.7 else \
            COUNTRY_CURRENCY.get(payer_country, "USD") if roll < 0.9 else \
            rule.currencies[self.rng.randrange(len(rule.currencies))]
        return home if home in rule.currencies else ("EUR" if "EUR" in rule.currencies else rule.currencies[0])

    def _amount(self, rule: RailRule, currency: str) -> str:
        rng = self.rng
        rate = _USD_RATE[currency]
        limit_usd = _limit_usd(rule)
        ceiling = limit_usd * 0.999  # a margin below the limit for float rounding
        for _ in range(8):
            usd = rule.median_usd * math.exp(rule.sigma * rng.gauss(0.0, 1.0))
            if usd < ceiling:
                break
        else:
            usd = ceiling * 0.9
        amount = usd / rate
        if amount >= 1000 and rng.random() < 0.2:  # people pay round sums: 25,000.00 rather than 24,871.36
            rounded = round(amount, -2)
            amount = rounded if rounded * rate < ceiling else amount
        minor = _MINOR[currency]
        amount = max(amount, 10.0 ** -minor)
        return f"{amount:.{minor}f}"

    def _value_date(self, rule: RailRule, currency: str, created_at: str) -> str:
        minute = created_at[:16]
        key = (rule.rail, currency, minute)
        cached = self.value_dates.get(key)
        if cached is None:
            if len(self.value_dates) > 20_000:
                self.value_dates.clear()
            calendar, zone = rule.calendar_for(currency)
            moment = datetime.fromisoformat(created_at[:-1] + "+00:00")
            cached = cal.value_date(calendar, moment, rule.cutoff, zone, rule.settlement_days).isoformat()
            self.value_dates[key] = cached
        return cached

    # --- deliberately bad, labelled records ------------------------------------------------------------

    def _bad(self, fields: tuple, parts: tuple) -> tuple:
        """The same payment made wrong in one labelled way (or left good if no defect applies to it)."""
        value, _, payment_id, rail, currency, amount = fields
        payer, payee, rule = parts
        rng = self.rng
        choices = [d for d in self.settings.defects if _applicable(d, rule, payer, payee, bool(self.recent_ids))]
        if not choices:  # e.g. only card defects asked for, on a SEPA payment: it stays a good payment
            return fields
        defect = choices[rng.randrange(len(choices))]
        if defect == "not_json":  # cut short after the payment id, as a torn write would leave it
            after_id = value.index(b'"payment_type"')
            cut = value[: rng.randrange(after_id, max(after_id + 1, len(value) // 2))]
            return (cut, defect, payment_id, rail, currency, amount)
        # identifiers pulls in schwifty and stdnum (~0.15 s): only a bad record needs it, so start-up does not
        from payment_platform.domain import identifiers as ids

        doc = json.loads(value)
        if defect == "bad_iban_check_digits":
            party = doc["originator"] if "iban" in doc["originator"] else doc["beneficiary"]
            party["iban"] = ids.break_iban_check_digits(party["iban"])
        elif defect == "bad_aba_check_digit":
            party = doc["originator"] if "routing_number" in doc["originator"] else doc["beneficiary"]
            party["routing_number"] = ids.break_routing_number(party["routing_number"])
        elif defect == "negative_amount":
            amount = "-" + amount
        elif defect == "over_rail_limit":
            limit = rule.limit_in(currency)
            step = Decimal(1).scaleb(-_MINOR[currency])
            over = (limit * Decimal(rng.uniform(1.01, 1.5))).quantize(step, rounding=ROUND_CEILING)
            amount = f"{max(over, limit + step):f}"
        elif defect == "currency_not_allowed":
            currency = next(c for c in ("USD", "EUR", "GBP", "KRW") if c not in rule.currencies)
            amount = f"{float(amount):.{_MINOR[currency]}f}"
        elif defect == "card_number_present":
            body = payer.card["card_bin"] + "".join(str(rng.randrange(10)) for _ in range(5)) + "123"
            doc["originator"]["card_token"] = body + ids.luhn.calc_check_digit(body)
        elif defect == "missing_field":
            del doc[("amount", "created_at", "beneficiary", "status", "payment_type")[rng.randrange(5)]]
        elif defect == "duplicate_payment_id":
            payment_id = self.recent_ids[rng.randrange(len(self.recent_ids))]
            doc["payment_id"] = payment_id
        if "amount" in doc:
            doc["amount"] = {"value": amount, "currency": currency}
        return (encode(doc), defect, payment_id, rail, currency, amount)


def _quota_table(weighted: "list[tuple[str, float]] | tuple[tuple[str, float], ...]", size: int = 1000) -> tuple[str, ...]:
    """A table of `size` entries holding each item in proportion to its weight (largest remainders), so one
    uniform index draws with exactly the intended shares."""
    total = sum(w for _, w in weighted)
    exact = [(item, w * size / total) for item, w in weighted]
    counts = {item: int(x) for item, x in exact}
    by_remainder = sorted(exact, key=lambda pair: pair[1] - int(pair[1]), reverse=True)
    for item, _ in by_remainder[: size - sum(counts.values())]:
        counts[item] += 1
    return tuple(item for item, _ in weighted for _ in range(counts[item]))


def _applicable(defect: str, rule: RailRule, payer, payee, have_ids: bool) -> bool:
    if defect == "bad_iban_check_digits":
        return "iban" in payee.bank or (rule.rail != "CARD" and "iban" in payer.bank)
    if defect == "bad_aba_check_digit":
        return "routing_number" in payee.bank or (rule.rail != "CARD" and "routing_number" in payer.bank)
    if defect == "over_rail_limit":
        return rule.limit is not None
    if defect == "card_number_present":
        return rule.rail == "CARD"
    if defect == "duplicate_payment_id":
        return have_ids
    return True


_USD_RATE = {c: float(r) for c, r in INDICATIVE_USD_RATES.items()}
_MINOR = dict(CURRENCY_MINOR_UNITS)


def _limit_usd(rule: RailRule) -> float:
    if rule.limit is None:
        return math.inf
    return float(rule.limit) * _USD_RATE[rule.limit_currency]


# A key strategy maps (message fields, (payer, payee, rule)) to the Kafka key.
def _key_payment_id(fields: tuple, parts: tuple) -> bytes:
    return fields[2].encode()


def _key_originator(fields: tuple, parts: tuple) -> bytes:
    return parts[0].party_id.encode()


def _key_payment_type(fields: tuple, parts: tuple) -> bytes:
    return fields[3].encode()


def _key_none(fields: tuple, parts: tuple) -> None:
    return None


_KEYS = {"payment_id": _key_payment_id, "originator": _key_originator, "payment_type": _key_payment_type,
         "none": _key_none}

