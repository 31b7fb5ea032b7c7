"""The audit trail: who changed what, when, through which route, field by field."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain import ids
from chalicelib.domain.clock import to_rfc3339

# Personal data: shown masked in the audit view, and scrubbed from it when a customer is erased.
PII_FIELDS = frozenset(
    {
        "name",
        "preferred_name",
        "email",
        "pending_email",  # an address asked for in self-service, before it is confirmed
        "phone",
        "secondary_emails",  # a merged customer's addresses and numbers (a merge's audit entry)
        "secondary_phones",
        "identity",  # the sign-in user (Cognito `sub`) linked to the customer
        "attributes",
        "tags",  # free labels staff give a person ("vip-ljubljana", "moved-to-oulu"): personal
        "note",
        "text",
        "subject",
        "description",
        "resolution",
    }
)


@dataclass(frozen=True)
class Actor:
    subject: str
    role: str
    route: str  # e.g. "PATCH /customers/{customer_id}"; "system" for consumers


SYSTEM = Actor("system", "system", "system")


@dataclass(frozen=True)
class Change:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class AuditEntry:
    id: str
    entity: str  # "customer", "case", "product"
    entity_id: str
    action: str  # "create", "update", "delete", "erase"
    actor: Actor
    at: datetime
    changes: tuple[Change, ...]
    customer_id: str | None = None


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, datetime):
        return to_rfc3339(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def diff(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, fields: Iterable[str]
) -> tuple[Change, ...]:
    old, new = before or {}, after or {}
    return tuple(
        Change(f, _plain(old.get(f)), _plain(new.get(f)))
        for f in fields
        if _plain(old.get(f)) != _plain(new.get(f))
    )


def entry(
    entity: str,
    entity_id: str,
    action: str,
    actor: Actor,
    at: datetime,
    changes: tuple[Change, ...],
    customer_id: str | None = None,
) -> AuditEntry:
    return AuditEntry(ids.new_id("aud", at), entity, entity_id, action, actor, at, changes, customer_id)


def mask(field: str, value: Any) -> Any:
    """How a personal value shows in the audit view: enough to recognise a change, not to
    read the data ("a***@example.com", "+46******567", "Å***")."""
    if value is None or field not in PII_FIELDS:
        return value
    if isinstance(value, Mapping):
        return {k: "***" for k in value}
    if isinstance(value, list | tuple):
        return ["***" for _ in value]
    text = str(value)
    if field in ("email", "pending_email") and "@" in text:
        local, _, domain = text.partition("@")
        return f"{local[:1]}***@{domain}"
    if field == "phone":
        return text[:3] + "*" * max(0, len(text) - 6) + text[-3:]
    return text[:1] + "***" if text else text
