"""Repeatable attempts: a retried request builds the very same records as its first attempt.

A POST with an `Idempotency-Key` may come again after its first attempt committed but its
response was lost (a timeout, a crash, a failed write of the idempotency record). The API
then runs it again under the seed the first attempt stored: while it runs, `now()` is the
seed's time and every new id draws its random part from the seed, so the retry builds the
same ids, timestamps and items, and the store can tell a transaction that already committed
(see `claim_name` and store/models.transaction) from a new one.
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
    nonce: bytes
    now: datetime
    repeat: bool  # True when an earlier attempt stored this seed


@dataclass
class _Attempt:
    seed: Seed
    draws: dict[str, int] = field(default_factory=dict)

    def draw(self, purpose: str) -> bytes:
        n = self.draws.get(purpose, 0)
        self.draws[purpose] = n + 1
        return hmac.new(self.seed.nonce, f"{purpose}#{n}".encode(), hashlib.sha256).digest()


_current: ContextVar[_Attempt | None] = ContextVar("crm_attempt", default=None)


@contextmanager
def repeatable(seed: Seed) -> Iterator[None]:
    token = _current.set(_Attempt(seed))
    try:
        yield
    finally:
        _current.reset(token)


def pinned_now() -> datetime | None:
    attempt = _current.get()
    return attempt.seed.now if attempt else None


def random_bytes(size: int) -> bytes | None:
    """The next `size` random bytes of this attempt (the same in every attempt), or None
    outside a repeatable attempt."""
    attempt = _current.get()
    return attempt.draw("id")[:size] if attempt else None


def claim_name() -> str | None:
    """A name for the next transaction of this attempt, the same in every attempt."""
    attempt = _current.get()
    return attempt.draw("transaction").hex()[:40] if attempt else None


def repeating() -> bool:
    """True while a retry of an attempt that may have committed runs."""
    attempt = _current.get()
    return bool(attempt and attempt.seed.repeat)
