"""Outbound webhooks, the rules: which events a subscription takes, the payload it is sent,
where it may be sent (the address policy against server-side request forgery), and when a
failed delivery is tried again. No storage, no network: the sender (store/webhook_http.py)
resolves names and asks `checked_address` which address it may connect to."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

from chalicelib.domain import ids
from chalicelib.domain.clock import parse_rfc3339
from chalicelib.domain.events import MAX_WEBHOOK_BODY_BYTES, webhook_body
from chalicelib.domain.webhook_secrets import Secret

# The events a subscription may name: those of domain/events.py (and the segments issue),
# plus the one this feature publishes itself.
EVENT_TYPES = (
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "customer.erased",
    "customer.merged",
    "customer.possible_duplicate",
    "interaction.created",
    "loyalty.tier_changed",
    "case.opened",
    "case.status_changed",
    "case.escalated",
    "segment.joined",
    "segment.left",
    "webhook.subscription_disabled",
)
PREFIXES = tuple(dict.fromkeys(t.split(".")[0] for t in EVENT_TYPES))
MAX_PATTERNS = 50

# A Query of the subscriptions' one partition is read for every event: bounded on purpose.
MAX_SUBSCRIPTIONS = 100
MAX_URL_LENGTH = 2048
MAX_BODY_BYTES = MAX_WEBHOOK_BODY_BYTES  # the mapper fits every event in it
EXCERPT_BYTES = 1024

PENDING, SUCCEEDED, FAILED, SKIPPED = "pending", "succeeded", "failed", "skipped"
STATUSES = (PENDING, SUCCEEDED, FAILED, SKIPPED)
FINAL = (SUCCEEDED, FAILED)
# Why a subscription is disabled: its receiver answered 410, it failed for FAILING_LIMIT, or
# staff disabled it (PATCH enabled: false).
GONE, FAILING, MANUAL = "gone", "failing", "manual"
DISABLED_REASONS = (GONE, FAILING, MANUAL)
FAILING_LIMIT = timedelta(days=5)

# After attempt n fails, the next waits RETRY_DELAYS_S[n - 1] (Svix's schedule), ±JITTER.
RETRY_DELAYS_S = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS_S) + 1
JITTER = 0.2
# SQS's longest visibility timeout: no message can be hidden longer.
MAX_DELAY_S = 43_200
# The attempts a delivery keeps (a manual retry starts a new round of MAX_ATTEMPTS).
MAX_KEPT_ATTEMPTS = 2 * MAX_ATTEMPTS

# When a pending delivery is given up as lost by the queue (the sweep marks it failed). Once
# attempted, its message is the head of its lane, received again at each next_attempt_at:
# two days past the attempt it waited for, no live message is left (it went to the
# dead-letter queue). Never attempted, it may wait behind its lane's earlier deliveries —
# each one's schedule takes up to ~33 hours, with no bound on how many — so only the queue's
# retention (14 days, infra/resources.json) and a day's margin tell it is gone.
STUCK_AFTER = timedelta(days=2)
QUEUE_RETENTION = timedelta(days=14)
UNSTARTED_STUCK_AFTER = QUEUE_RETENTION + timedelta(days=1)
GIVEN_UP = "no attempt finished: the delivery was given up by the queue"


class PatternError(ValueError):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


def check_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    """The event patterns of a subscription, without repeats: known event types,
    `<prefix>.*` of a known prefix, or `*`. PatternError names the first bad one."""
    kept: list[str] = []
    for index, pattern in enumerate(patterns):
        known = pattern == "*" or pattern in EVENT_TYPES
        if pattern.endswith(".*") and pattern[:-2] in PREFIXES:
            known = True
        if not known:
            raise PatternError(
                index,
                f"is not an event type, <prefix>.* or *; the types are {', '.join(EVENT_TYPES)}",
            )
        if pattern not in kept:
            kept.append(pattern)
    if not kept:
        raise PatternError(0, "names no event")
    return tuple(kept)


def matches(patterns: Iterable[str], event_type: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    events: tuple[str, ...]
    description: str | None
    enabled: bool
    secrets: tuple[Secret, ...]
    created_at: datetime
    updated_at: datetime
    version: int = 1
    failing_since: datetime | None = None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    # A disabling that publishes webhook.subscription_disabled: False until it is published.
    disabled_notified: bool = True

    def takes(self, event_type: str) -> bool:
        return matches(self.events, event_type)

    def enabled_again(self, now: datetime) -> Subscription:
        """Enabled, its failure state cleared."""
        return replace(
            self,
            enabled=True,
            failing_since=None,
            disabled_at=None,
            disabled_reason=None,
            disabled_notified=True,
            updated_at=now,
        )

    def disabled(self, reason: str, now: datetime) -> Subscription:
        return replace(
            self,
            enabled=False,
            disabled_at=now,
            disabled_reason=reason,
            disabled_notified=reason == MANUAL,
            updated_at=now,
        )


@dataclass(frozen=True)
class Attempt:
    at: datetime
    status_code: int | None  # None: no answer (timeout, connection error, refused address)
    duration_ms: int
    response_excerpt: str


@dataclass(frozen=True)
class Delivery:
    id: str
    subscription_id: str
    event_id: str
    type: str
    customer_id: str
    body: str  # the exact JSON sent and signed
    status: str
    created_at: datetime
    attempts: tuple[Attempt, ...] = ()
    attempt_count: int = 0  # attempts of the current round (a manual retry starts one)
    retries: int = 0  # manual retries and replays so far
    next_attempt_at: datetime | None = None
    version: int = 1
    round_started_at: datetime | None = None  # of a manual retry's or replay's round

    def with_attempt(self, attempt: Attempt, status: str, next_attempt_at: datetime | None) -> Delivery:
        kept = (*self.attempts, attempt)[-MAX_KEPT_ATTEMPTS:]
        return replace(
            self,
            attempts=kept,
            attempt_count=self.attempt_count + 1,
            status=status,
            next_attempt_at=next_attempt_at,
        )

    def requeued(self, now: datetime) -> Delivery:
        """Pending again for a new round of attempts (a manual retry, a replay)."""
        return replace(
            self,
            status=PENDING,
            attempt_count=0,
            retries=self.retries + 1,
            next_attempt_at=None,
            round_started_at=now,
        )

    def last_sign_of_life(self) -> datetime:
        """The latest moment the delivery's queue message is known to have been live: its
        round's start, its latest attempt of the round, or the attempt it waits for."""
        moments = [self.round_started_at or self.created_at]
        if self.attempt_count and self.attempts:
            moments.append(self.attempts[-1].at)
        if self.next_attempt_at is not None:
            moments.append(self.next_attempt_at)
        return max(moments)

    def given_up_by_the_queue(self, now: datetime) -> bool:
        """A pending delivery whose queue message cannot be alive any more (see STUCK_AFTER)."""
        if self.status != PENDING:
            return False
        quiet = now - self.last_sign_of_life()
        return quiet > (STUCK_AFTER if self.attempt_count else UNSTARTED_STUCK_AFTER)


