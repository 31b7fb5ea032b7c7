"""Standard Webhooks v1 signatures (standardwebhooks.com): HMAC-SHA256 of
`<webhook-id>.<webhook-timestamp>.<raw body>`, keyed by the bytes of a `whsec_<base64>` secret,
sent as `webhook-signature: v1,<base64> [v1,<base64> …]`.

Written here rather than taken from the `standardwebhooks` package (whose client libraries the
tests and the README's receiver use to check us): verification must tell which header is
wrong, take several secrets (a rotation's overlap) and a configurable tolerance, read the raw
bytes of any body, and accept only integer timestamps."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as random
from collections.abc import Iterable, Mapping
from datetime import datetime

SECRET_PREFIX = "whsec_"
SECRET_PATTERN = r"^whsec_[A-Za-z0-9+/]+={0,2}$"  # as the API documents a secret it shows
SECRET_BYTES = 32
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"
MAX_ID_LENGTH = 256
# A header of more signatures than any rotation needs is refused unread.
MAX_SIGNATURES = 10
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_ID = re.compile(r"[\x21-\x7e]+")  # visible ASCII: no spaces, no separators of the signed text


class SignatureRefused(Exception):
    """The delivery is not authentic, or its headers are malformed: `header` names which."""

    def __init__(self, header: str, message: str) -> None:
        super().__init__(message)
        self.header = header
        self.message = message


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(random.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The key bytes of a `whsec_` secret; ValueError if it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a secret starts with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError("a secret is whsec_ followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"a secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
    return key


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value of one secret."""
    return "v1," + base64.b64encode(_digest(secret_key(secret), msg_id, timestamp, body)).decode("ascii")


def headers_for(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, msg_id, timestamp, body),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise SignatureRefused(name, f"The {name} header is missing.")
    return value.strip()


def _signatures(value: str) -> list[bytes]:
    """The decoded v1 signatures of a `webhook-signature` header (others are ignored)."""
    parts = value.split()
    if len(parts) > MAX_SIGNATURES:
        raise SignatureRefused(
            SIGNATURE_HEADER, f"The {SIGNATURE_HEADER} header lists more than {MAX_SIGNATURES} signatures."
        )
    found = []
    for part in parts:
        version, comma, signature = part.partition(",")
        if not comma:
            raise SignatureRefused(
                SIGNATURE_HEADER, f"Each {SIGNATURE_HEADER} entry is <version>,<base64 signature>."
            )
        if version != "v1":
            continue
        try:
            found.append(base64.b64decode(signature, validate=True))
        except binascii.Error:
            raise SignatureRefused(
                SIGNATURE_HEADER, f"A v1 signature in {SIGNATURE_HEADER} is not base64."
            ) from None
    if not found:
        raise SignatureRefused(SIGNATURE_HEADER, f"The {SIGNATURE_HEADER} header holds no v1 signature.")
    return found


def verify(
    secrets: Iterable[str], headers: Mapping[str, str], body: bytes, now: datetime, tolerance_s: int
) -> str:
    """The delivery's webhook-id if one listed v1 signature is that of one of `secrets` over
    the raw `body`, and its timestamp is within `tolerance_s` of `now`; else SignatureRefused.
    `headers` is case-insensitive (as Chalice's are) or has lower-case names."""
    msg_id = _header(headers, ID_HEADER)
    if len(msg_id) > MAX_ID_LENGTH or not _ID.fullmatch(msg_id):
        raise SignatureRefused(
            ID_HEADER, f"The {ID_HEADER} header is 1 to {MAX_ID_LENGTH} visible ASCII characters."
        )
    raw_timestamp = _header(headers, TIMESTAMP_HEADER)
    if not _TIMESTAMP.fullmatch(raw_timestamp):
        raise SignatureRefused(
            TIMESTAMP_HEADER, f"The {TIMESTAMP_HEADER} header is an integer number of Unix seconds."
        )
    timestamp = int(raw_timestamp)
    if abs(now.timestamp() - timestamp) > tolerance_s:
        raise SignatureRefused(
            TIMESTAMP_HEADER, f"The {TIMESTAMP_HEADER} is more than {tolerance_s} seconds from now."
        )
    given = _signatures(_header(headers, SIGNATURE_HEADER))
    matched = False
    for secret in secrets:
        expected = _digest(secret_key(secret), msg_id, timestamp, body)
        for signature in given:
            # Every pair is compared, so the time taken does not say which one matched.
            matched |= hmac.compare_digest(expected, signature)
    if not matched:
        raise SignatureRefused(SIGNATURE_HEADER, f"No signature in {SIGNATURE_HEADER} matches this delivery.")
    return msg_id
