"""Account identifiers: checks (for validation) and makers (for the party pools).

The check digits are schwifty's (IBAN mod-97 with each country's layout, BIC) and python-stdnum's (ABA
routing number 3-7-1, Luhn), never hand-written. Each check returns None when the value is fine or a
sentence saying what is wrong; results are cached because the same accounts recur in B2B traffic.
"""
from __future__ import annotations

import hashlib
import random
import re
from functools import lru_cache

from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException
from stdnum import luhn
from stdnum.exceptions import ValidationError
from stdnum.us import rtn

_DIGITS = re.compile(r"^\d+$")
_PAN = re.compile(r"^\d{13,19}$")
_CARD_TOKEN = re.compile(r"^tok_[0-9a-f]{24}$")

# First two digits of an ABA routing number: Federal Reserve district (01-12), thrift (21-32),
# electronic (61-72) or traveller's cheque (80).
ABA_PREFIXES = tuple(f"{n:02d}" for n in (*range(1, 13), *range(21, 33), *range(61, 73), 80))


@lru_cache(maxsize=65536)
def iban_problem(value: str) -> str | None:
    try:
        IBAN(value)
    except SchwiftyException as error:
        return f"invalid IBAN {value!r}: {error}"
    return None


@lru_cache(maxsize=65536)
def iban_country(value: str) -> str:
    return IBAN(value).country_code


@lru_cache(maxsize=65536)
def bic_problem(value: str) -> str | None:
    try:
        BIC(value)
    except SchwiftyException as error:
        return f"invalid BIC {value!r}: {error}"
    return None


@lru_cache(maxsize=65536)
def routing_number_problem(value: str) -> str | None:
    if len(value) != 9 or not _DIGITS.match(value):
        return f"ABA routing number must be 9 digits, got {value!r}"
    if value[:2] not in ABA_PREFIXES:
        return f"ABA routing number {value!r} has an unassigned prefix {value[:2]}"
    try:
        rtn.validate(value)
    except ValidationError:
        return f"ABA routing number {value!r} fails the 3-7-1 check digit"
    return None


def account_number_problem(value: str) -> str | None:
    if not (4 <= len(value) <= 17 and _DIGITS.match(value)):
        return f"account number must be 4 to 17 digits, got {value!r}"
    return None


def is_card_number(value: str) -> bool:
    """True when the value is a full card number: 13 to 19 digits (spaces and dashes allowed) passing Luhn."""
    digits = value.replace(" ", "").replace("-", "")
    return bool(_PAN.match(digits)) and luhn.is_valid(digits)


def card_problem(token: str, bin_: str, last4: str) -> str | None:
    if not _CARD_TOKEN.match(token):
        return f"card token must look like tok_ followed by 24 hex digits (got {len(token)} characters)"
    if not (len(bin_) in (6, 8) and _DIGITS.match(bin_)):
        return f"card BIN must be 6 or 8 digits, got {bin_!r}"
    if not (len(last4) == 4 and _DIGITS.match(last4)):
        return f"card last four must be 4 digits, got {last4!r}"
    return None


# --- makers (used once, when the party pools are built) ---------------------------------------------

def make_routing_number(rng: random.Random) -> str:
    body = rng.choice(ABA_PREFIXES) + f"{rng.randrange(10**6):06d}"
    return body + rtn.calc_check_digit(body)


def make_account_number(rng: random.Random) -> str:
    return str(rng.randrange(10**7, 10**12))


def make_iban(rng: random.Random, country: str) -> tuple[str, str]:
    """A random IBAN at a real bank of the country (schwifty's registry) and that bank's BIC."""
    for _ in range(20):
        iban = IBAN.random(country_code=country, random=rng)
        if iban.bic is not None:
            return str(iban), str(iban.bic)
    raise ValueError(f"no bank with a BIC in schwifty's registry for {country}")


# Commercial card BIN ranges (Visa 4, Mastercard 5) used for corporate and purchasing cards.
COMMERCIAL_BINS = ("448590", "455676", "471622", "485246", "540500", "552433", "556766", "558158")


def make_card(rng: random.Random, secret: bytes) -> tuple[str, str, str]:
    """A Luhn-valid 16-digit card number, returned ONLY as (token, BIN, last four): the number never leaves."""
    bin_ = rng.choice(COMMERCIAL_BINS)
    body = bin_ + "".join(rng.choice("0123456789") for _ in range(9))
    pan = body + luhn.calc_check_digit(body)
    token = "tok_" + hashlib.sha256(secret + pan.encode()).hexdigest()[:24]
    return token, bin_, pan[-4:]


def break_iban_check_digits(iban: str) -> str:
    """The same IBAN with wrong check digits (for labelled bad records)."""
    wrong = (int(iban[2:4]) + 1) % 97 + 2  # 02..98, never the right value
    candidate = f"{iban[:2]}{wrong:02d}{iban[4:]}"
    if candidate == iban or iban_problem(candidate) is None:
        candidate = f"{iban[:2]}{(wrong + 1) % 97 + 2:02d}{iban[4:]}"
    return candidate


def break_routing_number(value: str) -> str:
    """The same routing number with a wrong 3-7-1 check digit."""
    return value[:8] + str((int(value[8]) + 1) % 10)