def delivery_id(subscription_id: str, event_id: str, occurred_at: datetime) -> str:
    """Derived from the subscription and the event, so a redelivered event makes the same id
    (and its conditional write, nothing); ordered by the event's time."""
    digest = hashlib.sha256(f"{subscription_id}{event_id}".encode()).digest()
    return f"{ids.WEBHOOK_DELIVERY}_{ids.ulid_from(occurred_at, digest[:10])}"


def first_delivery_id_at(moment: datetime) -> str:
    """The smallest delivery id of `moment`: where a walk of deliveries since then starts."""
    return f"{ids.WEBHOOK_DELIVERY}_{ids.ulid_from(moment, bytes(10))}"


def body_of(event_type: str, timestamp: str, data: Mapping[str, Any]) -> str:
    """Standard Webhooks' payload shape, {"type", "timestamp", "data"}: `timestamp` as the
    event's message has it (RFC 3339), serialised as events.webhook_body does."""
    return webhook_body(event_type, parse_rfc3339(timestamp), data)


# Retries


def retry_delay_s(
    attempt: int, random: Callable[[], float], retry_after_s: float | None = None
) -> int | None:
    """Seconds to wait after attempt `attempt` (1-based) failed, or None if it was the last:
    the schedule's delay ±JITTER (`random()` in [0, 1)), at least `retry_after_s`, at most
    MAX_DELAY_S."""
    if attempt >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS_S[attempt - 1]
    delay = base * (1 - JITTER + 2 * JITTER * random())
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return max(1, min(MAX_DELAY_S, math.ceil(delay)))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """A Retry-After header's wait in seconds: delay-seconds or an HTTP date; None if absent or
    unreadable. A date in the past is 0."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"[0-9]{1,10}", text):
        return float(int(text))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return max(0.0, (moment - now).total_seconds())


# Where a webhook may go

_NETWORKS: list[tuple[str, str]] = [
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "reserved"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved"),
    ("198.51.100.0/24", "reserved"),
    ("203.0.113.0/24", "reserved"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "reserved"),
    ("100::/64", "reserved"),
    ("2001::/23", "reserved"),
    ("2001:db8::/32", "reserved"),
    ("3fff::/20", "reserved"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "reserved"),
    ("ff00::/8", "multicast"),
    ("::/8", "reserved"),
]
BLOCKED = [(ipaddress.ip_network(net), reason) for net, reason in _NETWORKS]
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIXTOFOUR = ipaddress.ip_network("2002::/16")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: IPv4-mapped, NAT64 (well-known prefix), 6to4."""
    if address in _MAPPED:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIXTOFOUR:
        return address.sixtofour
    return None


