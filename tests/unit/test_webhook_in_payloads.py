"""The payloads each kind of inbound webhook source may send (api/webhook_schemas_in.py), and
what the consumer reads from the kept JSON (domain/webhook_payloads.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from chalicelib.api.webhook_schemas_in import validate_payload
from chalicelib.domain.interactions import LineItem
from chalicelib.domain.webhook_payloads import Contact, Order, Posted, Ticket, read
from chalicelib.errors import Unprocessable

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LINE = {"sku": "SKU-TEA", "name": "Grönt te", "quantity": 2, "unit_price": "7.50"}
CUSTOMER = {"email": "Asa.Oberg@Example.com", "phone": "+46 70-123 45 67", "locale": "sv-se"}


def valid(kind: str, payload) -> dict:
    return validate_payload(kind, json.dumps(payload).encode(), NOW)


def refused(kind: str, payload) -> dict[str, str]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(Unprocessable) as error:
        validate_payload(kind, body, NOW)
    assert error.value.status == 422
    return {e.field: e.message for e in error.value.errors}


def order(**data) -> dict:
    body = {"order_id": "A-1", "customer": CUSTOMER, "currency": "EUR", "items": [LINE]}
    return {"type": "order.created", "data": body | data}


def test_an_order_is_kept_with_its_contact_details_normalised_as_the_api_normalises_them():
    kept = valid("orders", order(occurred_at="2026-11-26T10:15:00+01:00"))

    assert kept["data"]["customer"] == {
        "email": "Asa.Oberg@Example.com",
        "phone": "+46701234567",
        "locale": "sv-SE",
    }
    assert read(kept) == Order(
        order_id="A-1",
        contact=Contact("Asa.Oberg@Example.com", None, "+46701234567", "sv-SE"),
        currency="EUR",
        items=(LineItem("SKU-TEA", "Grönt te", 2, Decimal("7.50")),),
        occurred_at=datetime(2026, 11, 26, 9, 15, tzinfo=UTC),
    )


def test_a_refund_needs_refund_of_and_an_order_must_not_have_it():
    refund = {"type": "order.refunded", "data": order(order_id="R-1")["data"]}
    assert refused("orders", refund) == {"data.refund_of": "is required"}
    assert refused("orders", order(refund_of="A-0")) == {"data.refund_of": "is not a known field"}
    same = {"type": "order.refunded", "data": order(refund_of="A-1")["data"]}
    assert "another order" in refused("orders", same)["data.refund_of"]

    kept = valid("orders", {"type": "order.refunded", "data": order(order_id="R-1", refund_of="A-1")["data"]})
    assert (read(kept).order_id, read(kept).refund_of, read(kept).fields()["type"]) == (
        "R-1",
        "A-1",
        "return",
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"customer": {"email": "not-an-address"}}, "data.customer.email"),
        ({"customer": {"email": "a@example.com", "phone": "+10000000"}}, "data.customer.phone"),
        ({"customer": {"email": "a@example.com", "locale": "xx-YY"}}, "data.customer.locale"),
        ({"customer": {"name": "No Email"}}, "data.customer.email"),
        ({"currency": "EURO"}, "data.currency"),
        ({"items": [LINE | {"unit_price": "7.505"}]}, "data.items.0.unit_price"),
        ({"items": [LINE | {"sku": "tea leaves"}]}, "data.items.0.sku"),
        ({"items": [LINE | {"quantity": 0}]}, "data.items.0.quantity"),
        ({"items": []}, "data.items"),
        ({"order_id": "has spaces"}, "data.order_id"),
        ({"occurred_at": "2026-11-26T12:30:00Z"}, "data.occurred_at"),  # 30 minutes ahead
        ({"coupon": "X"}, "data.coupon"),
    ],
)
def test_each_bad_field_of_an_order_is_named_by_its_place_in_the_payload(data, field):
    assert field in refused("orders", order(**data))


def test_a_body_that_is_no_payload_of_the_kind_names_what_is_wrong():
    assert refused("orders", b"{not json").keys() == {"body"}
    assert refused("orders", [order()]) == {"body": "must be a JSON object"}
    assert set(refused("orders", {"test": 2432232314})) == {"type"}
    assert set(refused("tickets", order())) >= {"type"}
    assert set(refused("interactions", {"type": "interaction.created", "data": {"type": "hug"}})) == {
        "data.type"
    }


def test_a_ticket_is_a_complaint_with_defaults_for_what_it_does_not_say():
    ticket = {"ticket_id": "T-1", "customer": {"email": "maria@example.ph"}, "subject": "Late parcel"}
    assert read(valid("tickets", {"type": "ticket.created", "data": ticket})) == Ticket(
        "T-1", Contact("maria@example.ph"), "Late parcel", "medium", "email"
    )
    assert refused("tickets", {"type": "ticket.created", "data": ticket | {"severity": "urgent"}}).keys() == {
        "data.severity"
    }
    assert refused("tickets", {"type": "ticket.created", "data": ticket | {"channel": "pigeon"}}).keys() == {
        "data.channel"
    }


def test_an_interaction_is_the_body_of_post_interactions_with_whose_it_is():
    purchase = {
        "type": "purchase",
        "channel": "store",
        "currency": "JPY",
        "items": [LINE | {"unit_price": 500}],
    }
    kept = valid("interactions", {"type": "interaction.created", "data": purchase | {"customer_id": "cus_1"}})
    work = read(kept)
    assert isinstance(work, Posted) and (work.customer_id, work.contact) == ("cus_1", None)
    assert work.fields["items"] == [{"sku": "SKU-TEA", "name": "Grönt te", "quantity": 2, "unit_price": 500}]

    by_email = valid(
        "interactions", {"type": "interaction.created", "data": purchase | {"customer": CUSTOMER}}
    )
    assert read(by_email).contact.email == "Asa.Oberg@Example.com"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"type": "visit", "channel": "store"}, "data.customer"),
        (
            {"type": "visit", "channel": "store", "customer_id": "c", "customer": {"email": "a@b.se"}},
            "data.customer",
        ),
        ({"type": "visit", "channel": "store", "customer_id": "c", "severity": "low"}, "data.severity"),
        ({"type": "complaint", "channel": "email", "customer_id": "c", "subject": "x"}, "data.severity"),
        (
            {
                "type": "purchase",
                "channel": "web",
                "customer_id": "c",
                "currency": "EUR",
                "items": [LINE | {"unit_price": "1.001"}],
            },
            "data.items.0.unit_price",
        ),
        (
            {"type": "return", "channel": "web", "customer_id": "c", "currency": "EUR", "items": [LINE]},
            "data.purchase_id",
        ),
        ({"type": "message", "channel": "email", "customer_id": "c", "subject": "Hi"}, "data.text"),
    ],
)
def test_an_interaction_is_validated_as_post_interactions_validates_it(data, field):
    assert field in refused("interactions", {"type": "interaction.created", "data": data})
