"""The one pagination helper: pages over DynamoDB's LastEvaluatedKey (the pages of a Query that
repositories answer with: items and the key to start the next page from), whose position a
client holds as a cursor.

A cursor names the list it belongs to (`scope`: e.g. the customer and the type filter), so a
cursor taken from one list and handed to another, or edited by hand, is rejected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
D = TypeVar("D")
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


def keys_of(*attributes: str) -> Callable[[Any], Key]:
    """The key of an item as DynamoDB's LastEvaluatedKey gives it: its string key attributes,
    the table's and the index's."""
    return lambda item: {name: {"S": getattr(item, name)} for name in attributes}


def query_page(
    query: Callable[..., Iterable[T]],
    *conditions: Any,
    limit: int,
    start: Key | None,
    key_of: Callable[[T], Key],
    to_domain: Callable[[T], D],
    page_size: int | None = None,
    **options: Any,
) -> tuple[list[D], Key | None]:
    """A page of `query` (a model's or an index's, with its key `conditions` and `options`):
    `limit` items from `start`, and the key of the last if more follow. Without `page_size` it
    reads `limit + 1` items, in one request unless a filter drops some; with it (for a filter
    that may drop many), pages of that size until `limit + 1` items came."""
    bound = {"page_size": page_size} if page_size is not None else {"limit": limit + 1}
    rows = query(*conditions, last_evaluated_key=start, **bound, **options)
    items, next_key = collect(rows, limit, key_of)
    return [to_domain(item) for item in items], next_key


def newest_under(
    model: Any, pk: str, prefix: str, *, limit: int, start: Key | None, to_domain: Callable[[Any], D]
) -> tuple[list[D], Key | None]:
    """A page of the items of partition `pk` whose sort keys start with `prefix` and order them
    in time (an audit trail, a case's history), newest first."""
    return query_page(
        model.query,
        pk,
        model.sk.startswith(prefix),
        limit=limit,
        start=start,
        key_of=keys_of("pk", "sk"),
        to_domain=to_domain,
        scan_index_forward=False,
    )


def page_of(
    codec: CursorCodec | None,
    scope: str,
    cursor: str | None,
    fetch: Callable[[Key | None], tuple[list[T], Key | None]],
) -> Page[T]:
    """One page of a list: the cursor decoded for its scope, the next one encoded for it."""
    if codec is None:
        raise RuntimeError(
            f"{scope}: this service was built without cursors (wiring.py), so it lists nothing"
        )
    items, next_key = fetch(codec.decode(scope, cursor) if cursor else None)
    return Page(items, codec.encode(scope, next_key) if next_key else None)