def refusal(address: IPAddress | str) -> str | None:
    """Why no webhook may go to `address` (e.g. "loopback"), or None for a public address."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "link-local"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return refusal(embedded)
    for network, reason in BLOCKED:
        if ip.version == network.version and ip in network:
            return reason
    if not ip.is_global:
        return "reserved"
    return None


class UrlRefused(ValueError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Target:
    """Where a URL says to send: checked, not yet resolved."""

    scheme: str
    host: str  # ASCII (IDNA), lower case, without brackets: the name resolved
    port: int
    path: str  # path and query, as sent in the request line (non-ASCII percent-encoded)
    allowed: bool  # named by the allow list: any address, http too
    literal: str | None = None  # the host is this IP address
    host_header: str = field(default="")

    @property
    def server_name(self) -> str:
        """The name TLS is verified for (SNI, the certificate) and the `Host` header names:
        without the trailing dot of an absolute name, which certificates never carry."""
        return self.host.removesuffix(".")


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # What resolvers read as IPv4 too: 127.1, 0x7f.1, 2130706433.
    if re.fullmatch(r"[0-9a-fx.]+", host) and not re.search(r"[g-wyz]", host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _ascii_host(host: str) -> str:
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UrlRefused("does not name a valid host") from None
    labels = ascii_host.removesuffix(".").split(".")
    if not all(_LABEL.match(label) for label in labels) or len(ascii_host) > 253:
        raise UrlRefused("does not name a valid host")
    return ascii_host


def target_of(url: str, allow_hosts: Iterable[str]) -> Target:
    """The target of a subscription's URL, or UrlRefused: https only (http too for a host of
    `allow_hosts`), a host and no user name or password, at most MAX_URL_LENGTH characters, and
    an IP address named literally must be a public one (unless allowed)."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"is longer than {MAX_URL_LENGTH} characters")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise UrlRefused("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UrlRefused("must be an https URL")
    if "@" in parts.netloc:
        raise UrlRefused("must not carry a user name or password")
    raw_host = parts.hostname or ""
    if not raw_host:
        raise UrlRefused("must name a host")
    literal = _ip_literal(raw_host)
    host = str(literal) if literal is not None and ":" in raw_host else raw_host
    if literal is None:
        host = _ascii_host(raw_host)
    allowed = {h.strip().lower().removesuffix(".") for h in allow_hosts if h.strip()}
    is_allowed = host.removesuffix(".") in allowed or raw_host.lower().removesuffix(".") in allowed
    if scheme != "https" and not (scheme == "http" and is_allowed):
        raise UrlRefused("must be an https URL")
    if literal is not None and not is_allowed:
        reason = refusal(literal)
        if reason:
            raise UrlRefused(f"names {_a(reason)} address")
    if port == 0:
        raise UrlRefused("must not name port 0")
    default_port = 443 if scheme == "https" else 80
    port = port or default_port
    name = host.removesuffix(".")
    shown = f"[{name}]" if ":" in name else name
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    path = "".join(char if ord(char) < 0x80 else quote(char) for char in path)
    return Target(
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        allowed=is_allowed,
        literal=str(literal) if literal is not None else None,
        host_header=shown if port == default_port else f"{shown}:{port}",
    )


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def checked_addresses(target: Target, addresses: Iterable[str]) -> tuple[str, ...]:
    """The addresses to connect to for `target`, in turn, of those its host resolved to: every
    one must be public (unless the host is allowed), so a name cannot point at this network."""
    if target.literal is not None:
        return (target.literal,)
    found = list(dict.fromkeys(addresses))
    if not found:
        raise UrlRefused(f"names {target.host}, which does not resolve")
    if not target.allowed:
        for address in found:
            reason = refusal(address)
            if reason:
                raise UrlRefused(f"names {target.host}, which resolves to {_a(reason)} address")
    return tuple(found)
