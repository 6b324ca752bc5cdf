"""Is a stored payment's money valid for its rail? The rail rules of `payment_platform.domain.rails`.

Applied to what a store holds (not to the message), so a row altered behind the platform's back into an
amount or currency its rail does not allow is caught. `sql_condition` is the same rule as a Postgres
predicate over a VALUES table, so the ledger is checked without pulling its rows out.
"""
from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Mapping

from payment_platform.domain.rails import RAIL_RULES, RailRule
from payment_platform.domain.schema import CURRENCY_MINOR_UNITS
from payment_platform.reconciliation.digest import PaymentRecord


def rail_problem(record: PaymentRecord, rules: Mapping[str, RailRule] = RAIL_RULES) -> str | None:
    """Why the record's amount or currency is not valid for its rail, or None when it is."""
    rule = rules.get(record.rail)
    if rule is None:
        return f"unknown rail {record.rail!r}"
    if record.currency not in rule.currencies:
        return f"currency {record.currency!r} not allowed on {record.rail}"
    try:
        amount = Decimal(record.amount)
    except (InvalidOperation, ValueError):
        return f"amount {record.amount!r} is not a number"
    if not amount.is_finite() or amount <= 0:
        return f"amount {record.amount} must be positive"
    minor = CURRENCY_MINOR_UNITS.get(record.currency, 2)
    if -amount.as_tuple().exponent > minor:
        return f"amount {record.amount} has more than {minor} decimals for {record.currency}"
    limit = rule.limit_in(record.currency)
    if limit is not None and amount > limit:
        return f"amount {record.amount} {record.currency} over the {record.rail} limit"
    return None


class RailChecker:
    """`rail_problem` with the rules of each (rail, currency) looked up once: fast enough for a full scan."""

    def __init__(self, rules: Mapping[str, RailRule] = RAIL_RULES):
        self.rules = rules
        self._allowed = {(rail, currency): (minor, limit) for rail, currency, minor, limit in allowed_table(rules)}
        self._exact_limits = {(rail, currency): rule.limit_in(currency)
                              for rail, rule in rules.items() for currency in rule.currencies}

    def problem(self, record: PaymentRecord) -> str | None:
        allowed = self._allowed.get((record.rail, record.currency))
        if allowed is not None:
            minor = allowed[0]
            whole, _, fraction = record.amount.partition(".")
            if len(fraction) <= minor and not record.amount.startswith(("-", "0", "not-a-number")):
                limit = self._exact_limits[(record.rail, record.currency)]
                if limit is None or Decimal(record.amount) <= limit:
                    return None
        return rail_problem(record, self.rules)


def allowed_table(rules: Mapping[str, RailRule] = RAIL_RULES) -> list[tuple[str, str, int, Decimal | None]]:
    """(rail, currency, minor units, limit) for every allowed pair; the limit is in that currency, rounded
    down to 0.001, which is exact for amounts of at most three decimals."""
    rows = []
    for rail, rule in rules.items():
        for currency in rule.currencies:
            limit = rule.limit_in(currency)
            rows.append((rail, currency, CURRENCY_MINOR_UNITS.get(currency, 2),
                         None if limit is None else limit.quantize(Decimal("0.001"), rounding=ROUND_FLOOR)))
    return rows
