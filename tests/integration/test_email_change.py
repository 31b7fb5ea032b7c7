"""A customer's own change of email address: PATCH /me answers 202 whoever has the address (at
most so often per customer), the customers stream and the follow-up queue mail a signed link to
it (read back from moto's SES), GET of the link describes the change and its POST applies it,
once; any later setting of the address withdraws it."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import boto3
import pytest

from chalicelib.config import get_settings
from tests.functional.conftest import Api, assert_problem
from tests.integration.streams import customer_records
from tests.integration.test_cases import sent_mail

COOLDOWN = timedelta(seconds=60)
LINK = re.compile(r"(http://127\.0\.0\.1:8000)(/email-confirmations/[A-Za-z0-9_\-.]+)")


@pytest.fixture
def api(client, staff_token, frozen_clock) -> Api:
    return Api(client, staff_token)


@pytest.fixture
def asa(api) -> tuple[dict, Api]:
    c = api.create_customer(name="Åsa Öberg", preferred_name="Åsa", locale="sv", email="asa@example.com")
    return c, api.as_role("customer", c["id"])


def _link_in(mail) -> str:
    """The path of the one confirmation link in a sent message."""
    [(base, path)] = LINK.findall(mail.body)
    assert base == get_settings().public_base_url
    return path


def _follow(api: Api, path: str):
    """The person's click on the confirmation page: the POST of the link."""
    return api.post(path, auth=False)


def _look(api: Api, path: str):
    """What a mail scanner, a link preview or the confirmation page does: the GET of the link."""
    return api.get(path, auth=False)


@pytest.fixture
def requested(asa, pump) -> tuple[dict, Api, str]:
    """Åsa asked for ny@example.com; the link mailed there."""
    customer, me = asa
    assert me.patch("/me", {"email": "ny@example.com"}).status == 202
    pump.drain()
    [mail] = sent_mail()
    return customer, me, _link_in(mail)


def test_a_new_address_is_confirmed_by_the_link_mailed_to_it_once(api, asa, pump, frozen_clock):
    customer, me = asa
    frozen_clock.advance(timedelta(minutes=1))
    reply = me.patch(
        "/me", {"email": "ny@example.com", "preferred_name": "Åsa-Lena"}, headers={"If-Match": '"v1"'}
    )
    assert reply.status == 202, reply.json
    assert (reply.json["email"], reply.json["pending_email"]) == ("asa@example.com", "ny@example.com")
    assert reply.json["preferred_name"] == "Åsa-Lena" and reply.headers["etag"] == '"v2"'
    assert reply.json["pending_email_expires_at"] == "2026-11-27T12:01:00.000Z"
    pump.drain()
    frozen_clock.advance(timedelta(hours=23, minutes=59))

    [mail] = sent_mail()
    assert mail.destinations["ToAddresses"] == ["ny@example.com"]
    assert mail.subject == "Bekräfta din nya e-postadress"
    # The address is not confirmed: nothing the requester typed goes to it, not even a name.
    assert mail.body.startswith("Hej,\n") and "inom 24 timmar" in mail.body
    assert "Åsa" not in mail.body and "Öberg" not in mail.body
    link = _link_in(mail)
    assert "ny@example.com" not in link and me.get("/me").json["email"] == "asa@example.com"

    for _ in range(2):  # a mail scanner, then the person's browser: nothing changes
        looked = _look(api, link)
        assert (looked.status, looked.json) == (200, {"status": "pending", "email": "ny@example.com"})
        assert looked.headers["cache-control"] == "no-store"
    assert me.get("/me").json["email"] == "asa@example.com"

    confirmed = _follow(api, link)
    assert (confirmed.status, confirmed.json) == (200, {"status": "confirmed", "email": "ny@example.com"})
    assert confirmed.headers["cache-control"] == "no-store"
    assert me.get("/me").json["email"] == "ny@example.com"
    assert [c["id"] for c in api.get("/customers?email=ny@example.com").json["items"]] == [customer["id"]]
    api.create_customer(name="Someone Else", email="asa@example.com")  # the old address is free

    again = _follow(api, link)
    assert (again.status, again.json) == (200, {"status": "already_confirmed", "email": "ny@example.com"})
    assert _look(api, link).json == {"status": "already_confirmed", "email": "ny@example.com"}
    pump.drain()
    assert len(sent_mail()) == 1
    audit = api.get(f"/customers/{customer['id']}/audit").json["items"]
    assert [(e["route"], [c["field"] for c in e["changes"]]) for e in audit[:2]] == [
        ("POST /email-confirmations/{token}", ["email"]),
        ("PATCH /me", ["preferred_name", "pending_email"]),
    ]
    assert audit[0]["actor"] == {"subject": customer["id"], "role": "customer"}


