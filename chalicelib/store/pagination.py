"""The one pagination helper: signed cursors over DynamoDB's LastEvaluatedKey, and the pages of
a Query that repositories answer with (items and the key to start the next page from).

A cursor names the list it belongs to (`scope`: e.g. the customer and the type filter), so a
cursor taken from one list and handed to another, or edited by hand, is rejected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chalicelib.errors import FieldError, ValidationFailed

T = TypeVar("T")
D = TypeVar("D")
Key = dict[str, Any]

DEFAULT_LIMIT = 25
MAX_LIMIT = 100


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def _sign(self, scope: str, payload: str) -> str:
        mac = hmac.new(self._secret, f"{scope}\n{payload}".encode(), hashlib.sha256)
        return _b64(mac.digest()[:16])

    def encode(self, scope: str, key: Key) -> str:
        payload = _b64(json.dumps(key, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{self._sign(scope, payload)}"

    def decode(self, scope: str, cursor: str) -> Key:
        if not cursor.isascii():  # every cursor is base64url; compare_digest takes ASCII only
            raise _bad_cursor()
        payload, _, signature = cursor.partition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(scope, payload)):
            raise _bad_cursor()
        try:
            key = json.loads(_unb64(payload))
        except ValueError:
            raise _bad_cursor() from None
        if not isinstance(key, dict):
            raise _bad_cursor()
        return key


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(
        [FieldError("cursor", "is not a cursor of this list (tampered, expired or from another list)")]
    )


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
    codec: CursorCodec,
    scope: str,
    cursor: str | None,
    fetch: Callable[[Key | None], tuple[list[T], Key | None]],
) -> Page[T]:
    """One page of a list: the cursor decoded for its scope, the next one encoded for it."""
    items, next_key = fetch(codec.decode(scope, cursor) if cursor else None)
    return Page(items, codec.encode(scope, next_key) if next_key else None)
