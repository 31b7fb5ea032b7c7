"""The one pagination helper: pages over DynamoDB's LastEvaluatedKey, whose position a client
holds as a cursor.

A cursor names the list it belongs to (`scope`: e.g. the customer and the type filter), so a
cursor taken from one list and handed to another, or edited by hand, is rejected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
Key = dict[str, Any]

DEFAULT_LIMIT = 25
MAX_LIMIT = 100


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


class CursorCodec(Protocol):
    """Turns a list's position into the opaque cursor a client holds, and back (refusing one
    of another `scope`). Signing is the HTTP layer's: api/cursors.py."""

    def encode(self, scope: str, key: Key) -> str: ...

    def decode(self, scope: str, cursor: str) -> Key: ...


def collect(
    rows: Iterable[T],
    limit: int,
    key_of: Callable[[T], Key],
    accept: Callable[[T], bool] = lambda _: True,
) -> tuple[list[T], Key | None]:
    """Take `limit` accepted rows; the next key is that of the last row taken, if more remain."""
    taken: list[T] = []
    iterator: Iterator[T] = iter(rows)
    for row in iterator:
        if not accept(row):
            continue
        if len(taken) == limit:
            return taken, key_of(taken[-1])
        taken.append(row)
    return taken, None


def page_of(
    codec: CursorCodec,
    scope: str,
    cursor: str | None,
    fetch: Callable[[Key | None], tuple[list[T], Key | None]],
) -> Page[T]:
    """One page of a list: the cursor decoded for its scope, the next one encoded for it."""
    items, next_key = fetch(codec.decode(scope, cursor) if cursor else None)
    return Page(items, codec.encode(scope, next_key) if next_key else None)
