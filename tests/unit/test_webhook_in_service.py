"""Inbound webhooks' services against the in-memory fakes: no AWS. Deliveries are received as
the route receives them (signed, validated by the API's payload models) and processed as the
queue's consumer does."""

from __future__ import annotations

import json
from datetime import timedelta
from uuid import uuid4

import pytest

from chalicelib.api.webhook_schemas_in import validate_payload
from chalicelib.domain.audit import Actor
from chalicelib.domain.webhook_signatures import headers_for
from chalicelib.domain.webhook_sources import FAILED, PROCESSED, RECEIVED, order_guard
from chalicelib.errors import NotFound, PayloadTooLarge, SignatureUnauthorized, Unprocessable
from chalicelib.services.customers import CustomerService
from chalicelib.services.interactions import InteractionService
from chalicelib.services.webhook_inbound import InboundWebhookProcessor, Waiting, WebhookSourceService
from tests.unit.fakes import FakeQueue
from tests.unit.fakes.webhooks_in import FakeWebhookSources

STAFF = Actor("staff-1", "staff", "POST /customers")


@pytest.fixture
def webhooks() -> FakeWebhookSources:
    return FakeWebhookSources()


@pytest.fixture
def queue() -> FakeQueue:
    return FakeQueue()


@pytest.fixture
def customers(store, cursors, clock) -> CustomerService:
    return CustomerService(store.customers, cursors, clock)


@pytest.fixture
def sources(webhooks, queue, clock, cursors, customers) -> WebhookSourceService:
    return WebhookSourceService(webhooks, lambda: queue, clock, 300, cursors, customers=customers)


@pytest.fixture
def timeline(store, cursors, clock) -> InteractionService:
    return InteractionService(store.interactions, store.customers, cursors, clock)


@pytest.fixture
def processor(webhooks, customers, timeline, clock, queue) -> InboundWebhookProcessor:
    return InboundWebhookProcessor(webhooks, customers, timeline, clock, lambda: queue)


def order(order_id="A-1", email="asa.oberg@example.com", quantity=2, **data) -> dict:
    line = {"sku": "SKU-TEA", "name": "Grönt te", "quantity": quantity, "unit_price": "7.50"}
    body = {"order_id": order_id, "customer": {"email": email}, "currency": "EUR", "items": [line]}
    return {"type": "order.refunded" if "refund_of" in data else "order.created", "data": body | data}


def receive(sources, clock, source, payload, webhook_id=None):
    body = json.dumps(payload).encode()
    headers = headers_for(
        source.secret, webhook_id or f"msg_{uuid4().hex}", int(clock.now().timestamp()), body
    )
    return sources.receive(source.id, headers, body, validate_payload)


def deliver(sources, processor, clock, source, payload, webhook_id=None, **kw):
    delivery = receive(sources, clock, source, payload, webhook_id)
    return processor.process(source.id, delivery.id, **kw)


def entries(store, customer_id, type_="purchase"):
    return [i for (cid, _), i in store.interactions.items.items() if cid == customer_id and i.type == type_]


def test_an_order_is_a_purchase_of_a_new_customer_without_marketing_consent(sources, processor, clock, store):
    shop = sources.create("Shop", "orders")
    done = deliver(sources, processor, clock, shop, order(email="Asa.Oberg@Example.com"))

    assert done.status == PROCESSED and done.payload is None
    customer = store.customers.get(done.customer_id)
    assert (customer.name, customer.email, customer.marketing_consent) == (
        "Asa.Oberg",
        "Asa.Oberg@Example.com",
        False,
    )
    [purchase] = entries(store, customer.id)
    assert (purchase.id, purchase.order_id, purchase.amount, purchase.channel) == (
        done.interaction_id,
        "A-1",
        15,
        "web",
    )
    assert purchase.occurred_at == clock.now()  # when it was received: no occurred_at was sent
    [entry] = [e for e in store.audit if e.entity_id == customer.id]
    assert (entry.actor.subject, entry.actor.role) == (shop.id, "webhook")


def test_an_existing_customer_is_found_by_email_whatever_its_case(
    sources, processor, clock, store, customers
):
    known = customers.create({"name": "Åsa Öberg", "email": "asa.oberg@example.com"}, STAFF)
    shop = sources.create("Shop", "orders")
    done = deliver(sources, processor, clock, shop, order(email="ASA.OBERG@EXAMPLE.COM"))

    assert done.customer_id == known.id
    assert len(store.customers.profiles) == 1


