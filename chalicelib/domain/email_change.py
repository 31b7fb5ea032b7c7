"""A customer's own change of email address, applied only once the new address is confirmed.

`PATCH /me` with a new address records an `EmailChange` (the address, a random nonce, when it
expires) and answers the same whether the address is free or someone else's: the owner of the
new address learns of it by the signed link sent there, and only following that link applies
the change. The link's token carries the customer id, the nonce, the expiry and a keyed tag of
the address, signed with HMAC-SHA256 under a key of its own (`CRM_LINK_SECRET`): a token is
checked without any read, and it is good only for the change that holds its nonce and address.

Every request mails a stranger's inbox, so requests are limited per customer (`EmailChangeLimits`):
a cooldown after each one and a cap per 24 hours, counted from the request times the pending
change carries forward (`recent_requests`); the store writes a new change only over the one the
check read, so the limit holds against concurrent requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chalicelib.domain.contact import email_key

CONFIRMATION_TTL = timedelta(hours=24)
LIMIT_WINDOW = timedelta(hours=24)
_KEY_LABEL = b"crm/email-confirmation/v1"
# A token is ~180 characters; anything far longer is not one (and a path segment is bounded).
MAX_TOKEN_CHARS = 400


@dataclass(frozen=True)
class EmailChange:
    customer_id: str
    email: str
    nonce: str
    requested_at: datetime
    expires_at: datetime
    # Set by the consumer that sends the link (once), and by the confirmation (once).
    mail_claimed_at: datetime | None = None
    confirmed_at: datetime | None = None
    # Set when the profile's address was set otherwise (by staff, or by the customer to one
    # that applies at once): the link no longer works.
    withdrawn_at: datetime | None = None
    # When the customer asked for a change within the last LIMIT_WINDOW, this one included.
    recent_requests: tuple[datetime, ...] = ()

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    @property
    def pending(self) -> bool:
        """Still waiting for its link to be followed."""
        return self.confirmed_at is None and self.withdrawn_at is None


@dataclass(frozen=True)
class EmailChangeLimits:
    """How often one customer may ask for a change of address (each request mails a link)."""

    cooldown: timedelta = timedelta(seconds=60)
    per_day: int = 5

    def __post_init__(self) -> None:
        if self.cooldown < timedelta(0) or self.per_day < 1:
            raise ValueError("email change limits: the cooldown must be >= 0 and per_day >= 1")

    def retry_after(self, previous: EmailChange | None, now: datetime) -> int | None:
        """Seconds until the customer may ask again, or None if they may now. It depends on
        the customer's own requests only, never on the address asked for."""
        if previous is None:
            return None
        waits = []
        if now < previous.requested_at + self.cooldown:
            waits.append(previous.requested_at + self.cooldown - now)
        recent = sorted(_recent(previous, now))
        if len(recent) >= self.per_day:
            waits.append(recent[len(recent) - self.per_day] + LIMIT_WINDOW - now)
        return max(1, math.ceil(max(waits).total_seconds())) if waits else None


def _recent(previous: EmailChange | None, now: datetime) -> tuple[datetime, ...]:
    if previous is None:
        return ()
    return tuple(at for at in previous.recent_requests if at > now - LIMIT_WINDOW)


def new_change(
    customer_id: str, email: str, now: datetime, previous: EmailChange | None = None
) -> EmailChange:
    """A change to `email`, replacing `previous` (whose request times it carries forward)."""
    return EmailChange(
        customer_id=customer_id,
        email=email,
        nonce=secrets.token_urlsafe(16),
        requested_at=now,
        expires_at=now + CONFIRMATION_TTL,
        recent_requests=(*_recent(previous, now), now),
    )


class BadLink(ValueError):
    """Not a token this service signed (malformed, edited or signed with another key)."""


@dataclass(frozen=True)
class LinkClaims:
    customer_id: str
    nonce: str
    expires_at: datetime
    address_tag: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ConfirmationLinks:
    """Signs and reads confirmation tokens; `url(change)` is the link mailed to the address."""

    def __init__(self, secret: str, base_url: str = "") -> None:
        if not secret:
            raise ValueError("confirmation links need a secret (CRM_LINK_SECRET)")
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()
        self._base_url = base_url.rstrip("/")

    def _mac(self, label: str, data: str) -> bytes:
        return hmac.new(self._key, f"{label}\n{data}".encode(), hashlib.sha256).digest()

    def _address_tag(self, email: str) -> str:
        # Keyed, so the token names the address without showing it (or letting it be guessed).
        return _b64(self._mac("address", email_key(email))[:12])

    def token(self, change: EmailChange) -> str:
        claims = {
            "c": change.customer_id,
            "n": change.nonce,
            "e": int(change.expires_at.timestamp()),
            "a": self._address_tag(change.email),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{_b64(self._mac('token', payload)[:16])}"

    def url(self, change: EmailChange) -> str:
        if not self._base_url:
            raise ValueError("confirmation links need a public base URL (CRM_PUBLIC_BASE_URL)")
        return f"{self._base_url}/email-confirmations/{self.token(change)}"

    def read(self, token: str) -> LinkClaims:
        """The token's claims once its signature holds; `BadLink` otherwise. Expiry is the
        caller's to judge (an expired link is answered differently from a forged one)."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise BadLink("not a confirmation token")
        payload, _, signature = token.partition(".")
        expected = _b64(self._mac("token", payload)[:16])
        if not payload or not hmac.compare_digest(signature.encode(), expected.encode()):
            raise BadLink("not a confirmation token")
        try:
            claims = json.loads(_unb64(payload))
            return LinkClaims(
                customer_id=str(claims["c"]),
                nonce=str(claims["n"]),
                expires_at=datetime.fromtimestamp(int(claims["e"]), UTC),
                address_tag=str(claims["a"]),
            )
        except (ValueError, KeyError, TypeError, OverflowError, OSError):
            raise BadLink("not a confirmation token") from None

    def names(self, claims: LinkClaims, change: EmailChange) -> bool:
        """The token was issued for exactly this change: its nonce and its address."""
        return hmac.compare_digest(claims.nonce, change.nonce) and hmac.compare_digest(
            claims.address_tag, self._address_tag(change.email)
        )
