"""Identifier makers give values the libraries accept; the breakers give values they refuse."""
import random

from schwifty import IBAN
from stdnum import luhn
from stdnum.us import rtn

from payment_platform.domain import identifiers as ids


def test_made_identifiers_validate_with_schwifty_and_stdnum():
    rng = random.Random(5)
    for country in ("DE", "FR", "GB", "NL", "CH", "PL"):
        iban, bic = ids.make_iban(rng, country)
        assert IBAN(iban).country_code == country
        assert ids.iban_problem(iban) is None and ids.bic_problem(bic) is None
    for _ in range(50):
        routing = ids.make_routing_number(rng)
        assert rtn.is_valid(routing) and ids.routing_number_problem(routing) is None


def test_broken_check_digits_are_refused():
    rng = random.Random(6)
    for _ in range(30):
        iban, _ = ids.make_iban(rng, "DE")
        broken = ids.break_iban_check_digits(iban)
        assert broken != iban and "checksum" in ids.iban_problem(broken).lower()
        routing = ids.make_routing_number(rng)
        assert "check digit" in ids.routing_number_problem(ids.break_routing_number(routing))
    assert ids.bic_problem("COBAXXFFXXX") is not None
    assert ids.routing_number_problem("12345") is not None


def test_card_numbers_never_leave_the_maker():
    token, bin_, last4 = ids.make_card(random.Random(7), b"secret")
    assert token.startswith("tok_") and len(bin_) == 6 and len(last4) == 4
    assert ids.card_problem(token, bin_, last4) is None
    assert not ids.is_card_number(token)


def test_card_number_detection():
    pan = "4111111111111111"
    assert luhn.is_valid(pan) and ids.is_card_number(pan) and ids.is_card_number("4111 1111 1111 1111")
    assert not ids.is_card_number("4111111111111112")  # fails Luhn
    assert not ids.is_card_number("tok_55ed7bec803675739547121f")  # a token with a long digit run
