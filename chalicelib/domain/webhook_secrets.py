"""The signing secrets of a webhook source or subscription, and their rotation.

A rotation adds a new secret and keeps the others valid for `ROTATION_OVERLAP` (so a sender or
receiver that still has the old one is not cut off mid-change); verification accepts any valid
secret, and outbound deliveries are signed with each of them (Standard Webhooks lists several
signatures in one header)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from chalicelib.domain.webhook_signatures import new_secret

ROTATION_OVERLAP = timedelta(hours=24)
# Rotations within one overlap keep at most this many secrets valid (the newest ones).
MAX_SECRETS = 3


@dataclass(frozen=True)
class Secret:
    value: str
    created_at: datetime
    expires_at: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


def first_secret(now: datetime) -> tuple[Secret, ...]:
    return (Secret(new_secret(), now),)


def valid(secrets: tuple[Secret, ...], now: datetime) -> tuple[str, ...]:
    """The secret values that sign and verify at `now`, newest first."""
    return tuple(
        s.value for s in sorted(secrets, key=lambda s: s.created_at, reverse=True) if s.valid_at(now)
    )


def newest(secrets: tuple[Secret, ...]) -> str:
    """The value of the newest secret: the one a create or rotation shows."""
    return max(secrets, key=lambda s: s.created_at).value


def rotated(secrets: tuple[Secret, ...], now: datetime) -> tuple[Secret, ...]:
    """A new secret, newest first, with the still-valid others ending within the overlap; the
    expired ones are dropped."""
    ends = now + ROTATION_OVERLAP
    kept = [
        replace(s, expires_at=min(s.expires_at or ends, ends))
        for s in sorted(secrets, key=lambda s: s.created_at, reverse=True)
        if s.valid_at(now)
    ]
    return (Secret(new_secret(), now), *kept[: MAX_SECRETS - 1])