def test_the_same_order_under_two_webhook_ids_is_one_purchase(sources, processor, clock, store):
    shop = sources.create("Shop", "orders")
    first = deliver(sources, processor, clock, shop, order())
    clock.advance(timedelta(minutes=3))
    second = deliver(sources, processor, clock, shop, order())

    assert first.id != second.id
    assert (second.status, second.customer_id, second.interaction_id) == (
        PROCESSED,
        first.customer_id,
        first.interaction_id,
    )
    assert len(entries(store, first.customer_id)) == 1


def test_a_worker_that_stopped_between_the_claim_and_the_purchase_is_healed_by_the_next_delivery(
    sources, processor, clock, store, webhooks, timeline, monkeypatch
):
    shop = sources.create("Shop", "orders")
    delivery = receive(sources, clock, shop, order())
    real = InteractionService.record

    def stopped(self, *args, **kwargs):
        raise TimeoutError("the worker stopped")

    monkeypatch.setattr(InteractionService, "record", stopped)
    with pytest.raises(TimeoutError):
        processor.process(shop.id, delivery.id)
    guard = webhooks.guard(shop.id, order_guard("A-1"))
    assert guard is not None and not entries(store, guard.customer_id)
    assert webhooks.get_delivery(shop.id, delivery.id).status == RECEIVED

    monkeypatch.setattr(InteractionService, "record", real)
    other = deliver(sources, processor, clock, shop, order())  # the same order, another webhook-id
    again = processor.process(shop.id, delivery.id)  # and the first one, redelivered by the queue

    [purchase] = entries(store, guard.customer_id)
    assert purchase.id == guard.interaction_id == other.interaction_id == again.interaction_id
    assert len(store.customers.profiles) == 1


def test_a_refund_is_a_return_of_its_orders_purchase(sources, processor, clock, store):
    shop = sources.create("Shop", "orders")
    bought = deliver(sources, processor, clock, shop, order(quantity=3))
    refunded = deliver(sources, processor, clock, shop, order("R-1", quantity=1, refund_of="A-1"))

    assert (refunded.status, refunded.customer_id) == (PROCESSED, bought.customer_id)
    [ret] = entries(store, bought.customer_id, "return")
    assert (ret.id, ret.purchase_id, ret.order_id) == (refunded.interaction_id, bought.interaction_id, "R-1")
    assert store.interactions.get(bought.customer_id, bought.interaction_id).returned == {"SKU-TEA": 1}


def test_a_refund_of_more_than_was_bought_fails_with_the_reason(sources, processor, clock, store):
    shop = sources.create("Shop", "orders")
    bought = deliver(sources, processor, clock, shop, order(quantity=1))
    refunded = deliver(sources, processor, clock, shop, order("R-1", quantity=2, refund_of="A-1"))

    assert (refunded.status, refunded.customer_id, refunded.interaction_id) == (
        FAILED,
        bought.customer_id,
        None,
    )
    assert "more than the purchase has left" in refunded.error and "data.items.0.quantity" in refunded.error
    assert not entries(store, bought.customer_id, "return")


def test_a_refund_before_its_order_waits_then_fails_on_the_last_receive(sources, processor, clock, webhooks):
    shop = sources.create("Shop", "orders")
    early = receive(sources, clock, shop, order("R-1", refund_of="A-404"))

    with pytest.raises(Waiting):
        processor.process(shop.id, early.id)
    assert webhooks.get_delivery(shop.id, early.id).status == RECEIVED
    failed = processor.process(shop.id, early.id, last_receive=True)

    assert failed.status == FAILED and "data.refund_of" in failed.error and "A-404" in failed.error


def test_a_refund_whose_order_came_meanwhile_is_recorded_on_a_later_receive(sources, processor, clock, store):
    shop = sources.create("Shop", "orders")
    early = receive(sources, clock, shop, order("R-1", quantity=1, refund_of="A-1"))
    with pytest.raises(Waiting):
        processor.process(shop.id, early.id)
    bought = deliver(sources, processor, clock, shop, order())

    refunded = processor.process(shop.id, early.id)
    assert refunded.status == PROCESSED and entries(store, bought.customer_id, "return")


