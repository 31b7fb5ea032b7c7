"""Repeatable attempts: a retried request builds the very same records as its first attempt.

A POST with an `Idempotency-Key` may come again after its first attempt committed but its
response was lost (a timeout, a crash, a failed write of the idempotency record). The API
then runs it again under the seed the first attempt stored: while it runs, `now()` is the
seed's time and every new id draws its random part from the seed, so the retry builds the
same ids, timestamps and items. Each transaction of an attempt records a claim on the seed,
named by what the transaction writes (`claim_for`), so the store tells a transaction that
already committed from a new one (store/transactions.py). A seed without claims means
that nothing was committed: the next attempt then starts afresh, with the time it runs at.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Seed:
    key: str  # where the store keeps it
    nonce: bytes
    now: datetime
    repeat: bool  # an earlier attempt under this seed committed something


@dataclass
class _Attempt:
    seed: Seed
    draws: int = 0
    peeked: dict[int, bytes] = field(default_factory=dict)

    def bytes_at(self, n: int) -> bytes:
        return hmac.new(self.seed.nonce, f"id#{n}".encode(), hashlib.sha256).digest()


_current: ContextVar[_Attempt | None] = ContextVar("crm_attempt", default=None)


@contextmanager
def repeatable(seed: Seed) -> Iterator[None]:
    token = _current.set(_Attempt(seed))
    try:
        yield
    finally:
        _current.reset(token)


def current() -> Seed | None:
    attempt = _current.get()
    return attempt.seed if attempt else None


def pinned_now() -> datetime | None:
    attempt = _current.get()
    return attempt.seed.now if attempt else None


def random_bytes(size: int) -> bytes | None:
    """The next `size` random bytes of this attempt (the same in every attempt), or None
    outside a repeatable attempt."""
    attempt = _current.get()
    if attempt is None:
        return None
    attempt.draws += 1
    return attempt.bytes_at(attempt.draws - 1)[:size]


def next_random_bytes(size: int) -> bytes | None:
    """What `random_bytes(size)` will return next, without taking it."""
    attempt = _current.get()
    return attempt.bytes_at(attempt.draws)[:size] if attempt else None


def claim_for(content: bytes) -> str | None:
    """The claim of a transaction writing `content` in this attempt: the same in every attempt
    that writes the same, another for anything else."""
    attempt = _current.get()
    if attempt is None:
        return None
    return hmac.new(attempt.seed.nonce, content, hashlib.sha256).hexdigest()[:32]


def repeating() -> bool:
    """True while a retry of an attempt that committed something runs."""
    attempt = _current.get()
    return bool(attempt and attempt.seed.repeat)


def _part_nonce(nonce: bytes, index: int) -> bytes:
    return hmac.new(nonce, f"part#{index}".encode(), hashlib.sha256).digest()


@contextmanager
def part(index: int) -> Iterator[None]:
    """One of the independent writes of a request that makes several (a batch's items), run
    with draws of its own: part `index` builds the same ids in every attempt whatever the
    other parts drew (an item valid in one attempt and not in another shifts nothing). Its
    claims go to the request's seed. Outside a repeatable attempt: nothing changes."""
    attempt = _current.get()
    if attempt is None:
        yield
        return
    seed = attempt.seed
    with repeatable(Seed(seed.key, _part_nonce(seed.nonce, index), seed.now, seed.repeat)):
        yield


def first_random_bytes_of_part(index: int, size: int) -> bytes | None:
    """What part `index` of this attempt draws first (see `part`), or None outside one."""
    attempt = _current.get()
    if attempt is None:
        return None
    return hmac.new(_part_nonce(attempt.seed.nonce, index), b"id#0", hashlib.sha256).digest()[:size]
