"""Page cursors: a list's position (DynamoDB's LastEvaluatedKey) handed to the client signed,
bound to its list, and for a limited time.

itsdangerous signs them: the list's scope (e.g. the customer and the type filter) is the salt,
so a cursor of one list is refused by every other; a key rotation keeps accepting cursors
signed with the previous keys (`secret_keys` oldest first, the newest signs); a cursor older
than `max_age_s` is refused, as is one edited by hand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from chalicelib.errors import FieldError, ValidationFailed

Key = dict[str, Any]


class CursorSigner:
    def __init__(self, secret_keys: Sequence[str], max_age_s: int, now: Callable[[], datetime]) -> None:
        if not secret_keys or not all(secret_keys):
            raise ValueError("page cursors need a non-empty secret key")
        self._keys = list(secret_keys)
        self._max_age_s = max_age_s

        class _ClockedSigner(TimestampSigner):
            # The app's clock, so that a frozen clock in tests (and a retried request's pinned
            # time) is the time cursors are signed and checked at.
            def get_timestamp(self) -> int:
                return int(now().timestamp())

        self._signer = _ClockedSigner

    def _serializer(self, scope: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(
            self._keys,
            salt=scope,
            signer=self._signer,
            signer_kwargs={"digest_method": hashlib.sha256},
        )

    def encode(self, scope: str, key: Key) -> str:
        return self._serializer(scope).dumps(key)

    def decode(self, scope: str, cursor: str) -> Key:
        if not cursor.isascii():  # every cursor is base64url with dots
            raise _bad_cursor()
        try:
            key = self._serializer(scope).loads(cursor, max_age=self._max_age_s)
        except BadData:
            raise _bad_cursor() from None
        if not isinstance(key, dict):
            raise _bad_cursor()
        return key


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed(
        [FieldError("cursor", "is not a cursor of this list (tampered, expired or from another list)")]
    )