def test_a_ticket_is_a_complaint_of_medium_severity_by_email_unless_it_says(sources, processor, clock, store):
    desk = sources.create("Desk", "tickets")
    ticket = {"ticket_id": "T-1", "customer": {"email": "maria@example.ph", "name": "Maria Santos"}}
    late = {"type": "ticket.created", "data": ticket | {"subject": "Late"}}
    plain = deliver(sources, processor, clock, desk, late)
    urgent = ticket | {"ticket_id": "T-2", "subject": "Broken", "severity": "critical", "channel": "chat"}
    other = deliver(sources, processor, clock, desk, {"type": "ticket.created", "data": urgent})

    complaints = {i.id: (i.severity, i.channel) for i in entries(store, plain.customer_id, "complaint")}
    assert complaints == {
        plain.interaction_id: ("medium", "email"),
        other.interaction_id: ("critical", "chat"),
    }
    assert store.customers.get(plain.customer_id).name == "Maria Santos"
    again = deliver(sources, processor, clock, desk, late)
    assert again.interaction_id == plain.interaction_id and len(complaints) == 2


def test_two_deliveries_creating_the_same_customer_end_with_one(sources, processor, clock, store, customers):
    shop = sources.create("Shop", "orders")
    delivery = receive(sources, clock, shop, order())
    # Another delivery creates the customer just after this one found none.
    store.customers.rivals.before_next_write(
        lambda: customers.create({"name": "Åsa", "email": "asa.oberg@example.com"}, STAFF)
    )
    done = processor.process(shop.id, delivery.id)

    assert done.status == PROCESSED
    [customer] = store.customers.profiles.values()
    assert done.customer_id == customer.id and entries(store, customer.id)


def test_an_interaction_for_an_unknown_customer_id_fails_naming_the_field(sources, processor, clock):
    tool = sources.create("Tool", "interactions")
    visit = {"type": "visit", "channel": "store", "customer_id": "cus_nobody"}
    done = deliver(sources, processor, clock, tool, {"type": "interaction.created", "data": visit})

    assert (done.status, done.customer_id, done.interaction_id) == (FAILED, None, None)
    assert done.error.startswith("data.customer_id names no customer")


def test_an_interactions_delivery_whose_outcome_was_lost_is_one_interaction_when_redelivered(
    sources, processor, clock, store, customers, webhooks, monkeypatch
):
    customer = customers.create({"name": "Ana Novak", "locale": "sl"}, STAFF)
    tool = sources.create("Tool", "interactions")
    note = {"type": "inquiry", "channel": "phone", "note": "Vprašanje", "customer_id": customer.id}
    delivery = receive(sources, clock, tool, {"type": "interaction.created", "data": note})
    real = FakeWebhookSources.finish

    def lost(self, outcome):
        raise ConnectionError("the outcome was never written")

    monkeypatch.setattr(FakeWebhookSources, "finish", lost)
    with pytest.raises(ConnectionError):
        processor.process(tool.id, delivery.id)
    monkeypatch.setattr(FakeWebhookSources, "finish", real)
    done = processor.process(tool.id, delivery.id)  # the queue delivers it again

    [inquiry] = entries(store, customer.id, "inquiry")
    assert (done.status, done.interaction_id, inquiry.note) == (PROCESSED, inquiry.id, "Vprašanje")
    assert webhooks.get_delivery(tool.id, delivery.id) == done


def test_a_resent_delivery_is_queued_again_while_received_and_answered_as_it_ended(
    sources, processor, clock, queue
):
    shop = sources.create("Shop", "orders")
    first = receive(sources, clock, shop, order(), "msg_1")
    again = receive(sources, clock, shop, order(), "msg_1")
    assert again == first and queue.messages == [{"source_id": shop.id, "webhook_id": "msg_1"}] * 2

    done = processor.process(shop.id, "msg_1")
    late = receive(sources, clock, shop, order(), "msg_1")
    assert late == done and late.status == PROCESSED and len(queue.messages) == 2


def test_a_delivery_is_checked_source_then_signature_then_size_then_payload(sources, clock, webhooks):
    shop = sources.create("Shop", "orders")
    huge = {**order(), "padding": "x" * 300_000}
    body = json.dumps(huge).encode()
    at = int(clock.now().timestamp())

    with pytest.raises(NotFound):
        sources.receive("src_unknown", headers_for(shop.secret, "msg_1", at, body), body, validate_payload)
    with pytest.raises(SignatureUnauthorized) as refused:
        sources.receive(shop.id, {"webhook-id": "msg_1"}, body, validate_payload)
    assert refused.value.errors[0].field == "webhook-timestamp"
    with pytest.raises(PayloadTooLarge):
        sources.receive(shop.id, headers_for(shop.secret, "msg_1", at, body), body, validate_payload)
    small = json.dumps({**order(), "padding": "x"}).encode()
    with pytest.raises(Unprocessable) as unfit:
        sources.receive(shop.id, headers_for(shop.secret, "msg_1", at, small), small, validate_payload)
    assert [e.field for e in unfit.value.errors] == ["padding"]
    assert webhooks.deliveries_ == {}


