"""A customer's own change of email address: PATCH /me answers 202 whoever has the address, the
customers stream and the follow-up queue mail a signed link to it (read back from moto's SES),
and following the link applies the change, once."""

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
    return api.get(path, auth=False)


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
    assert "Hej Åsa-Lena" in mail.body and "inom 24 timmar" in mail.body
    link = _link_in(mail)
    assert "ny@example.com" not in link and me.get("/me").json["email"] == "asa@example.com"

    confirmed = _follow(api, link)
    assert (confirmed.status, confirmed.json) == (200, {"status": "confirmed", "email": "ny@example.com"})
    assert confirmed.headers["cache-control"] == "no-store"
    assert me.get("/me").json["email"] == "ny@example.com"
    assert [c["id"] for c in api.get("/customers?email=ny@example.com").json["items"]] == [customer["id"]]
    api.create_customer(name="Someone Else", email="asa@example.com")  # the old address is free

    again = _follow(api, link)
    assert (again.status, again.json) == (200, {"status": "already_confirmed", "email": "ny@example.com"})
    pump.drain()
    assert len(sent_mail()) == 1
    audit = api.get(f"/customers/{customer['id']}/audit").json["items"]
    assert [(e["route"], [c["field"] for c in e["changes"]]) for e in audit[:2]] == [
        ("GET /email-confirmations/{token}", ["email"]),
        ("PATCH /me", ["preferred_name", "pending_email"]),
    ]
    assert audit[0]["actor"] == {"subject": customer["id"], "role": "customer"}


def test_a_taken_address_gets_the_same_answer_and_only_its_link_says_409(api, asa, pump):
    _, me = asa
    api.create_customer(name="Björn Lindqvist", email="bjorn@example.com")
    taken = me.patch("/me", {"email": "BJORN@example.com"})
    pump.drain()
    free = me.patch("/me", {"email": "fri@example.com"})
    pump.drain()
    assert taken.status == free.status == 202
    assert set(taken.json) == set(free.json) and taken.headers.keys() == free.headers.keys()
    assert taken.json["pending_email"] == "BJORN@example.com" and taken.json["email"] == "asa@example.com"

    me.patch("/me", {"email": "BJORN@example.com"})  # asked again: the last request's link counts
    pump.drain()
    assert [m.destinations["ToAddresses"] for m in sent_mail()] == [
        ["BJORN@example.com"],
        ["fri@example.com"],
        ["BJORN@example.com"],
    ]
    links = {mail.destinations["ToAddresses"][0]: _link_in(mail) for mail in sent_mail()}
    problem = assert_problem(_follow(api, links["BJORN@example.com"]), 409, "email")
    assert "bjorn" not in problem["detail"].lower()
    assert_problem(_follow(api, links["fri@example.com"]), 410)  # replaced by the later request
    assert me.get("/me").json["email"] == "asa@example.com"


def test_an_address_taken_after_the_request_is_409_to_the_link_and_can_be_retried(api, asa, pump):
    _, me = asa
    assert me.patch("/me", {"email": "ny@example.com"}).status == 202
    pump.drain()
    [mail] = sent_mail()
    other = api.create_customer(name="Quick One", email="ny@example.com")
    assert_problem(_follow(api, _link_in(mail)), 409, "email")
    assert api.patch(f"/customers/{other['id']}", {"email": None}).status == 200
    assert _follow(api, _link_in(mail)).json["status"] == "confirmed"


def test_a_forged_edited_or_expired_link_is_refused(api, asa, pump, frozen_clock):
    customer, me = asa
    me.patch("/me", {"email": "ny@example.com"})
    pump.drain()
    link = _link_in(sent_mail()[0])
    payload, signature = link.rsplit("/", 1)[1].split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for bad in (f"{payload}.{flipped}", payload, "not-a-token", "x" * 450):
        assert_problem(_follow(api, f"/email-confirmations/{bad}"), 400, "token")

    frozen_clock.advance(timedelta(hours=24))
    assert "expired" in assert_problem(_follow(api, link), 410)["detail"]
    assert me.get("/me").json["email"] == "asa@example.com"
    assert api.get(f"/customers/{customer['id']}").json["email"] == "asa@example.com"


def test_the_link_of_a_deleted_customer_is_gone(api, asa, pump):
    customer, me = asa
    me.patch("/me", {"email": "ny@example.com"})
    pump.drain()
    link = _link_in(sent_mail()[0])
    assert api.delete(f"/customers/{customer['id']}").status == 204
    assert_problem(_follow(api, link), 410)
    assert api.get("/customers?email=ny@example.com").json["items"] == []


def test_clearing_the_address_or_sending_the_current_one_applies_at_once(api, asa, pump):
    _, me = asa
    same = me.patch("/me", {"email": "ASA@example.com"})
    assert (same.status, same.json["email"]) == (200, "ASA@example.com") and "pending_email" not in same.json
    cleared = me.patch("/me", {"email": None})
    assert (cleared.status, cleared.json["email"]) == (200, None)
    pump.drain()
    assert sent_mail() == []


def test_redelivered_records_send_one_mail_and_a_refused_send_is_sent_again(
    client, api, asa, pump, monkeypatch
):
    from botocore.exceptions import ClientError

    from chalicelib.store.mail import SesMailer

    _, me = asa
    me.patch("/me", {"email": "ny@example.com"})
    records = customer_records()
    for _ in range(3):  # the stream redelivers: three follow-up messages for one request
        assert client.lambda_.invoke("on_customer_change", {"Records": records}).payload == {
            "batchItemFailures": []
        }
    original, calls = SesMailer.send, []

    def throttled_once(self, to, subject, text):
        calls.append(to)
        if len(calls) == 1:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "SendEmail")
        return original(self, to, subject, text)

    monkeypatch.setattr(SesMailer, "send", throttled_once)
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
    from chalicelib.api import deps

    customer, me = asa
    me.patch("/me", {"email": "ny@example.com"})
    pump.drain()
    token = _link_in(sent_mail()[0]).rsplit("/", 1)[1]
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def visit() -> None:
        barrier.wait()
        outcomes.append(deps.email_change_service().confirm(token).status)

    threads = [threading.Thread(target=visit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already_confirmed"] * 5 + ["confirmed"]
    audit = api.get(f"/customers/{customer['id']}/audit").json["items"]
    assert [e["route"] for e in audit].count("GET /email-confirmations/{token}") == 1
    assert api.get(f"/customers/{customer['id']}").json["version"] == 2
