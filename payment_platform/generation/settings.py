"""Every knob of payment generation in one object, with the defaults `generate`, `produce`, `demo` and the
scheduled Dagster asset share.

Reproducibility: the same `seed` and `GenerationSettings` give byte-identical output. Nothing is taken
from the wall clock or the global `random`: uuids, amounts and timestamps all come from one
`random.Random(seed)`, and time starts at `start` (default Monday 2 November 2026, 13:00 UTC, which is
08:00 in New York and 14:00 in Frankfurt, so a batch opens on a transatlantic business morning).
Only `live_clock=True` (the continuous `produce` stream) stamps payments with the wall clock instead.
The party pool comes from its own `pool_seed`, so party ids and accounts are stable across runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal

from payment_platform.domain.rails import DEFAULT_SEPA_INSTANT_CAP_EUR
from payment_platform.domain.schema import RAILS
from payment_platform.errors import UsageError

DEFAULT_START = datetime(2026, 11, 2, 13, 0, tzinfo=timezone.utc)
KEY_STRATEGIES = ("payment_id", "originator", "payment_type", "none")

# Labels of deliberately bad records; each travels as Kafka header `defect` so quarantine can be scored.
DEFECTS = (
    "bad_iban_check_digits",  # an IBAN whose mod-97 check digits are wrong
    "bad_aba_check_digit",  # an ABA routing number whose 3-7-1 check digit is wrong
    "negative_amount",
    "over_rail_limit",  # above the rail's per-payment limit
    "currency_not_allowed",  # a currency the rail forbids (e.g. USD on SEPA)
    "card_number_present",  # a full card number where only a token may travel
    "missing_field",  # a required field removed
    "duplicate_payment_id",  # a new payment reusing an earlier payment's id (valid message: ingestion dedupes)
    "not_json",  # truncated bytes that do not parse
)
# Defects that validation must refuse (a duplicate id is a valid message that deduplication absorbs).
QUARANTINE_DEFECTS = tuple(d for d in DEFECTS if d != "duplicate_payment_id")


@dataclass(frozen=True)
class GenerationSettings:
    bad_fraction: float = 0.0  # share of deliberately bad, labelled records (0 to 1)
    rails: tuple[str, ...] = RAILS  # the rails to generate (their shares are renormalised)
    start: datetime = DEFAULT_START  # timestamp anchor: the first payment is created just after it
    peak_rate_per_s: float = 20.0  # arrivals per second at the busiest business hour (sets the time span)
    key_strategy: str = "payment_id"  # Kafka key: payment_id, originator, payment_type or none
    pool_seed: int = 20261102  # seeds the party pool (stable ids, names and accounts across runs)
    parties: int = 4000  # companies in the pool (payers and payees)
    sepa_instant_cap_eur: Decimal = DEFAULT_SEPA_INSTANT_CAP_EUR
    defects: tuple[str, ...] = field(default=DEFECTS)  # which defect kinds bad records may carry
    live_clock: bool = False  # stamp payments with the wall clock (a live stream: `produce`), not reproducible

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.bad_fraction <= 1.0:
            problems.append(("--bad-fraction", f"must be between 0 and 1, got {self.bad_fraction}"))
        unknown = [r for r in self.rails if r not in RAILS]
        if unknown or not self.rails:
            problems.append(("--rails", f"unknown rail {', '.join(unknown) or '(none given)'}; "
                                        f"choose from {', '.join(RAILS)}"))
        if self.start.tzinfo is None:
            problems.append(("--start", f"needs a time zone, got {self.start.isoformat()}"))
        if not self.peak_rate_per_s > 0:
            problems.append(("peak_rate_per_s", f"must be positive, got {self.peak_rate_per_s}"))
        if self.key_strategy not in KEY_STRATEGIES:
            problems.append(("--key-strategy", f"unknown key strategy {self.key_strategy!r}; "
                                               f"choose from {', '.join(KEY_STRATEGIES)}"))
        if self.parties < 50:
            problems.append(("parties", f"the pool needs at least 50 parties, got {self.parties}"))
        if not Decimal(self.sepa_instant_cap_eur) > 0:
            problems.append(("sepa_instant_cap_eur", f"must be positive, got {self.sepa_instant_cap_eur}"))
        bad_defects = [d for d in self.defects if d not in DEFECTS]
        if bad_defects or not self.defects:
            problems.append(("defects", f"unknown defect {', '.join(bad_defects) or '(none given)'}; "
                                        f"choose from {', '.join(DEFECTS)}"))
        if problems:
            option, problem = problems[0]
            raise UsageError(f"{option}: {problem}")

    def with_(self, **changes) -> "GenerationSettings":
        return replace(self, **changes)
