"""The payment rails and their rules, in one table a payments engineer can read top to bottom.

Every rule the generator follows and `validation` enforces comes from `RAIL_RULES` (or a table built by
`rail_rules(...)` with other settings, e.g. a different SEPA Instant cap). Amounts are Decimal strings in
the payment's currency; a limit set in another currency is converted with `INDICATIVE_USD_RATES`
(indicative reference rates, good enough for limits and realistic amounts, not for accounting).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import time
from decimal import Decimal
from types import MappingProxyType
from typing import Mapping

# Calendars: FED = US Federal Reserve holidays, TARGET2 = Eurosystem closing days, ALWAYS = 24/7/365.
from payment_platform.domain.business_calendar import ALWAYS, FED, TARGET2
from payment_platform.domain.schema import Rail


# Which account identifiers a party must carry on a rail (schema.PARTY_ACCOUNT_SETS).
ABA = ("account_number", "routing_number")
IBAN_BIC = ("iban", "bic")
CARD = ("card_token", "card_bin", "card_last4")

SEPA_COUNTRIES = frozenset(
    "AT BE BG CH CY CZ DE DK EE ES FI FR GB GR HR HU IE IS IT LI LT LU LV MC MT NL NO PL PT RO SE SI SK SM".split())

# USD value of one unit of a currency (indicative, for limits and amount sampling only).
INDICATIVE_USD_RATES: Mapping[str, Decimal] = MappingProxyType({k: Decimal(v) for k, v in {
    "USD": "1", "EUR": "1.08", "GBP": "1.27", "CHF": "1.13", "CAD": "0.73", "AUD": "0.66", "NZD": "0.60",
    "SEK": "0.095", "NOK": "0.093", "DKK": "0.145", "PLN": "0.25", "CZK": "0.043", "HUF": "0.0027",
    "SGD": "0.74", "HKD": "0.128", "CNY": "0.14", "INR": "0.012", "MXN": "0.058", "BRL": "0.20",
    "ZAR": "0.054", "AED": "0.272", "ILS": "0.27", "JPY": "0.0067", "KRW": "0.00074", "KWD": "3.25",
    "BHD": "2.65",
}.items()})

# Home currency of the countries parties live in.
COUNTRY_CURRENCY: Mapping[str, str] = MappingProxyType({
    "US": "USD", "GB": "GBP", "CH": "CHF", "SE": "SEK", "NO": "NOK", "DK": "DKK", "PL": "PLN",
    **{c: "EUR" for c in ("DE", "FR", "NL", "ES", "IT", "BE", "AT", "IE", "FI", "PT", "LU")},
})

WIRE_CURRENCIES = ("USD", "EUR", "GBP", "CHF", "JPY", "CAD", "AUD", "SEK", "NOK", "DKK", "PLN", "SGD", "HKD",
                   "CNY", "MXN", "AED")
CARD_CURRENCIES = ("USD", "EUR", "GBP", "CHF", "CAD")

DEFAULT_SEPA_INSTANT_CAP_EUR = Decimal("100000.00")


@dataclass(frozen=True)
class RailRule:
    rail: str
    currencies: tuple[str, ...]  # allowed ISO 4217 codes
    limit: Decimal | None  # per-payment maximum in `limit_currency` (None: no scheme limit)
    limit_currency: str  # the currency `limit` is expressed in; other currencies convert at indicative rates
    limit_source: str  # where the limit comes from, shown in validation errors
    originator_ids: tuple[tuple[str, ...], ...]  # accepted identifier sets for the payer
    beneficiary_ids: tuple[tuple[str, ...], ...]  # accepted identifier sets for the payee
    calendar: str  # FED, TARGET2 or ALWAYS
    cutoff: time | None  # local cut-off for same-day value; None: no cut-off
    cutoff_tz: str  # IANA time zone of the cut-off
    settlement_days: int  # business days after the (cut-off adjusted) booking day to the value date
    median_usd: float  # lognormal amount distribution: median in USD ...
    sigma: float  # ... and shape (larger = heavier tail)
    share: float  # share of all generated traffic
    statuses: tuple[tuple[str, float], ...]  # ISO 20022 status code, weight

    def calendar_for(self, currency: str) -> tuple[str, str]:
        """(calendar, cut-off time zone) for a payment in `currency`: euro payments on multi-currency
        rails settle on TARGET2 days against a Frankfurt cut-off; everything else follows the rail."""
        if currency == "EUR" and len(self.currencies) > 1:
            return TARGET2, "Europe/Berlin"
        return self.calendar, self.cutoff_tz

    def limit_in(self, currency: str) -> Decimal | None:
        """The limit expressed in `currency` (converted at indicative rates when it differs)."""
        if self.limit is None:
            return None
        if currency == self.limit_currency:
            return self.limit
        return self.limit * INDICATIVE_USD_RATES[self.limit_currency] / INDICATIVE_USD_RATES[currency]


_SETTLED = (("ACSC", 0.62), ("ACSP", 0.16), ("ACCC", 0.06), ("ACTC", 0.05), ("PDNG", 0.04), ("RJCT", 0.04),
            ("ACWC", 0.01), ("CANC", 0.01), ("BLCK", 0.005), ("RCVD", 0.005))
_INSTANT = (("ACSC", 0.80), ("ACCC", 0.08), ("ACSP", 0.04), ("RJCT", 0.06), ("BLCK", 0.01), ("CANC", 0.01))
_BATCH = (("ACSP", 0.35), ("ACSC", 0.40), ("PDNG", 0.10), ("ACTC", 0.06), ("RJCT", 0.05), ("ACWP", 0.02),
          ("CANC", 0.02))

_R = RailRule
_RULES = (
    # rail          currencies        limit                            in     source
    _R("ACH", ("USD",), Decimal("1000000.00"), "USD", "Same Day ACH per-payment limit",
       (ABA,), (ABA,), FED, time(16, 45), "America/New_York", 0, 8_000, 1.3, 0.28, _BATCH),
    _R("WIRE", WIRE_CURRENCIES, Decimal("9999999999.99"), "USD", "Fedwire amount field maximum",
       (IBAN_BIC, ABA), (IBAN_BIC, ABA), FED, time(18, 0), "America/New_York", 0, 150_000, 1.5, 0.12, _SETTLED),
    _R("RTP", ("USD",), Decimal("10000000.00"), "USD", "RTP network per-payment limit",
       (ABA,), (ABA,), ALWAYS, None, "America/New_York", 0, 12_000, 1.2, 0.08, _INSTANT),
    _R("SEPA", ("EUR",), DEFAULT_SEPA_INSTANT_CAP_EUR, "EUR", "SEPA Instant cap (setting)",
       (IBAN_BIC,), (IBAN_BIC,), ALWAYS, None, "Europe/Berlin", 0, 9_000, 1.2, 0.18, _INSTANT),
    _R("CARD", CARD_CURRENCIES, Decimal("250000.00"), "USD", "commercial card single-transaction limit",
       (CARD,), (IBAN_BIC, ABA), FED, time(20, 0), "America/New_York", 1, 450, 1.0, 0.17, _SETTLED),
    _R("DIRECT_DEBIT", ("EUR",), Decimal("999999999.99"), "EUR", "SEPA Direct Debit amount field maximum",
       (IBAN_BIC,), (IBAN_BIC,), TARGET2, time(11, 0), "Europe/Berlin", 1, 2_500, 1.0, 0.08, _BATCH),
    _R("CHECK", ("USD",), Decimal("99999999.99"), "USD", "MICR amount field maximum",
       (ABA,), (ABA,), FED, time(18, 0), "America/New_York", 1, 4_000, 1.2, 0.09, _SETTLED),
)

RAIL_RULES: Mapping[str, RailRule] = MappingProxyType({rule.rail: rule for rule in _RULES})
assert set(RAIL_RULES) == {r.value for r in Rail}


def rail_rules(sepa_instant_cap_eur: Decimal | str | None = None) -> Mapping[str, RailRule]:
    """The rule table with settings applied (today: the SEPA Instant cap, in EUR)."""
    if sepa_instant_cap_eur is None:
        return RAIL_RULES
    cap = Decimal(str(sepa_instant_cap_eur)).quantize(Decimal("0.01"))
    if cap <= 0:
        raise ValueError(f"SEPA Instant cap must be positive, got {cap}")
    rules = dict(RAIL_RULES)
    rules["SEPA"] = replace(rules["SEPA"], limit=cap)
    return MappingProxyType(rules)
