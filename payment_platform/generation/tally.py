"""Counts and sums of a generated batch, taken while it streams past (no I/O)."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Iterable, Iterator

from payment_platform.domain.schema import RAILS
from payment_platform.generation.generator import GeneratedMessage


class BatchTally:
    """Counts and sums per rail and currency, taken while the batch streams past."""

    def __init__(self) -> None:
        self.count = self.bad = 0
        self.by_rail = {rail: 0 for rail in RAILS}
        self.sums: dict[tuple[str, str], Decimal] = {}
        self.counts: dict[tuple[str, str], int] = {}
        self.defects: dict[str, int] = {}

    def watch(self, messages: Iterable[GeneratedMessage]) -> Iterator[GeneratedMessage]:
        for message in messages:
            self.count += 1
            if message.defect:
                self.bad += 1
                self.defects[message.defect] = self.defects.get(message.defect, 0) + 1
            else:
                self.by_rail[message.payment_type] += 1
                key = (message.payment_type, message.currency)
                self.counts[key] = self.counts.get(key, 0) + 1
                try:
                    self.sums[key] = self.sums.get(key, Decimal(0)) + Decimal(message.amount)
                except InvalidOperation:
                    pass
            yield message

    def figures(self) -> dict:
        """The batch's figures: whole numbers, and per-key tables (rail/currency -> count or sum as text)."""
        return {
            "count": self.count,
            "bad_records": self.bad,
            **{f"count_{rail}": n for rail, n in self.by_rail.items()},
            "counts_by_rail_currency": {f"{rail}/{currency}": n for (rail, currency), n in sorted(self.counts.items())},
            "sums_by_rail_currency": {f"{rail}/{currency}": str(total)
                                      for (rail, currency), total in sorted(self.sums.items())},
            "defects": dict(sorted(self.defects.items())),
        }
