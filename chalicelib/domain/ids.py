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


def _ulid(moment: datetime, randomness: bytes) -> str:
    millis = max(0, int(moment.timestamp() * 1000))
    return _encode(millis, 10) + _encode(int.from_bytes(randomness, "big"), 16)


def time_of(prefixed_id: str) -> datetime:
    """The moment a prefixed ULID (`imp_01J…`) was made for (its first 10 characters after
    the prefix); a character outside the alphabet counts as 0."""
    millis = 0
    for char in prefixed_id.partition("_")[2][:10]:
        millis = millis * 32 + max(_ALPHABET.find(char), 0)
    return datetime.fromtimestamp(millis / 1000, UTC)


def ulid(at: datetime | None = None) -> str:
    # A retried request draws the same bytes as its first attempt (see attempts.py).
    randomness = attempts.random_bytes(10) or os.urandom(10)
    return _ulid(at or attempts.pinned_now() or datetime.now(UTC), randomness)


def ulid_from(moment: datetime, randomness: bytes) -> str:
    """A ULID of `moment` with the given 10 bytes in place of random ones: an id derived from
    what it names (the same inputs, the same id)."""
    return _ulid(moment, randomness)


def new_id(prefix: str, at: datetime | None = None) -> str:
    return f"{prefix}_{ulid(at)}"


def next_id(prefix: str, at: datetime | None = None) -> str | None:
    """In a repeatable attempt, the id `new_id(prefix, at)` will give next; else None."""
    upcoming = attempts.next_random_bytes(10)
    moment = at or attempts.pinned_now()
    return f"{prefix}_{_ulid(moment, upcoming)}" if upcoming and moment else None


def first_id_of_part(prefix: str, index: int, at: datetime | None = None) -> str | None:
    """In a repeatable attempt, the id part `index` of it (attempts.part) gives first; else None."""
    randomness = attempts.first_random_bytes_of_part(index, 10)
    moment = at or attempts.pinned_now()
    return f"{prefix}_{_ulid(moment, randomness)}" if randomness and moment else None


CUSTOMER = "cus"
MERGE = "mrg"
INTERACTION = "int"
WEBHOOK_SOURCE = "src"
WEBHOOK_SUBSCRIPTION = "sub"
WEBHOOK_DELIVERY = "dlv"
