"""The customers stream's POSSIBLE_DUPLICATES item as an event (domain/events.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from chalicelib.domain.events import PERSONAL, events_from_customer_record

AT = datetime(2026, 11, 26, 12, tzinfo=UTC)
IMAGE = {
    "pk": "CUSTOMER#cus_new",
    "sk": "POSSIBLE_DUPLICATES",
    "candidates": [{"customer_id": "cus_old", "score": Decimal("0.94")}],
    "found_at": "2026-11-26T12:00:00.000Z",
}


def test_the_insert_of_possible_duplicates_is_one_event_of_ids_and_scores():
    [event] = events_from_customer_record("rec-1", "INSERT", None, IMAGE, AT)
    assert (event.id, event.type, event.subject) == ("rec-1", "customer.possible_duplicate", "cus_new")
    assert event.data == {"customer_id": "cus_new", "candidates": [{"customer_id": "cus_old", "score": 0.94}]}
    assert event.type not in PERSONAL


def test_its_removal_with_the_customer_is_no_event():
    assert events_from_customer_record("rec-2", "REMOVE", IMAGE, None, AT) == []