def test_a_rotated_secret_verifies_for_24_hours_beside_the_new_one(sources, clock):
    shop = sources.create("Shop", "orders")
    old = shop.secret
    rotated = sources.rotate_secret(shop.id, if_match=shop.version)
    assert rotated.secret != old
    assert rotated.previous_secret_expires_at(clock.now()) == clock.now() + timedelta(hours=24)

    def signed_with(secret: str) -> dict:
        body = json.dumps(order()).encode()
        headers = headers_for(secret, f"msg_{uuid4().hex}", int(clock.now().timestamp()), body)
        return sources.receive(shop.id, headers, body, validate_payload)

    assert signed_with(old).status == signed_with(rotated.secret).status == RECEIVED
    clock.advance(timedelta(hours=24))
    with pytest.raises(SignatureUnauthorized):
        signed_with(old)
    assert signed_with(rotated.secret).status == RECEIVED
    assert sources.get(shop.id).previous_secret_expires_at(clock.now()) is None


def test_deleting_a_source_queues_the_purge_of_what_it_left(sources, processor, clock, queue, webhooks):
    shop = sources.create("Shop", "orders")
    deliver(sources, processor, clock, shop, order())
    sources.delete(shop.id, if_match=None)

    assert queue.messages[-1] == {"source_id": shop.id, "purge": True}
    with pytest.raises(NotFound):
        receive(sources, clock, shop, order())
    assert processor.purge(shop.id) == 2  # the delivery and the order's guard
    assert webhooks.deliveries_ == {} and webhooks.guards == {}


def test_a_delivery_signed_with_a_secret_rotated_a_moment_ago_is_accepted(sources, clock, webhooks):
    shop = sources.create("Shop", "orders")
    rotated = sources.rotate_secret(shop.id, if_match=None)
    webhooks.lagging = True  # a replica still has the source as it was before the rotation

    body = json.dumps(order()).encode()
    headers = headers_for(rotated.secret, "msg_1", int(clock.now().timestamp()), body)
    assert sources.receive(shop.id, headers, body, validate_payload).status == RECEIVED


def test_a_delivery_waiting_when_its_customer_is_forgotten_fails_and_creates_no_one(
    sources, processor, clock, store, customers, webhooks
):
    known = customers.create({"name": "Åsa Öberg", "email": "asa.oberg@example.com"}, STAFF)
    shop = sources.create("Shop", "orders")
    waiting = receive(sources, clock, shop, order(email="ASA.OBERG@example.com"))
    assert webhooks.get_delivery(shop.id, waiting.id).named_customer_id == known.id

    webhooks.forget(known.id)  # the erasure, while the delivery is on the queue
    store.customers.profiles.clear()
    done = processor.process(shop.id, waiting.id)

    assert (done.status, done.customer_id, done.payload) == (FAILED, None, None)
    assert "erased" in done.error and store.customers.profiles == {}


def test_a_delivery_naming_no_existing_customer_is_stored_naming_none(sources, clock, webhooks):
    shop = sources.create("Shop", "orders")
    new = receive(sources, clock, shop, order(email="new.person@example.com"))
    assert webhooks.get_delivery(shop.id, new.id).named_customer_id is None


def test_a_purge_out_of_time_hands_the_rest_on_to_a_new_purge_message(
    sources, processor, clock, queue, webhooks
):
    from chalicelib.domain.clock import Deadline

    shop = sources.create("Shop", "orders")
    for n in range(3):
        deliver(sources, processor, clock, shop, order(f"A-{n}"))
    sources.delete(shop.id, if_match=None)
    webhooks.page = 2
    queue.messages.clear()

    assert processor.purge(shop.id, Deadline(0)) == 2
    assert queue.messages == [{"source_id": shop.id, "purge": True}] and webhooks.deleted(shop.id)
    assert processor.purge(shop.id, Deadline(60)) == 4
    assert webhooks.deliveries_ == {} and webhooks.guards == {} and not webhooks.deleted(shop.id)
    assert len(queue.messages) == 1
