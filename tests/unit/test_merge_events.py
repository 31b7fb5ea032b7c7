"""The events of a merge, from the stream records it writes (domain/events.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.domain.events import PERSONAL, events_from_customer_record, events_from_interaction_record
from chalicelib.domain.webhook_subscriptions import EVENT_TYPES

AT = datetime(2026, 6, 1, 12, 0, 5, tzinfo=UTC)
ALIAS = {
    "pk": "CUSTOMER#cus_m",
    "sk": "MERGED",
    "merged_id": "cus_m",
    "survivor_id": "cus_s",
    "merge_id": "mrg_1",
    "merged_at": "2026-06-01T12:00:00.000Z",
}
MOVED = {
    "customer_id": "cus_s",
    "id": "int_1",
    "type": "purchase",
    "channel": "store",
    "occurred_at": "2026-02-01T10:00:00.000Z",
    "created_at": "2026-02-01T10:00:00.000Z",
    "merged_from": "cus_m",
}


def test_a_new_alias_is_customer_merged_of_the_survivor_with_ids_and_time_only():
    [event] = events_from_customer_record("rec_1", "INSERT", None, ALIAS, AT)
    assert event.to_message() == {
        "id": "rec_1",
        "type": "customer.merged",
        "occurred_at": "2026-06-01T12:00:05.000Z",
        "customer_id": "cus_s",
        "data": {"survivor_id": "cus_s", "merged_id": "cus_m", "time": "2026-06-01T12:00:00.000Z"},
    }
    assert "customer.merged" not in PERSONAL


def test_a_collapsed_or_removed_alias_is_no_event():
    collapsed = ALIAS | {"survivor_id": "cus_c"}
    assert events_from_customer_record("rec_2", "MODIFY", ALIAS, collapsed, AT) == []
    assert events_from_customer_record("rec_3", "REMOVE", ALIAS, None, AT) == []


def test_an_interaction_a_merge_moved_is_no_interaction_created_and_its_removal_is_none_either():
    assert events_from_interaction_record("rec_1", "INSERT", None, MOVED, AT) == []
    original = MOVED | {"customer_id": "cus_m"}
    del original["merged_from"]
    assert events_from_interaction_record("rec_2", "REMOVE", original, None, AT) == []
    # The same interaction, new (not moved), is one.
    [event] = events_from_interaction_record("rec_3", "INSERT", None, original, AT)
    assert event.type == "interaction.created"


def test_customer_merged_is_an_event_type_subscriptions_may_name():
    assert "customer.merged" in EVENT_TYPES