def test_a_taken_address_gets_the_same_answer_and_only_its_link_says_409(api, asa, pump, frozen_clock):
    _, me = asa
    api.create_customer(name="Björn Lindqvist", email="bjorn@example.com")
    taken = me.patch("/me", {"email": "BJORN@example.com"})
    pump.drain()
    frozen_clock.advance(COOLDOWN)
    free = me.patch("/me", {"email": "fri@example.com"})
    pump.drain()
    assert taken.status == free.status == 202
    assert set(taken.json) == set(free.json) and taken.headers.keys() == free.headers.keys()
    assert taken.json["pending_email"] == "BJORN@example.com" and taken.json["email"] == "asa@example.com"

    frozen_clock.advance(COOLDOWN)
    me.patch("/me", {"email": "BJORN@example.com"})  # asked again: the last request's link counts
    pump.drain()
    assert [m.destinations["ToAddresses"] for m in sent_mail()] == [
        ["BJORN@example.com"],
        ["fri@example.com"],
        ["BJORN@example.com"],
    ]
    links = {mail.destinations["ToAddresses"][0]: _link_in(mail) for mail in sent_mail()}
    assert _look(api, links["BJORN@example.com"]).json["status"] == "pending"  # GET never says
    taken_again = _follow(api, links["BJORN@example.com"])
    problem = assert_problem(taken_again, 409, "email")
    assert "bjorn" not in problem["detail"].lower() and taken_again.headers["cache-control"] == "no-store"
    for visit in (_look, _follow):  # replaced by the later request
        assert assert_problem(visit(api, links["fri@example.com"]), 410)
    assert me.get("/me").json["email"] == "asa@example.com"


def test_an_address_taken_after_the_request_is_409_to_the_link_and_can_be_retried(api, requested):
    _, _, link = requested
    other = api.create_customer(name="Quick One", email="ny@example.com")
    assert_problem(_follow(api, link), 409, "email")
    assert api.patch(f"/customers/{other['id']}", {"email": None}).status == 200
    assert _follow(api, link).json["status"] == "confirmed"


def test_a_forged_edited_or_expired_link_is_refused_and_never_cached(api, requested, frozen_clock):
    customer, me, link = requested
    payload, signature = link.rsplit("/", 1)[1].split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for bad in (f"{payload}.{flipped}", payload, "not-a-token", "x" * 450):
        for visit in (_look, _follow):
            reply = visit(api, f"/email-confirmations/{bad}")
            assert_problem(reply, 400, "token")
            assert reply.headers["cache-control"] == "no-store"

    frozen_clock.advance(timedelta(hours=24))
    for visit in (_look, _follow):
        reply = visit(api, link)
        assert (
            "expired" in assert_problem(reply, 410)["detail"] and reply.headers["cache-control"] == "no-store"
        )
    assert me.get("/me").json["email"] == "asa@example.com"
    assert api.get(f"/customers/{customer['id']}").json["email"] == "asa@example.com"


def test_a_link_past_its_signed_expiry_is_gone_even_once_confirmed(api, requested, frozen_clock):
    _, _, link = requested
    assert _follow(api, link).json["status"] == "confirmed"
    frozen_clock.advance(timedelta(hours=24))  # the confirmed change is still stored
    for visit in (_look, _follow):
        assert "expired" in assert_problem(visit(api, link), 410)["detail"]


def test_a_confirmation_is_never_stored_under_an_idempotency_key(api, requested):
    # An anonymous response has no caller to scope it to, nor a customer to erase it with.
    _, _, link = requested
    key = {"Idempotency-Key": "confirm-1"}
    assert api.post(link, auth=False, headers=key).json["status"] == "confirmed"
    again = api.post(link, auth=False, headers=key)
    assert again.json["status"] == "already_confirmed" and "idempotent-replayed" not in again.headers


def test_the_link_of_a_deleted_customer_is_gone(api, requested):
    customer, _, link = requested
    assert api.delete(f"/customers/{customer['id']}").status == 204
    for visit in (_look, _follow):
        assert_problem(visit(api, link), 410)
    assert api.get("/customers?email=ny@example.com").json["items"] == []


