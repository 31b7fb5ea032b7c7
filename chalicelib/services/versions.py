"""Optimistic concurrency, one way for every entity: read, check `If-Match`, write
conditionally on the version read, and on a lost race re-read and apply again (never silently
over another change) — or answer 412 when the client named the version it expects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from chalicelib.errors import Conflict, PreconditionFailed

# A write loses a race only to a rival that committed: this many attempts let that many
# concurrent writers of one item all get through before anyone is told to retry.
MAX_ATTEMPTS = 10


class Versioned(Protocol):
    version: int


V = TypeVar("V", bound=Versioned)
R = TypeVar("R")


def update_at_version(
    what: str,
    read: Callable[[], V],
    write: Callable[[V], R],
    if_match: int | None,
    lost_race: type[Exception],
) -> R:
    """`write(before)` must write conditionally on `before.version` and raise `lost_race`
    when another change came first."""
    for _ in range(MAX_ATTEMPTS):
        before = read()
        if if_match is not None and before.version != if_match:
            raise PreconditionFailed(
                f"The {what} is at version {before.version}, not {if_match}: re-read it and retry."
            )
        try:
            return write(before)
        except lost_race:
            if if_match is not None:
                raise PreconditionFailed(
                    f"The {what} was changed by another request: re-read it and retry."
                ) from None
    raise Conflict(f"The {what} is being changed by other requests right now: retry.")
