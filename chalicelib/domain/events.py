"""The one place that maps stored records to the events other systems consume.

Events go to the events queue (SQS FIFO): later consumers — campaigns, outbound webhooks —
read them there. An event's id is the id of the stream record it comes from, so redelivering
the record yields the same event, which the queue (and every consumer) de-duplicates. Its
subject is the customer it concerns: the queue keeps a customer's events in order.

An outbound webhook's body is `{"type", "timestamp", "data"}` (`webhook_body`) of at most
`MAX_WEBHOOK_BODY_BYTES`: every event is made here with `fitted`, which keeps only the ids of
a `data` too large for that, with `"truncated": true` (the client reads the rest from the API).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.customers import EDITABLE_FIELDS
from chalicelib.domain.interactions import TYPES as INTERACTION_TYPES

DEFAULT_TIER = "bronze"
MAX_WEBHOOK_BODY_BYTES = 20_000  # 20 KB, whichever way a receiver counts them
# Events whose data holds personal data: not published for a customer erased by the time the
# record is read (a late record), so that nothing of an erased customer is published again.
PERSONAL = frozenset(
    {"customer.created", "customer.updated", "interaction.created", "case.opened", "case.status_changed"}
)
PROFILE_SK = "PROFILE"
TOMBSTONE_SK = "DELETED"
ALIAS_SK = "MERGED"
POSSIBLE_DUPLICATES_SK = "POSSIBLE_DUPLICATES"


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    occurred_at: datetime
    subject: str  # the customer it concerns: events of one customer stay in order
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "occurred_at": to_rfc3339(self.occurred_at),
            "customer_id": self.subject,
            "data": dict(self.data),
        }


def webhook_body(type_: str, occurred_at: datetime, data: Mapping[str, Any]) -> str:
    """The body an outbound webhook sends for an event (Standard Webhooks' payload shape)."""
    payload = {"type": type_, "timestamp": to_rfc3339(occurred_at), "data": dict(data)}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def fitted(type_: str, occurred_at: datetime, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data`, or its ids (`id` and every `…_id`) with `"truncated": true` when the webhook
    body of the whole would be over MAX_WEBHOOK_BODY_BYTES in UTF-8."""
    if len(webhook_body(type_, occurred_at, data).encode()) <= MAX_WEBHOOK_BODY_BYTES:
        return dict(data)
    return {k: v for k, v in data.items() if k == "id" or k.endswith("_id")} | {"truncated": True}


def _event(record_id: str, type_: str, at: datetime, customer_id: str, data: Mapping[str, Any]) -> Event:
    return Event(id=record_id, type=type_, occurred_at=at, subject=customer_id, data=fitted(type_, at, data))


def _s(image: Mapping | None, name: str) -> str | None:
    value = (image or {}).get(name)
    return value if isinstance(value, str) else None


def _n(image: Mapping | None, name: str) -> int | None:
    value = (image or {}).get(name)
    return int(value) if isinstance(value, Decimal) else None


def _list(image: Mapping | None, name: str) -> list[str]:
    value = (image or {}).get(name)
    return [v if isinstance(v, str) else "" for v in value] if isinstance(value, list) else []


def _texts(image: Mapping | None, name: str) -> dict[str, str]:
    # DynamoDB Local's streams write an empty map as a bare {}, which reads as unreadable.
    value = (image or {}).get(name)
    return {k: v for k, v in value.items() if isinstance(v, str)} if isinstance(value, dict) else {}


def _customer_id_of(image: Mapping | None) -> str:
    pk = _s(image, "pk") or ""
    return pk.split("#", 1)[1] if pk.startswith("CUSTOMER#") else ""


def customer_data(image: Mapping) -> dict[str, Any]:
    """A profile item as GET /customers/{id} shows it (without the loyalty summary)."""
    return {
        "id": _s(image, "id") or _customer_id_of(image),
        "name": _s(image, "name"),
        "preferred_name": _s(image, "preferred_name"),
        "email": _s(image, "email"),
        "phone": _s(image, "phone"),
        "locale": _s(image, "locale"),
        "marketing_consent": image.get("marketing_consent") is True,
        "tags": _list(image, "tags"),
        "attributes": _texts(image, "attributes"),
        "created_at": _s(image, "created_at"),
        "updated_at": _s(image, "updated_at"),
        "version": _n(image, "version"),
        "secondary_emails": _list(image, "secondary_emails"),
        "secondary_phones": _list(image, "secondary_phones"),
    }


def events_from_customer_record(
    record_id: str, event_name: str, old: Mapping | None, new: Mapping | None, at: datetime
) -> list[Event]:
    """Events implied by one stream record of the customers table (its images as plain
    values: store/attribute_values.py reads them)."""
    sk = _s(new, "sk") or _s(old, "sk")
    if sk == PROFILE_SK:
        return _profile_events(record_id, event_name, old, new, at)
    if sk == TOMBSTONE_SK:
        return _tombstone_events(record_id, event_name, old, new, at)
    if sk == ALIAS_SK:
        return merged_events(record_id, event_name, new, at)
    if sk == POSSIBLE_DUPLICATES_SK:
        return possible_duplicate_events(record_id, event_name, new, at)
    if sk and sk.startswith("SEGMENT#") and event_name in ("INSERT", "REMOVE"):
        image = new if event_name == "INSERT" else old
        customer_id = _s(image, "customer_id") or ""
        return [
            _event(
                record_id,
                "segment.joined" if event_name == "INSERT" else "segment.left",
                at,
                customer_id,
                {"segment_id": _s(image, "segment_id"), "customer_id": customer_id, "time": to_rfc3339(at)},
            )
        ]
    if sk == "LOYALTY" and event_name in ("INSERT", "MODIFY"):
        old_tier = _s(old, "tier") or DEFAULT_TIER
        new_tier = _s(new, "tier") or DEFAULT_TIER
        if old_tier != new_tier:
            customer_id = _s(new, "customer_id") or ""
            return [
                _event(
                    record_id,
                    "loyalty.tier_changed",
                    at,
                    customer_id,
                    {
                        "customer_id": customer_id,
                        "old_tier": old_tier,
                        "new_tier": new_tier,
                        "score": _n(new, "score"),
                        "time": to_rfc3339(at),
                    },
                )
            ]
    return []


def _profile_events(
    record_id: str, event_name: str, old: Mapping | None, new: Mapping | None, at: datetime
) -> list[Event]:
    # A removed profile says nothing: its tombstone, written with the removal, tells deleted
    # from erased (below).
    if new is None or event_name not in ("INSERT", "MODIFY"):
        return []
    after = customer_data(new)
    if event_name == "INSERT":
        return [_event(record_id, "customer.created", at, after["id"], after)]
    before = customer_data(old or {})
    # Only what clients see: a write that changes no editable field (the version, the
    # updated_at, the search words alone) is no update to them.
    changed = [name for name in EDITABLE_FIELDS if before[name] != after[name]]
    if not changed:
        return []
    return [_event(record_id, "customer.updated", at, after["id"], after | {"changed": changed})]


def _tombstone_events(
    record_id: str, event_name: str, old: Mapping | None, new: Mapping | None, at: datetime
) -> list[Event]:
    """The tombstone is written with the profile's removal, in one transaction: `deleted_at`
    alone by a deletion, with `erased_at` by an erasure, and `erased_at` is added by the
    erasure of a customer deleted before. An erasure is `customer.erased`, never
    `customer.deleted` as well; neither carries anything but the id and the time."""
    customer_id = _customer_id_of(new or old)
    if new is None or not customer_id:
        return []
    erased_at = _s(new, "erased_at")
    if erased_at is not None and _s(old, "erased_at") is None:
        return [
            _event(record_id, "customer.erased", at, customer_id, {"id": customer_id, "erased_at": erased_at})
        ]
    if event_name == "INSERT":
        data = {"id": customer_id, "deleted_at": _s(new, "deleted_at")}
        return [_event(record_id, "customer.deleted", at, customer_id, data)]
    return []


def merged_events(record_id: str, event_name: str, new: Mapping | None, at: datetime) -> list[Event]:
    """A merged customer's alias, written when the merge starts: `customer.merged`, of the
    survivor (ids and the time only). A chain's collapse rewrites aliases (MODIFY): no event."""
    if event_name != "INSERT" or new is None:
        return []
    survivor_id, merged_id = _s(new, "survivor_id"), _s(new, "merged_id")
    if not survivor_id or not merged_id:
        return []
    data = {
        "survivor_id": survivor_id,
        "merged_id": merged_id,
        "time": _s(new, "merged_at") or to_rfc3339(at),
    }
    return [_event(record_id, "customer.merged", at, survivor_id, data)]


def possible_duplicate_events(
    record_id: str, event_name: str, new: Mapping | None, at: datetime
) -> list[Event]:
    """The candidates noted with a new customer (written in its creation's transaction):
    `customer.possible_duplicate`, ids and scores only."""
    customer_id = _customer_id_of(new)
    if event_name != "INSERT" or not customer_id:
        return []
    found = (new or {}).get("candidates")
    candidates = [
        {"customer_id": _s(c, "customer_id"), "score": float(c["score"])}
        for c in (found if isinstance(found, list) else [])
        if isinstance(c, dict) and isinstance(c.get("score"), Decimal)
    ]
    data = {"customer_id": customer_id, "candidates": candidates}
    return [_event(record_id, "customer.possible_duplicate", at, customer_id, data)]


def interaction_data(image: Mapping) -> dict[str, Any]:
    """An interaction item as GET /customers/{id}/interactions/{interaction_id} shows it."""
    kind = _s(image, "type")
    data: dict[str, Any] = {
        "id": _s(image, "id"),
        "customer_id": _s(image, "customer_id"),
        "type": kind,
        "channel": _s(image, "channel"),
        "occurred_at": _s(image, "occurred_at"),
        "created_at": _s(image, "created_at"),
        "note": _s(image, "note"),
        "direction": _s(image, "direction") or "inbound",
        "merged_from": _s(image, "merged_from"),
    }
    currency = _s(image, "currency")
    if currency:
        lines = image.get("items")
        data["currency"] = currency
        data["items"] = [
            {
                "sku": _s(line, "sku"),
                "name": _s(line, "name"),
                "quantity": _n(line, "quantity"),
                "unit_price": _s(line, "unit_price"),
            }
            for line in (lines if isinstance(lines, list) else [])
            if isinstance(line, dict)
        ]
        data["amount"] = _s(image, "amount")
    if _s(image, "purchase_id"):
        data["purchase_id"] = _s(image, "purchase_id")
    if _s(image, "order_id"):
        data["order_id"] = _s(image, "order_id")
    if kind == "complaint":
        data["severity"] = _s(image, "severity")
        data["subject"] = _s(image, "subject")
    if kind == "message":
        data["subject"] = _s(image, "subject")
        data["text"] = _s(image, "text")
        if _s(image, "case_id"):
            data["case_id"] = _s(image, "case_id")
        if _s(image, "campaign_id"):
            data["campaign_id"] = _s(image, "campaign_id")
            data["run_id"] = _s(image, "run_id")
    return data


def events_from_interaction_record(
    record_id: str, event_name: str, old: Mapping | None, new: Mapping | None, at: datetime
) -> list[Event]:
    """Events implied by one stream record of the interactions table: a new interaction.
    (Later writes to one — a purchase's returned quantities — and removals are none; nor is
    an interaction a merge moved to the survivor, `merged_from`: it was published when new.)"""
    if event_name != "INSERT" or new is None or _s(new, "type") not in INTERACTION_TYPES:
        return []
    if _s(new, "merged_from"):
        return []
    customer_id, interaction_id = _s(new, "customer_id"), _s(new, "id")
    if not customer_id or not interaction_id:
        return []
    return [_event(record_id, "interaction.created", at, customer_id, interaction_data(new))]


def _case_data(image: Mapping) -> dict[str, Any]:
    return {
        "case_id": _s(image, "id"),
        "customer_id": _s(image, "customer_id"),
        "interaction_id": _s(image, "interaction_id"),
        "subject": _s(image, "subject"),
        "severity": _s(image, "severity"),
        "status": _s(image, "status"),
        "assignee": _s(image, "assignee"),
        "opened_at": _s(image, "opened_at"),
        "first_response_due": _s(image, "first_response_due"),
        "resolution_due": _s(image, "resolution_due"),
        "escalation_level": _n(image, "escalation_level") or 0,
        "resolution": _s(image, "resolution"),
        "closed_reason": _s(image, "closed_reason"),
    }


def events_from_case_record(
    record_id: str, event_name: str, old: Mapping | None, new: Mapping | None, at: datetime
) -> list[Event]:
    """Events implied by one stream record of the cases table (its images as plain values)."""
    if new is None or event_name not in ("INSERT", "MODIFY"):
        return []
    customer_id = _s(new, "customer_id") or ""
    if event_name == "INSERT":
        return [_event(record_id, "case.opened", at, customer_id, _case_data(new) | {"time": to_rfc3339(at)})]
    events = []
    before, after = _s(old, "status"), _s(new, "status")
    if before is not None and before != after:
        data = _case_data(new) | {"old_status": before, "new_status": after, "time": to_rfc3339(at)}
        events.append(_event(record_id, "case.status_changed", at, customer_id, data))
    escalated = _escalation(record_id, old, new, at)
    if escalated is not None:
        events.append(escalated)
    if len(events) > 1:
        # One id per event: a write that both moved and escalated a case (none does today)
        # gives its second event an id of its own, as deterministic as the record's.
        events[0] = _renamed(events[0], f"{record_id}#{events[0].type}")
    return events


def _renamed(event: Event, event_id: str) -> Event:
    return Event(event_id, event.type, event.occurred_at, event.subject, event.data)


def _escalation(record_id: str, old: Mapping | None, new: Mapping, at: datetime) -> Event | None:
    before, after = _n(old, "escalation_level") or 0, _n(new, "escalation_level") or 0
    if after <= before:
        return None
    customer_id = _s(new, "customer_id") or ""
    missed = sorted(set(_list(new, "escalated_for")) - set(_list(old, "escalated_for")))
    return _event(
        record_id,
        "case.escalated",
        at,
        customer_id,
        {
            "case_id": _s(new, "id"),
            "customer_id": customer_id,
            "severity": _s(new, "severity"),
            "status": _s(new, "status"),
            "escalation_level": after,
            "missed": missed,
            "time": to_rfc3339(at),
        },
    )


def subscription_disabled_event(subscription_id: str, reason: str, at: datetime) -> Event:
    """webhook.subscription_disabled: an outbound webhook subscription was disabled by its
    deliveries (its receiver answered 410, or it failed for days). The id is derived from the
    subscription and the moment, so publishing it again is de-duplicated. It concerns no
    customer: its subject is empty."""
    return Event(
        id=f"{subscription_id}.disabled.{int(at.timestamp() * 1000)}",
        type="webhook.subscription_disabled",
        occurred_at=at,
        subject="",
        data={"subscription_id": subscription_id, "reason": reason, "time": to_rfc3339(at)},
    )
