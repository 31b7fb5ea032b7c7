"""One id generator: prefixed ULIDs.

A ULID's first 48 bits are milliseconds since the epoch, written in Crockford base32, so ids
sort by time as strings: interactions use their `occurred_at` as that time, which makes the
timeline's sort key the id itself. The prefix says what an id names; the rest is opaque.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from chalicelib.domain import attempts

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def ulid(at: datetime | None = None) -> str:
    moment = at or attempts.pinned_now() or datetime.now(UTC)
    millis = max(0, int(moment.timestamp() * 1000))
    # A retried request draws the same bytes as its first attempt (see attempts.py).
    randomness = int.from_bytes(attempts.random_bytes(10) or os.urandom(10), "big")
    return _encode(millis, 10) + _encode(randomness, 16)


def new_id(prefix: str, at: datetime | None = None) -> str:
    return f"{prefix}_{ulid(at)}"


CUSTOMER = "cus"
INTERACTION = "int"
