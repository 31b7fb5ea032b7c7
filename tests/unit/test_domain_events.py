"""Events implied by stream records, from their images as plain values."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from chalicelib.domain.events import events_from_case_record, events_from_customer_record

AT = datetime(2026, 5, 1, 10, tzinfo=UTC)


def test_a_changed_tier_is_an_event_and_an_unchanged_one_is_none():
    old = {"pk": "CUSTOMER#cus_1", "sk": "LOYALTY", "customer_id": "cus_1", "tier": "silver"}
    new = old | {"tier": "gold", "score": Decimal(67)}
    [event] = events_from_customer_record("rec_1", "MODIFY", old, new, AT)
    assert event.to_message() == {
        "id": "rec_1",
        "type": "loyalty.tier_changed",
        "occurred_at": "2026-05-01T10:00:00.000Z",
        "customer_id": "cus_1",
        "data": {
            "customer_id": "cus_1",
            "old_tier": "silver",
            "new_tier": "gold",
            "score": 67,
            "time": "2026-05-01T10:00:00.000Z",
        },
    }
    assert events_from_customer_record("rec_2", "MODIFY", new, new, AT) == []
    [first] = events_from_customer_record("rec_3", "INSERT", None, new | {"tier": "silver"}, AT)
    assert (first.data["old_tier"], first.data["new_tier"]) == ("bronze", "silver")
    assert events_from_customer_record("rec_4", "REMOVE", new, None, AT) == []


def test_a_raised_escalation_level_is_an_event_naming_the_missed_deadlines():
    old = {"id": "case_1", "customer_id": "cus_1", "escalation_level": Decimal(0), "escalated_for": []}
    new = old | {
        "escalation_level": Decimal(1),
        "escalated_for": ["first_response"],
        "severity": "high",
        "status": "open",
    }
    [event] = events_from_case_record("rec_1", "MODIFY", old, new, AT)
    assert event.type == "case.escalated" and event.subject == "cus_1"
    assert event.data | {"time": None} == {
        "case_id": "case_1",
        "customer_id": "cus_1",
        "severity": "high",
        "status": "open",
        "escalation_level": 1,
        "missed": ["first_response"],
        "time": None,
    }
    assert events_from_case_record("rec_2", "MODIFY", new, new, AT) == []
    assert events_from_case_record("rec_3", "INSERT", None, new, AT) == []