@pytest.mark.parametrize(
    ("who", "body", "email"),
    [
        ("staff", {"email": "staff-set@example.com"}, "staff-set@example.com"),
        ("customer", {"email": None}, None),
        ("customer", {"email": "ASA@example.com"}, "ASA@example.com"),  # the own address: at once
        ("customer", {"email": "asa@example.com", "preferred_name": "Åsa-Lena"}, "asa@example.com"),
        ("customer", {"email": "asa@example.com"}, "asa@example.com"),  # changes nothing else
    ],
)
def test_setting_the_address_otherwise_withdraws_the_pending_change_and_its_link(
    api, requested, pump, who, body, email
):
    customer, me, link = requested
    writer, path = (api, f"/customers/{customer['id']}") if who == "staff" else (me, "/me")
    reply = writer.patch(path, body)
    assert (reply.status, reply.json["email"]) == (200, email) and "pending_email" not in reply.json

    for visit in (_look, _follow):
        problem = assert_problem(visit(api, link), 410)
        assert "changed otherwise" in problem["detail"]
    assert api.get(f"/customers/{customer['id']}").json["email"] == email
    assert api.get("/customers?email=ny@example.com").json["items"] == []
    withdrawal = {"field": "pending_email", "before": "n***@example.com", "after": None}
    audit = api.get(f"/customers/{customer['id']}/audit").json["items"]
    assert [e["actor"]["role"] for e in audit if withdrawal in e["changes"]] == [who]
    pump.drain()
    assert len(sent_mail()) == 1


def test_a_link_mailed_after_its_change_was_withdrawn_is_not_sent(api, asa, pump):
    customer, me = asa
    assert me.patch("/me", {"email": "ny@example.com"}).status == 202
    assert api.patch(f"/customers/{customer['id']}", {"email": "staff-set@example.com"}).status == 200
    pump.drain()
    assert sent_mail() == []


def test_requests_for_a_new_address_are_limited_per_customer_whatever_the_address(
    api, asa, pump, frozen_clock
):
    _, me = asa
    api.create_customer(name="Björn Lindqvist", email="bjorn@example.com")
    assert me.patch("/me", {"email": "ny@example.com"}).status == 202
    pump.drain()
    frozen_clock.advance(timedelta(seconds=20))
    refused = [
        me.patch("/me", {"email": address, "preferred_name": "Åsa-Lena"})
        for address in ("fri@example.com", "bjorn@example.com")  # a free one, a taken one
    ]
    for reply in refused:
        assert_problem(reply, 429)
        assert reply.headers["retry-after"] == "40"
    assert refused[0].json == refused[1].json  # the answer says nothing about the address
    after = me.get("/me").json
    assert (after["preferred_name"], after["version"]) == ("Åsa", 1)  # nothing applied

    for _ in range(4):  # five requests in all within 24 hours
        frozen_clock.advance(COOLDOWN)
        assert me.patch("/me", {"email": "ny@example.com"}).status == 202
        pump.drain()  # each request mails its link
    frozen_clock.advance(COOLDOWN)
    capped = me.patch("/me", {"email": "fri@example.com"})
    assert_problem(capped, 429)
    first_request_leaves_the_day = timedelta(hours=24) - (timedelta(seconds=20) + 5 * COOLDOWN)
    assert capped.headers["retry-after"] == str(int(first_request_leaves_the_day.total_seconds()))
    pump.drain()
    assert [m.destinations["ToAddresses"] for m in sent_mail()] == [["ny@example.com"]] * 5

    frozen_clock.advance(first_request_leaves_the_day)
    assert me.patch("/me", {"email": "fri@example.com"}).status == 202


def test_withdrawing_a_change_does_not_reset_the_limits(api, requested, frozen_clock):
    _, me, _ = requested
    assert me.patch("/me", {"email": "asa@example.com"}).status == 200  # withdrawn
    assert_problem(me.patch("/me", {"email": "ny@example.com"}), 429)


def test_clearing_the_address_or_sending_the_current_one_applies_at_once(api, asa, pump):
    _, me = asa
    assert me.patch("/me", {"email": "asa@example.com"}).status == 200  # nothing pending: no write
    same = me.patch("/me", {"email": "ASA@example.com"})
    assert (same.status, same.json["email"]) == (200, "ASA@example.com") and "pending_email" not in same.json
    cleared = me.patch("/me", {"email": None})
    assert (cleared.status, cleared.json["email"]) == (200, None)
    pump.drain()
    assert sent_mail() == []


