"""Optimistic concurrency, one way for every entity: read, check `If-Match`, write
conditionally on the version read, and on a lost race re-read and apply again (never silently
over another change) — or answer 412 when the client named the version it expects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from chalicelib.domain.storage import VersionConflict
from chalicelib.errors import Conflict, PreconditionFailed

# A write loses a race only to a rival that committed: this many attempts let that many
# concurrent writers of one item all get through before anyone is told to retry.
MAX_ATTEMPTS = 10


class Versioned(Protocol):
    version: int


V = TypeVar("V", bound=Versioned)
R = TypeVar("R")
Lost = type[Exception] | tuple[type[Exception], ...]


def retry_lost_races(
    attempt: Callable[[], R],
    give_up: Exception | Callable[[], R],
    *,
    attempts: int = MAX_ATTEMPTS,
    lost: Lost = VersionConflict,
    retrying: Callable[[Exception], bool] = lambda _: True,
) -> R:
    """Call `attempt` (a read, a decision and a write conditional on what was read) again
    while it loses a race to another writer (raises `lost`, for which `retrying` holds), at
    most `attempts` times; then raise `give_up`, or answer what it returns."""
    for _ in range(attempts):
        try:
            return attempt()
        except lost as error:
            if not retrying(error):
                raise
    if isinstance(give_up, Exception):
        raise give_up
    return give_up()


def update_at_version(
    what: str,
    read: Callable[[], V],
    write: Callable[[V], R],
    if_match: int | None,
) -> R:
    """`write(before)` must write conditionally on `before.version` and raise VersionConflict
    when another change came first."""

    def attempt() -> R:
        before = read()
        if if_match is not None and before.version != if_match:
            raise PreconditionFailed(
                f"The {what} is at version {before.version}, not {if_match}: re-read it and retry."
            )
        try:
            return write(before)
        except VersionConflict:
            if if_match is not None:
                raise PreconditionFailed(
                    f"The {what} was changed by another request: re-read it and retry."
                ) from None
            raise

    return retry_lost_races(
        attempt, Conflict(f"The {what} is being changed by other requests right now: retry.")
    )
