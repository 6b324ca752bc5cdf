"""The pool of companies payments flow between, built once per (pool_seed, size) and then only drawn from.

A party has a stable id (`PTY-000042`), a name (Faker, in its country's locale), a country and accounts:
US companies bank with an ABA routing number and account number, European ones with an IBAN at a real
bank of their country and its BIC (schwifty's registry), and every company holds a commercial card of
which only the token, BIN and last four digits are kept. Payer sizes follow a Pareto law (a few large
payers send most payments), and each payer pays a stable set of recurring counterparties per rail.
Every identifier is validated once here, so the per-payment path only picks prepared JSON fragments.
Building takes seconds (Faker names in 18 locales, IBANs, lanes), so the built pool is kept on disk
(pool_cache.py) and a later process loads the identical pool in a fraction of that.
"""
from __future__ import annotations

import json
import random
from array import array
from dataclasses import dataclass
from functools import lru_cache

from payment_platform.domain.rails import ABA, CARD, IBAN_BIC, RAIL_RULES, SEPA_COUNTRIES

# country -> (share of companies, Faker locale)
COUNTRIES = {
    "US": (0.44, "en_US"), "DE": (0.10, "de_DE"), "FR": (0.07, "fr_FR"), "GB": (0.07, "en_GB"),
    "NL": (0.05, "nl_NL"), "ES": (0.04, "es_ES"), "IT": (0.04, "it_IT"), "CH": (0.03, "fr_CH"),
    "BE": (0.02, "nl_BE"), "AT": (0.02, "de_AT"), "IE": (0.02, "en_IE"), "SE": (0.02, "sv_SE"),
    "PL": (0.02, "pl_PL"), "FI": (0.01, "fi_FI"), "PT": (0.01, "pt_PT"), "DK": (0.01, "da_DK"),
    "NO": (0.01, "no_NO"), "LU": (0.02, "fr_FR"),
}
DRAW_TABLE_SIZE = 256  # draws use precomputed tables: one randrange instead of a weighted choice


@dataclass(frozen=True)
class PoolParty:
    index: int
    party_id: str
    name: str
    country: str
    size: float  # Pareto weight: how much this company pays
    bank: dict[str, str]  # iban+bic or account_number+routing_number
    card: dict[str, str]  # card_token, card_bin, card_last4
    bank_json: str  # the party as it appears in a message, with its bank account
    card_json: str  # the party as a card payer

    @property
    def id_kind(self) -> tuple[str, ...]:
        return IBAN_BIC if "iban" in self.bank else ABA


@dataclass(frozen=True)
class RailLane:
    """Who pays whom on one rail: payers by size, and each payer's recurring counterparties."""

    payers: array  # draw table of payer indexes, weighted by size
    counterparties: dict[int, array]  # payer index -> draw table of counterparty indexes


@dataclass(frozen=True)
class PartyPool:
    parties: tuple[PoolParty, ...]
    lanes: dict[str, RailLane]


def _fragment(party_id: str, name: str, country: str, accounts: dict[str, str]) -> str:
    return json.dumps({"party_id": party_id, "name": name, "country": country, **accounts},
                      separators=(",", ":"), ensure_ascii=False)


def _draw_table(items: list[int], weights: list[float], rng: random.Random, size: int = DRAW_TABLE_SIZE) -> array:
    # An array, not a tuple: the pool cache loads thousands of these tables (docs/decisions.md).
    return array("H" if max(items) < 1 << 16 else "L", rng.choices(items, weights=weights, k=size))


def _eligible(party: PoolParty, wanted: tuple[tuple[str, ...], ...], rail: str) -> bool:
    if CARD in wanted and len(wanted) == 1:
        return True  # every company holds a commercial card
    if party.id_kind not in wanted:
        return False
    return rail not in ("SEPA", "DIRECT_DEBIT") or party.country in SEPA_COUNTRIES


@lru_cache(maxsize=4)
def build_pool(pool_seed: int, size: int) -> PartyPool:
    """The party pool for a seed and size: once per process, from the disk cache when it holds it."""
    from payment_platform.generation import pool_cache

    return pool_cache.load_or_build(pool_seed, size, construct_pool, PartyPool)


def construct_pool(pool_seed: int, size: int) -> PartyPool:
    """Builds the pool from scratch (what the cache holds); the same seed and size give an equal pool."""
    from faker import Faker  # imported only here (as identifiers' schwifty): a cache hit never pays for them

    from payment_platform.domain import identifiers as ids

    rng = random.Random(pool_seed)
    card_secret = rng.getrandbits(256).to_bytes(32, "big")  # keys the card tokens; the numbers are discarded
    countries = list(COUNTRIES)
    fakers = {}
    for country in countries:
        fake = Faker(COUNTRIES[country][1])
        fake.seed_instance(pool_seed)
        fakers[country] = fake
    chosen = rng.choices(countries, weights=[COUNTRIES[c][0] for c in countries], k=size)
    parties = []
    for index, country in enumerate(chosen):
        party_id = f"PTY-{index + 1:06d}"
        name = fakers[country].company()
        if country == "US":
            bank = {"account_number": ids.make_account_number(rng), "routing_number": ids.make_routing_number(rng)}
            assert ids.routing_number_problem(bank["routing_number"]) is None
        else:
            iban, bic = ids.make_iban(rng, country)
            assert ids.iban_problem(iban) is None and ids.bic_problem(bic) is None, iban
            bank = {"iban": iban, "bic": bic}
        token, bin_, last4 = ids.make_card(rng, card_secret)
        card = {"card_token": token, "card_bin": bin_, "card_last4": last4}
        size_weight = rng.paretovariate(1.16)  # the 80/20 law of who pays
        parties.append(PoolParty(index, party_id, name, country, size_weight, bank, card,
                                 _fragment(party_id, name, country, bank), _fragment(party_id, name, country, card)))
    lanes = {rail: _lane(rail, parties, rng) for rail in RAIL_RULES}
    return PartyPool(tuple(parties), lanes)


def _lane(rail: str, parties: list[PoolParty], rng: random.Random) -> RailLane:
    rule = RAIL_RULES[rail]
    payers = [p for p in parties if _eligible(p, rule.originator_ids, rail)]
    payees = [p for p in parties if _eligible(p, rule.beneficiary_ids, rail)]
    by_country: dict[str, list[PoolParty]] = {}
    for p in payees:
        by_country.setdefault(p.country, []).append(p)
    counterparties = {}
    for payer in payers:
        count = min(len(payees) - 1, 3 + int(4 * payer.size ** 0.7))  # larger payers, more suppliers
        domestic = by_country.get(payer.country, [])
        chosen: dict[int, None] = {}
        while len(chosen) < count:
            # B2B traffic is mostly domestic; cross-border only where the rail allows it
            pool = domestic if domestic and (rng.random() < 0.75) else payees
            candidate = rng.choice(pool)
            if candidate.index != payer.index:
                chosen[candidate.index] = None
        ranked = list(chosen)
        counterparties[payer.index] = _draw_table(ranked, [1 / (rank + 1) for rank in range(len(ranked))], rng, 64)
    return RailLane(_draw_table([p.index for p in payers], [p.size for p in payers], rng, 4096), counterparties)
