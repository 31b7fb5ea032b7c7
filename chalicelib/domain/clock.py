"""One clock, injectable so tests can freeze time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from chalicelib.domain import attempts


class Clock:
    def now(self) -> datetime:
        # A retried request sees the time of its first attempt (see attempts.py).
        return attempts.pinned_now() or datetime.now(UTC)


class FrozenClock(Clock):
    def __init__(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def advance(self, delta: timedelta) -> None:
        self._at += delta


def to_rfc3339(moment: datetime, timespec: str = "milliseconds") -> str:
    """UTC with a `Z`: the one timestamp format. Responses show milliseconds; stored sort keys
    use `timespec="microseconds"` so that they order exactly as the moments they hold."""
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def to_stored_precision(moment: datetime) -> datetime:
    """The moment as `to_rfc3339` keeps it (milliseconds): equal to what is read back."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def parse_rfc3339(value: str) -> datetime:
    """The moment a timestamp with an offset names, in UTC. ValueError for one without an
    offset, which RFC 3339 requires: it would otherwise be read as this machine's local time."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return moment.astimezone(UTC)


def parse_optional_rfc3339(value: str | None) -> datetime | None:
    """parse_rfc3339 of a stored attribute that may be absent (None or empty)."""
    return parse_rfc3339(value) if value else None


def optional_rfc3339(moment: datetime | None) -> str | None:
    """to_rfc3339 of a moment that may be absent: None stays None."""
    return to_rfc3339(moment) if moment else None


def require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")


class OutOfTime(Exception):
    """The time given to a piece of work is up: it stopped where it is safe to continue."""


class Deadline:
    """A moment, on the monotonic clock, after which work should stop: `check()` raises
    OutOfTime once it has passed. Work that checks only after doing some never starves."""

    def __init__(self, seconds: float) -> None:
        self._at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._at - time.monotonic()

    def check(self) -> None:
        if self.remaining() <= 0:
            raise OutOfTime("the time for this invocation is up")
