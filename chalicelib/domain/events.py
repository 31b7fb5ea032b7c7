"""The one place that maps stored records to the events other systems consume.

Events go to the events queue (SQS FIFO): later consumers — campaigns, outbound webhooks —
read them there. An event's id is the id of the stream record it comes from, so redelivering
the record yields the same event, which the queue (and every consumer) de-duplicates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.clock import to_rfc3339

DEFAULT_TIER = "bronze"


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


def _s(image: Mapping | None, name: str) -> str | None:
    value = (image or {}).get(name)
    return value if isinstance(value, str) else None


def _n(image: Mapping | None, name: str) -> int | None:
    value = (image or {}).get(name)
    return int(value) if isinstance(value, Decimal) else None


def events_from_customer_record(
    record_id: str, event_name: str, old: Mapping | None, new: Mapping | None, at: datetime
) -> list[Event]:
    """Events implied by one stream record of the customers table (its images as plain
    values: store/attribute_values.py reads them)."""
    sk = _s(new, "sk") or _s(old, "sk")
    if sk and sk.startswith("SEGMENT#") and event_name in ("INSERT", "REMOVE"):
        image = new if event_name == "INSERT" else old
        customer_id = _s(image, "customer_id") or ""
        return [
            Event(
                id=record_id,
                type="segment.joined" if event_name == "INSERT" else "segment.left",
                occurred_at=at,
                subject=customer_id,
                data={
                    "segment_id": _s(image, "segment_id"),
                    "customer_id": customer_id,
                    "time": to_rfc3339(at),
                },
            )
        ]
    if sk == "LOYALTY" and event_name in ("INSERT", "MODIFY"):
        old_tier = _s(old, "tier") or DEFAULT_TIER
        new_tier = _s(new, "tier") or DEFAULT_TIER
        if old_tier != new_tier:
            customer_id = _s(new, "customer_id") or ""
            return [
                Event(
                    id=record_id,
                    type="loyalty.tier_changed",
                    occurred_at=at,
                    subject=customer_id,
                    data={
                        "customer_id": customer_id,
                        "old_tier": old_tier,
                        "new_tier": new_tier,
                        "score": _n(new, "score"),
                        "time": to_rfc3339(at),
                    },
                )
            ]
    return []


def events_from_case_record(
    record_id: str, event_name: str, old: Mapping | None, new: Mapping | None, at: datetime
) -> list[Event]:
    """Events implied by one stream record of the cases table (its images as plain values)."""
    if event_name != "MODIFY":
        return []
    before, after = _n(old, "escalation_level") or 0, _n(new, "escalation_level") or 0
    if after <= before:
        return []
    customer_id = _s(new, "customer_id") or ""
    missed = sorted(set(_list(new, "escalated_for")) - set(_list(old, "escalated_for")))
    return [
        Event(
            id=record_id,
            type="case.escalated",
            occurred_at=at,
            subject=customer_id,
            data={
                "case_id": _s(new, "id"),
                "customer_id": customer_id,
                "severity": _s(new, "severity"),
                "status": _s(new, "status"),
                "escalation_level": after,
                "missed": missed,
                "time": to_rfc3339(at),
            },
        )
    ]


def _list(image: Mapping | None, name: str) -> list[str]:
    value = (image or {}).get(name)
    return [v if isinstance(v, str) else "" for v in value] if isinstance(value, list) else []


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
