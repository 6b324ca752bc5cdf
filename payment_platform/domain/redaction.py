"""Full card numbers (PANs) made unreadable before anything is stored or shown (PCI DSS 3.4), keyed-hashed so an
operator can still match a report. Plain Python, no I/O: the key is given by the caller (config.pan_hash_key_from_env).

What is a PAN here:
- in any text: a run of 13 to 19 digits (single spaces or dashes allowed between them) that passes Luhn, standing
  as a word of its own (no letter, digit or underscore right before or after it, and not followed by a decimal
  part): a number inside an alphanumeric code is part of that code;
- in a card field (`card_token`, `card_bin`, `card_last4`, or a field named like `card_number`/`pan`): any value
  holding more than its safe form (a `tok_` token, a 6 or 8 digit BIN, 4 last digits).

What stays intact: the account identifiers of a payment's rail (`iban`, `bic`, `account_number`, `routing_number`),
even when their digits happen to pass Luhn; amounts (a run followed by a decimal part).

Each PAN becomes `[PAN REDACTED hmac:<16 letters>]`: HMAC-SHA256 of its digits under the key, written with the
letters a-p for the hex digits 0-f (so a marker never holds a digit run and redacting twice changes nothing).
`fingerprint(number, key)` gives the same 16 letters for a number a customer reports.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re

from stdnum import luhn

MARKER_PREFIX = "[PAN REDACTED hmac:"
IDENTIFIER_KEYS = ("iban", "bic", "account_number", "routing_number")
CARD_FIELDS = ("card_token", "card_bin", "card_last4")
PAN_FIELD_NAMES = ("card_number", "pan", "primary_account_number", "card_no", "cardnumber")
_HEX_TO_LETTERS = str.maketrans("0123456789abcdef", "abcdefghijklmnop")

# 13-19 digits, single space/dash separators, standing as a word of its own: not inside a longer run, not part of
# an alphanumeric code (a reference such as E2E20261102503830C404F5), not the integer part of a decimal
_RUN = r"(?<![\w.])(?<!\d[ -])\d(?:[ -]?\d){12,18}(?![ -]?\d)(?!\.\d)(?!\w)"
_RUN_TEXT = re.compile(_RUN)
_RUN_BYTES = re.compile(_RUN.encode())
_CARD_VALUE = re.compile(
    rb'"(' + b"|".join(f.encode() for f in CARD_FIELDS + PAN_FIELD_NAMES) + rb')"(\s*:\s*)'
    rb'("(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*)', re.IGNORECASE)
_IDENTIFIER_VALUE = re.compile(rb'"(' + b"|".join(k.encode() for k in IDENTIFIER_KEYS) + rb')"\s*:\s*("(?:[^"\\]|\\.)*")')
# A UUID (a payment id, a run id) is an identifier, never a card number, though two of its groups may form a
# Luhn-valid run of 16 digits (`...-4111-111111111111`): its span is kept as it is.
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID_TEXT = re.compile(_UUID)
_UUID_BYTES = re.compile(_UUID.encode())
_SAFE = {"card_token": re.compile(r"^tok_[0-9a-f]{24}$"), "card_bin": re.compile(r"^(\d{6}|\d{8})$"),
         "card_last4": re.compile(r"^\d{4}$")}


def fingerprint(number: str, key: bytes) -> str:
    """The 16 letters a redacted PAN is shown with (digits only are hashed: spaces and dashes do not matter)."""
    digits = "".join(c for c in number if c.isdigit())
    return hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()[:16].translate(_HEX_TO_LETTERS)


def marker(number: str, key: bytes) -> str:
    return f"{MARKER_PREFIX}{fingerprint(number, key)}]"


def is_pan(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn.is_valid(digits)


def redact_text(text: str, key: bytes) -> str:
    """`text` (free text: a name, a reason, a log line) with every PAN replaced by its marker."""
    if text is None or not _RUN_TEXT.search(text):
        return text

    kept = [m.span() for m in _UUID_TEXT.finditer(text)]

    def replace(match: re.Match) -> str:
        found = match.group(0)
        return marker(found, key) if is_pan(found) and not _inside(match, kept) else found

    return _RUN_TEXT.sub(replace, text)


def _inside(match: re.Match, spans: list[tuple[int, int]]) -> bool:
    return any(start < match.end() and match.start() < end for start, end in spans)


def _identifier_spans(raw: bytes) -> list[tuple[int, int]]:
    """Where the values of account identifiers and every UUID sit in a JSON message (what must stay intact)."""
    return [m.span(2) for m in _IDENTIFIER_VALUE.finditer(raw)] + [m.span() for m in _UUID_BYTES.finditer(raw)]


def _card_value_safe(field: str, value: bytes) -> bool:
    if not value.startswith(b'"'):
        return False  # a number where text belongs: nothing safe about it
    text = value[1:-1].decode("utf-8", "replace")
    if not any(c.isdigit() for c in text):
        return True  # no digit, no card number (a marker, say: redacting twice changes nothing)
    safe = _SAFE.get(field.lower())
    if safe is not None:
        return bool(safe.match(text))
    return False  # a PAN-named field: anything with a digit goes


def redact_message(raw: bytes, key: bytes) -> bytes:
    """A Kafka message's bytes with every PAN made unreadable: card fields holding more than their safe form, and
    Luhn-valid runs anywhere else except in account identifiers. Returns `raw` itself when there is nothing to
    redact (the common case, one regex pass); bytes that are not UTF-8 are kept as they are around the markers."""
    if raw is None:
        return raw
    cards = _CARD_VALUE.search(raw) is not None
    if not cards and not _RUN_BYTES.search(raw):
        return raw
    out = raw
    if cards:
        def replace_card(match: re.Match) -> bytes:
            field, colon, value = match.group(1).decode(), match.group(2), match.group(3)
            if _card_value_safe(field, value):
                return match.group(0)
            shown = value.strip(b'"').decode("utf-8", "replace")
            return b'"' + match.group(1) + b'"' + colon + b'"' + marker(shown, key).encode() + b'"'

        out = _CARD_VALUE.sub(replace_card, out)
    if _RUN_BYTES.search(out):
        kept = _identifier_spans(out)

        def replace_run(match: re.Match) -> bytes:
            found = match.group(0).decode()
            if not is_pan(found) or _inside(match, kept):
                return match.group(0)
            return marker(found, key).encode()

        out = _RUN_BYTES.sub(replace_run, out)
    return raw if out == raw else out  # the same object when nothing changed: callers test `is`


def redact_document(doc, key: bytes):
    """A parsed JSON document (dict/list/str...) with the same redaction as `redact_message`, for data stored as
    documents (the backup's `document`, Postgres' `document`)."""
    if isinstance(doc, (dict, list)):
        return json.loads(redact_message(json.dumps(doc, ensure_ascii=False).encode(), key))
    return redact_text(doc, key) if isinstance(doc, str) else doc
