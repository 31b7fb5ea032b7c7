"""Events implied by stream records, from their images as plain values."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from chalicelib.domain.events import (
    MAX_WEBHOOK_BODY_BYTES,
    PERSONAL,
    events_from_case_record,
    events_from_customer_record,
    events_from_interaction_record,
    fitted,
    webhook_body,
)

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
    assert [e.type for e in events_from_case_record("rec_3", "INSERT", None, new, AT)] == ["case.opened"]


PROFILE = {
    "pk": "CUSTOMER#cus_1",
    "sk": "PROFILE",
    "list_pk": "customers",
    "list_sk": "cus_1",
    "id": "cus_1",
    "name": "Åsa Öberg",
    "email": "asa@exempel.se",
    "phone": "+46701234567",
    "locale": "sv-SE",
    "marketing_consent": True,
    "tags": ["vip"],
    "attributes": {"butik": "Slussen"},
    "search_words": ["asa", "oberg"],
    "created_at": "2026-05-01T09:00:00.000Z",
    "updated_at": "2026-05-01T09:00:00.000Z",
    "version": Decimal(1),
}
SHOWN = {  # the profile as GET /customers/{id} shows it
    "id": "cus_1",
    "name": "Åsa Öberg",
    "preferred_name": None,
    "email": "asa@exempel.se",
    "phone": "+46701234567",
    "locale": "sv-SE",
    "marketing_consent": True,
    "tags": ["vip"],
    "attributes": {"butik": "Slussen"},
    "created_at": "2026-05-01T09:00:00.000Z",
    "updated_at": "2026-05-01T09:00:00.000Z",
    "version": 1,
    "secondary_emails": [],
    "secondary_phones": [],
}


def test_a_new_profile_is_customer_created_with_the_profile_as_clients_see_it():
    [event] = events_from_customer_record("rec_1", "INSERT", None, PROFILE, AT)
    assert (event.id, event.type, event.subject) == ("rec_1", "customer.created", "cus_1")
    assert event.data == SHOWN
    assert "search_words" not in json.dumps(event.to_message())


def test_a_changed_profile_is_customer_updated_naming_the_fields_that_changed():
    new = PROFILE | {
        "email": "asa@exempel.org",
        "tags": ["vip", "nyhetsbrev"],
        "updated_at": "2026-05-01T10:00:00.000Z",
        "version": Decimal(2),
    }
    [event] = events_from_customer_record("rec_2", "MODIFY", PROFILE, new, AT)
    assert (event.id, event.type, event.subject) == ("rec_2", "customer.updated", "cus_1")
    assert event.data == SHOWN | {
        "email": "asa@exempel.org",
        "tags": ["vip", "nyhetsbrev"],
        "updated_at": "2026-05-01T10:00:00.000Z",
        "version": 2,
        "changed": ["email", "tags"],
    }
    cleared = {k: v for k, v in new.items() if k != "phone"}
    [cleared_event] = events_from_customer_record("rec_3", "MODIFY", new, cleared, AT)
    assert cleared_event.data["changed"] == ["phone"] and cleared_event.data["phone"] is None


def test_a_profile_write_that_changes_nothing_clients_see_is_no_event():
    bumped = PROFILE | {
        "version": Decimal(7),
        "updated_at": "2026-05-02T00:00:00.000Z",
        "search_words": ["asa", "oberg", "x"],
    }
    assert events_from_customer_record("rec_1", "MODIFY", PROFILE, bumped, AT) == []
    # The order of an attribute map's keys is no change either.
    before = PROFILE | {"attributes": {"a": "1", "b": "2"}}
    after = PROFILE | {"attributes": {"b": "2", "a": "1"}}
    assert events_from_customer_record("rec_2", "MODIFY", before, after, AT) == []


def test_a_removed_profile_is_no_event_its_tombstone_is_customer_deleted_with_no_personal_data():
    assert events_from_customer_record("rec_1", "REMOVE", PROFILE, None, AT) == []
    tombstone = {"pk": "CUSTOMER#cus_1", "sk": "DELETED", "deleted_at": "2026-05-01T10:00:00.000Z"}
    [event] = events_from_customer_record("rec_2", "INSERT", None, tombstone, AT)
    assert (event.id, event.type, event.subject) == ("rec_2", "customer.deleted", "cus_1")
    assert event.data == {"id": "cus_1", "deleted_at": "2026-05-01T10:00:00.000Z"}
    assert events_from_customer_record("rec_3", "REMOVE", tombstone, None, AT) == []


def test_an_erasure_is_customer_erased_and_never_customer_deleted_too():
    at = "2026-05-01T10:00:00.000Z"
    erased = {"pk": "CUSTOMER#cus_1", "sk": "DELETED", "deleted_at": at, "erased_at": at}
    [event] = events_from_customer_record("rec_1", "INSERT", None, erased, AT)
    assert (event.type, event.subject, event.data) == (
        "customer.erased",
        "cus_1",
        {"id": "cus_1", "erased_at": at},
    )
    # A customer deleted before, erased later: the tombstone gains its erased_at.
    deleted = {"pk": "CUSTOMER#cus_1", "sk": "DELETED", "deleted_at": "2026-04-01T10:00:00.000Z"}
    later = deleted | {"erased_at": at}
    [event] = events_from_customer_record("rec_2", "MODIFY", deleted, later, AT)
    assert (event.id, event.type, event.data) == (
        "rec_2",
        "customer.erased",
        {"id": "cus_1", "erased_at": at},
    )
    assert events_from_customer_record("rec_3", "MODIFY", later, later, AT) == []
    assert not {"customer.deleted", "customer.erased"} & PERSONAL


PURCHASE = {
    "customer_id": "cus_1",
    "id": "int_1",
    "customer_type": "cus_1#purchase",
    "type": "purchase",
    "channel": "store",
    "occurred_at": "2026-05-01T09:30:00.000Z",
    "created_at": "2026-05-01T09:31:00.000Z",
    "note": "Köpte kaffe",
    "currency": "SEK",
    "items": [{"sku": "SKU-KAFFE", "name": "Kaffe 500 g", "quantity": Decimal(2), "unit_price": "59.90"}],
    "amount": "119.80",
    "returned": {},
    "version": Decimal(1),
}


def test_a_new_interaction_is_interaction_created_with_its_public_fields():
    [event] = events_from_interaction_record("rec_1", "INSERT", None, PURCHASE, AT)
    assert (event.id, event.type, event.subject) == ("rec_1", "interaction.created", "cus_1")
    assert event.data == {
        "id": "int_1",
        "customer_id": "cus_1",
        "type": "purchase",
        "channel": "store",
        "occurred_at": "2026-05-01T09:30:00.000Z",
        "created_at": "2026-05-01T09:31:00.000Z",
        "note": "Köpte kaffe",
        "direction": "inbound",
        "merged_from": None,
        "currency": "SEK",
        "items": [{"sku": "SKU-KAFFE", "name": "Kaffe 500 g", "quantity": 2, "unit_price": "59.90"}],
        "amount": "119.80",
    }
    message = {
        "customer_id": "cus_1",
        "id": "int_2",
        "type": "message",
        "channel": "email",
        "direction": "outbound",
        "occurred_at": "2026-05-01T09:30:00.000Z",
        "created_at": "2026-05-01T09:30:00.000Z",
        "subject": "Hej Åsa",
        "text": "Något för dig",
        "campaign_id": "cmp_1",
        "run_id": "run_1",
        "version": Decimal(1),
    }
    [sent] = events_from_interaction_record("rec_2", "INSERT", None, message, AT)
    assert sent.data | {"occurred_at": None, "created_at": None} == {
        "id": "int_2",
        "customer_id": "cus_1",
        "type": "message",
        "channel": "email",
        "occurred_at": None,
        "created_at": None,
        "note": None,
        "direction": "outbound",
        "merged_from": None,
        "subject": "Hej Åsa",
        "text": "Något för dig",
        "campaign_id": "cmp_1",
        "run_id": "run_1",
    }
    complaint = {k: v for k, v in message.items() if k not in ("text", "campaign_id", "run_id")}
    complaint |= {"type": "complaint", "direction": "inbound", "severity": "high", "subject": "Trasig"}
    [complained] = events_from_interaction_record("rec_3", "INSERT", None, complaint, AT)
    assert (complained.data["severity"], complained.data["subject"]) == ("high", "Trasig")
    assert "text" not in complained.data and "case_id" not in complained.data


def test_an_order_from_a_webhook_keeps_its_order_id_in_the_event():
    [event] = events_from_interaction_record("rec_4", "INSERT", None, PURCHASE | {"order_id": "1001"}, AT)
    assert event.data["order_id"] == "1001"
    [plain] = events_from_interaction_record("rec_5", "INSERT", None, PURCHASE, AT)
    assert "order_id" not in plain.data


def test_only_a_new_interaction_is_an_event():
    returned = PURCHASE | {"returned": {"SKU-KAFFE": Decimal(1)}, "version": Decimal(2)}
    assert events_from_interaction_record("rec_1", "MODIFY", PURCHASE, returned, AT) == []
    assert events_from_interaction_record("rec_2", "REMOVE", PURCHASE, None, AT) == []
    assert events_from_interaction_record("rec_3", "INSERT", None, PURCHASE | {"type": "guard"}, AT) == []
    assert (
        events_from_interaction_record("rec_4", "INSERT", None, {"customer_id": "cus_1", "id": "x"}, AT) == []
    )


CASE = {
    "id": "case_1",
    "customer_id": "cus_1",
    "interaction_id": "int_1",
    "opened_sk": "2026-05-01T10:00:00.000Z#case_1",
    "queue": "active",
    "due_sk": "2026-05-01T14:00:00.000Z#case_1",
    "status": "open",
    "subject": "Trasig termos",
    "severity": "high",
    "opened_at": "2026-05-01T10:00:00.000Z",
    "first_response_due": "2026-05-01T14:00:00.000Z",
    "resolution_due": "2026-05-03T10:00:00.000Z",
    "escalation_level": Decimal(0),
    "escalated_for": [],
    "history": "[]",
    "history_count": Decimal(1),
    "ack_text": "Hej Åsa, vi har fått ditt klagomål",
    "version": Decimal(1),
}
CASE_DATA = {
    "case_id": "case_1",
    "customer_id": "cus_1",
    "interaction_id": "int_1",
    "subject": "Trasig termos",
    "severity": "high",
    "status": "open",
    "assignee": None,
    "opened_at": "2026-05-01T10:00:00.000Z",
    "first_response_due": "2026-05-01T14:00:00.000Z",
    "resolution_due": "2026-05-03T10:00:00.000Z",
    "escalation_level": 0,
    "resolution": None,
    "closed_reason": None,
}


def test_a_new_case_is_case_opened_with_its_deadlines():
    [event] = events_from_case_record("rec_1", "INSERT", None, CASE, AT)
    assert (event.id, event.type, event.subject) == ("rec_1", "case.opened", "cus_1")
    assert event.data == CASE_DATA | {"time": "2026-05-01T10:00:00.000Z"}


def test_a_case_whose_status_changes_is_case_status_changed_and_other_changes_are_none():
    new = CASE | {"status": "resolved", "resolution": "Ny termos skickad", "version": Decimal(2)}
    [event] = events_from_case_record("rec_1", "MODIFY", CASE, new, AT)
    assert (event.id, event.type, event.subject) == ("rec_1", "case.status_changed", "cus_1")
    assert event.data == CASE_DATA | {
        "status": "resolved",
        "resolution": "Ny termos skickad",
        "old_status": "open",
        "new_status": "resolved",
        "time": "2026-05-01T10:00:00.000Z",
    }
    noted = CASE | {"history": '[{"note": "ringde"}]', "history_count": Decimal(2), "version": Decimal(2)}
    assert events_from_case_record("rec_2", "MODIFY", CASE, noted, AT) == []
    assert events_from_case_record("rec_3", "REMOVE", CASE, None, AT) == []


def test_a_record_with_two_events_gives_each_its_own_id_and_the_escalation_keeps_the_records():
    new = CASE | {
        "status": "acknowledged",
        "escalation_level": Decimal(1),
        "escalated_for": ["first_response"],
    }
    moved, escalated = events_from_case_record("rec_1", "MODIFY", CASE, new, AT)
    assert (moved.type, moved.id) == ("case.status_changed", "rec_1#case.status_changed")
    assert (escalated.type, escalated.id) == ("case.escalated", "rec_1")


def _body_bytes(event) -> int:
    return len(webhook_body(event.type, event.occurred_at, event.data).encode())


def test_an_event_too_large_for_a_webhook_keeps_its_ids_and_says_it_is_truncated():
    lines = [
        {
            "sku": f"SKU-{n}",
            "name": "Kaffe från Guatemala, mörkrost",
            "quantity": Decimal(1),
            "unit_price": "1.00",
        }
        for n in range(300)
    ]
    big = PURCHASE | {"items": lines, "purchase_id": None}
    [event] = events_from_interaction_record("rec_1", "INSERT", None, big, AT)
    assert event.data == {"id": "int_1", "customer_id": "cus_1", "truncated": True}
    assert _body_bytes(event) <= MAX_WEBHOOK_BODY_BYTES
    [whole] = events_from_interaction_record("rec_2", "INSERT", None, big | {"items": lines[:20]}, AT)
    assert len(whole.data["items"]) == 20 and "truncated" not in whole.data
    assert event.to_message()["data"] == {"id": "int_1", "customer_id": "cus_1", "truncated": True}


@pytest.mark.parametrize(("letter", "bytes_each"), [("a", 1), ("ä", 2), ("中", 3)])
def test_the_webhook_limit_counts_utf8_bytes_of_the_whole_body(letter, bytes_each):
    def data(n: int) -> dict:
        return {"id": "cus_1", "name": letter * n}

    envelope = _body_bytes_of(data(0))
    fits = (MAX_WEBHOOK_BODY_BYTES - envelope) // bytes_each
    assert fitted("customer.created", AT, data(fits)) == data(fits)
    assert fitted("customer.created", AT, data(fits + 1)) == {"id": "cus_1", "truncated": True}


def _body_bytes_of(data: dict) -> int:
    return len(webhook_body("customer.created", AT, data).encode())


def test_a_webhook_body_is_type_timestamp_and_data():
    body = json.loads(webhook_body("customer.deleted", AT, {"id": "cus_1"}))
    assert body == {
        "type": "customer.deleted",
        "timestamp": "2026-05-01T10:00:00.000Z",
        "data": {"id": "cus_1"},
    }
