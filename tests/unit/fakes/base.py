"""What every fake shares: pages with an opaque start key, a transaction that commits all or
nothing, and a hook that lets a test slip a rival's write in just before the next one."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from chalicelib.domain import storage

T = TypeVar("T")
Key = dict[str, Any]


def page(
    rows: Iterable[T], limit: int, start: Key | None, key_of: Callable[[T], str]
) -> tuple[list[T], Key | None]:
    """Rows in the order given, from after `start`; a next key while more remain, as DynamoDB's
    LastEvaluatedKey (opaque to the caller)."""
    after = start["after"] if start else None
    rows = list(rows)
    if after is not None:
        keys = [key_of(row) for row in rows]
        rows = rows[keys.index(after) + 1 :] if after in keys else []
    taken = rows[:limit]
    return taken, {"after": key_of(taken[-1])} if len(rows) > limit else None


class Rivals:
    """Writes of other requests, run one at a time just before this repository's next write."""

    def __init__(self) -> None:
        self._pending: list[Callable[[], None]] = []

    def before_next_write(self, *rivals: Callable[[], None]) -> None:
        self._pending.extend(rivals)

    def run(self) -> None:
        if self._pending:
            self._pending.pop(0)()


class FakeTransaction:
    """A repository's transaction as its collaborators see it (`also(t)`): checks and writes,
    all written only if every check holds, else VersionConflict."""

    def __init__(self) -> None:
        self._checks: list[Callable[[], bool]] = []
        self._writes: list[Callable[[], None]] = []

    def check(self, holds: Callable[[], bool]) -> None:
        self._checks.append(holds)

    def write(self, write: Callable[[], None]) -> None:
        self._writes.append(write)

    def holds(self) -> bool:
        return all(check() for check in self._checks)

    def commit(self, subject: str) -> None:
        if not self.holds():
            raise storage.VersionConflict(subject)
        for write in self._writes:
            write()
