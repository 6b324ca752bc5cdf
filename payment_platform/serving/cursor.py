"""Opaque page cursors: the position after which the next page starts, bound to the query that made it.

A cursor is `c` and the URL-safe base64 of `{"v": 1, "s": <scope digest>, "p": <position>}` plus an HMAC-SHA256
tag (the letter first: base64 may start with `-`, which a command line would take for an option). The
position is a store key (an HBase row key, a quarantine id), never an offset: a page continues from where the last
one stopped whatever was written meanwhile. A cursor that was altered, truncated, or made by another query is
refused (InvalidParameter naming `cursor`), never half-trusted.

The HMAC key is $PAYMENT_API_CURSOR_KEY when set (set it to the same value on every API replica), else a fixed
key: the tag still catches every accidental or casual change, and the position is checked against the query anyway.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os

from payment_platform.serving.params import InvalidParameter

CURSOR_KEY_SETTING = "PAYMENT_API_CURSOR_KEY"
_DEFAULT_KEY = b"payment_platform.serving.cursor.v1"
_TAG_BYTES = 16
MAX_CURSOR_CHARS = 4096
PREFIX = "c"


def _key() -> bytes:
    return os.environ.get(CURSOR_KEY_SETTING, "").encode() or _DEFAULT_KEY


def _digest(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


def encode(scope: str, position: str | int) -> str:
    body = json.dumps({"v": 1, "s": _digest(scope), "p": position}, separators=(",", ":")).encode()
    tag = hmac.new(_key(), body, hashlib.sha256).digest()[:_TAG_BYTES]
    return PREFIX + base64.urlsafe_b64encode(tag + body).decode().rstrip("=")


def decode(cursor: str | None, scope: str, kind: type = str, name: str = "cursor"):
    """The position in `cursor` (None for no cursor: the first page). Raises InvalidParameter(name) if it is not a
    cursor this service made for this same query."""
    if cursor is None or not str(cursor).strip():
        return None
    text = str(cursor).strip()
    if len(text) > MAX_CURSOR_CHARS:
        raise InvalidParameter(name, "too long to be a cursor from this API")
    if not text.startswith(PREFIX):
        raise InvalidParameter(name, "not a cursor from this API")
    text = text[len(PREFIX):]
    try:
        blob = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidParameter(name, "not a cursor from this API (not base64)") from None
    tag, body = blob[:_TAG_BYTES], blob[_TAG_BYTES:]
    if len(tag) < _TAG_BYTES or not hmac.compare_digest(tag, hmac.new(_key(), body, hashlib.sha256).digest()[:_TAG_BYTES]):
        raise InvalidParameter(name, "altered or not issued by this API (signature does not match)")
    try:
        payload = json.loads(body)
    except ValueError:
        raise InvalidParameter(name, "not a cursor from this API") from None
    if not isinstance(payload, dict) or payload.get("v") != 1 or not isinstance(payload.get("p"), kind):
        raise InvalidParameter(name, "not a cursor of this kind of page")
    if payload.get("s") != _digest(scope):
        raise InvalidParameter(name, "belongs to a different query (same filters and window are needed to continue)")
    return payload["p"]