def test_redelivered_records_send_one_mail_and_a_refused_send_is_sent_again(
    client, api, asa, pump, monkeypatch
):
    import botocore.client
    from botocore.exceptions import ClientError

    _, me = asa
    me.patch("/me", {"email": "ny@example.com"})
    records = customer_records()
    for _ in range(3):  # the stream redelivers: three follow-up messages for one request
        assert client.lambda_.invoke("on_customer_change", {"Records": records}).payload == {
            "batchItemFailures": []
        }
    original, calls = botocore.client.BaseClient._make_api_call, []

    def throttled_once(self, operation_name, api_params):
        if operation_name == "SendEmail":
            calls.extend(api_params["Destination"]["ToAddresses"])
            if len(calls) == 1:
                throttling = {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}
                raise ClientError(throttling, operation_name)
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", throttled_once)
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().follow_up_queue_name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "0"})
    try:
        pump.drain()
    finally:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "180"})
    assert calls == ["ny@example.com", "ny@example.com"]  # refused, then sent: never twice
    [mail] = sent_mail()
    assert _follow(api, _link_in(mail)).json["status"] == "confirmed"


@pytest.mark.dynamodb_local
def test_concurrent_visits_of_one_link_apply_it_exactly_once(api, asa, pump):
    from chalicelib import wiring

    customer, me = asa
    me.patch("/me", {"email": "ny@example.com"})
    pump.drain()
    token = _link_in(sent_mail()[0]).rsplit("/", 1)[1]
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def visit() -> None:
        barrier.wait()
        outcomes.append(wiring.email_change_service().confirm(token).status)

    threads = [threading.Thread(target=visit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already_confirmed"] * 5 + ["confirmed"]
    audit = api.get(f"/customers/{customer['id']}/audit").json["items"]
    assert [e["route"] for e in audit].count("POST /email-confirmations/{token}") == 1
    assert api.get(f"/customers/{customer['id']}").json["version"] == 2


@pytest.mark.dynamodb_local
def test_concurrent_requests_of_one_customer_pass_the_limit_once(api, asa, pump):
    from chalicelib import wiring
    from chalicelib.domain.audit import Actor
    from chalicelib.errors import TooManyRequests

    customer, _ = asa
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def ask(n: int) -> None:
        barrier.wait()
        try:
            wiring.email_change_service().change_my_details(
                customer["id"],
                {"email": f"ny{n}@example.com"},
                None,
                Actor(customer["id"], "customer", "PATCH /me"),
            )
            outcomes.append("asked")
        except TooManyRequests:
            outcomes.append("429")

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["429"] * 5 + ["asked"]
    change = wiring.repositories()[0].email_change(customer["id"], consistent=True)
    assert len(change.recent_requests) == 1
    pump.drain()
    assert len(sent_mail()) == 1


def test_a_request_that_lands_while_staff_set_the_address_is_withdrawn_too(api, asa, pump, monkeypatch):
    """Staff read that nothing is pending; the customer's request commits; then the staff write:
    it is conditional on what it read, so it reads again and withdraws that request."""
    from chalicelib import wiring
    from chalicelib.domain.audit import Actor
    from chalicelib.store.customers import CustomerRepository

    customer, _ = asa
    original, reads = CustomerRepository.email_change, []

    def then_the_customer_asks(self, customer_id, *, consistent=False):
        found = original(self, customer_id, consistent=consistent)
        reads.append(found)
        if len(reads) == 1:
            wiring.email_change_service().change_my_details(
                customer_id, {"email": "ny@example.com"}, None, Actor(customer_id, "customer", "PATCH /me")
            )
        return found

    monkeypatch.setattr(CustomerRepository, "email_change", then_the_customer_asks)
    assert api.patch(f"/customers/{customer['id']}", {"email": "staff-set@example.com"}).status == 200
    assert reads[0] is None and reads[-1].email == "ny@example.com"  # staff read again
    assert wiring.repositories()[0].email_change(customer["id"]).withdrawn_at is not None
    pump.drain()
    assert sent_mail() == []
    assert api.get(f"/customers/{customer['id']}").json["email"] == "staff-set@example.com"
