"""Request and response models of outbound webhook subscriptions and their deliveries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import ConfigDict, Field, PrivateAttr, StrictBool, model_validator

from chalicelib.api.requests import RequestFieldErrors
from chalicelib.api.schemas import NotNull, Out, PageQuery, Strict, Timestamp
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.webhook_secrets import newest
from chalicelib.domain.webhook_signatures import SECRET_PATTERN
from chalicelib.domain.webhook_subscriptions import (
    DISABLED_REASONS,
    EVENT_TYPES,
    MAX_PATTERNS,
    MAX_URL_LENGTH,
    STATUSES,
    PatternError,
    check_patterns,
)
from chalicelib.errors import FieldError

if TYPE_CHECKING:
    from chalicelib.domain.webhook_subscriptions import Delivery, Subscription
    from chalicelib.services.webhook_subscriptions import Replay

URL_DESCRIPTION = (
    "https only; the host must resolve to public addresses only (no loopback, private, link-local, "
    "CGNAT, multicast or reserved address, nor an IPv4-mapped, 6to4 or NAT64 form of one), checked "
    "now and on every delivery; a refused URL is a 422 naming url. Hosts of CRM_WEBHOOK_ALLOW_HOSTS "
    "are exempt (and may use http)."
)
EVENTS_DESCRIPTION = (
    f"What to deliver: event types ({', '.join(EVENT_TYPES)}), <prefix>.* (e.g. case.*) or * for every event."
)
Url = Annotated[str, Field(min_length=1, max_length=MAX_URL_LENGTH, description=URL_DESCRIPTION)]
Events = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=100)]],
    Field(min_length=1, max_length=MAX_PATTERNS, description=EVENTS_DESCRIPTION),
]
Description = Annotated[str, Field(max_length=500)]
Status = Literal[STATUSES]  # type: ignore[valid-type]


def _patterns(events: list[str]) -> tuple[str, ...]:
    try:
        return check_patterns(events)
    except PatternError as error:
        raise RequestFieldErrors([FieldError(f"events.{error.index}", error.message)]) from None


class SubscriptionCreate(Strict):
    url: Url
    events: Events
    description: Description | None = None
    _events: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _rules(self) -> SubscriptionCreate:
        self._events = _patterns(self.events)
        return self

    def fields(self) -> dict:
        return {"url": self.url, "events": self._events, "description": self.description or None}


class SubscriptionPatch(Strict):
    """Only the fields present change (at least one). `enabled: true` on a disabled
    subscription clears its failure state."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    url: Annotated[Url, NotNull] = None  # type: ignore[assignment]
    events: Annotated[Events, NotNull] = None  # type: ignore[assignment]
    description: Description | None = None
    enabled: Annotated[StrictBool, NotNull] = None  # type: ignore[assignment]
    _changes: dict = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _rules(self) -> SubscriptionPatch:
        given = self.model_fields_set
        if not given:
            raise RequestFieldErrors([FieldError("body", "names nothing to change")])
        changes: dict = {name: getattr(self, name) for name in given}
        if "events" in given:
            changes["events"] = _patterns(self.events)
        if "description" in given:
            changes["description"] = self.description or None
        self._changes = changes
        return self

    def changes(self) -> dict:
        return self._changes


class SubscriptionOut(Out):
    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    failing_since: str | None = Field(
        description="since when its deliveries have been failing, without a success"
    )
    disabled_at: str | None
    disabled_reason: Literal[DISABLED_REASONS] | None = Field(  # type: ignore[valid-type]
        description="gone: the receiver answered 410; failing: it failed for 5 days; "
        "manual: staff disabled it"
    )
    created_at: str
    updated_at: str
    version: int

    @classmethod
    def of(cls, s: Subscription) -> dict:
        return {
            "id": s.id,
            "url": s.url,
            "events": list(s.events),
            "description": s.description,
            "enabled": s.enabled,
            "failing_since": to_rfc3339(s.failing_since) if s.failing_since else None,
            "disabled_at": to_rfc3339(s.disabled_at) if s.disabled_at else None,
            "disabled_reason": s.disabled_reason,
            "created_at": to_rfc3339(s.created_at),
            "updated_at": to_rfc3339(s.updated_at),
            "version": s.version,
        }


class SubscriptionWithSecretOut(SubscriptionOut):
    secret: str = Field(
        description="whsec_…: the signing secret, shown here only (on creation and rotation)",
        pattern=SECRET_PATTERN,
    )

    @classmethod
    def of(cls, s: Subscription) -> dict:
        return {**SubscriptionOut.of(s), "secret": newest(s.secrets)}


class SubscriptionPage(Out):
    items: list[SubscriptionOut]
    next_cursor: str | None


class AttemptOut(Out):
    at: str
    status_code: int | None = Field(
        description="null when no answer came (timeout, refused, connection error)"
    )
    duration_ms: int
    response_excerpt: str = Field(description="the first 1 KB of the answer (or why there was none)")


class DeliveryOut(Out):
    id: str
    event_id: str = Field(description="the webhook-id header of every attempt")
    type: str
    status: Status
    attempts: list[AttemptOut] = Field(description="oldest first; the last 16")
    created_at: str
    next_attempt_at: str | None = Field(description="while pending: when it is tried next")

    @classmethod
    def of(cls, d: Delivery) -> dict:
        return {
            "id": d.id,
            "event_id": d.event_id,
            "type": d.type,
            "status": d.status,
            "attempts": [
                {
                    "at": to_rfc3339(a.at),
                    "status_code": a.status_code,
                    "duration_ms": a.duration_ms,
                    "response_excerpt": a.response_excerpt,
                }
                for a in d.attempts
            ],
            "created_at": to_rfc3339(d.created_at),
            "next_attempt_at": to_rfc3339(d.next_attempt_at) if d.next_attempt_at else None,
        }


class DeliveryPage(Out):
    items: list[DeliveryOut]
    next_cursor: str | None


class DeliveryQuery(PageQuery):
    status: Status | None = None


class ReplayIn(Strict):
    since: Timestamp = Field(description="replay the skipped deliveries of events since then")


class ReplayOut(Out):
    id: str
    subscription_id: str
    since: str

    @classmethod
    def of(cls, r: Replay) -> dict:
        return {"id": r.id, "subscription_id": r.subscription_id, "since": to_rfc3339(r.since)}
