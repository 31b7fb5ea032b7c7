"""Inbound webhooks through HTTP: sources (staff), POST /webhooks/{source_id} signed as Standard
Webhooks v1 (the published vector, every malformed header, replays, rotation, the tolerance),
and deliveries made interactions by the queue's consumer — drained by the event pump, or
invoked with real-shaped SQS records where a test counts receives."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from chalicelib import wiring
from chalicelib.config import get_settings
from chalicelib.domain.clock import FrozenClock
from chalicelib.domain.webhook_secrets import Secret
from chalicelib.domain.webhook_signatures import headers_for
from chalicelib.local.lambda_events import LambdaContext, lambda_sqs_record
from tests.conftest import aws_client
from tests.functional.conftest import Api, Reply, assert_problem

INFRA = json.loads((Path(__file__).resolve().parents[2] / "infra" / "resources.json").read_text())
# The specification's published test vector (standardwebhooks.com).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

LINE = {"sku": "SKU-TEA", "name": "Grönt te", "quantity": 3, "unit_price": "7.50"}


def create_source(api: Api, kind: str = "orders", name: str = "Webshop") -> dict:
    reply = api.post("/webhook-sources", {"name": name, "kind": kind})
    assert reply.status == 201, reply.json
    return reply.json


def now_s() -> int:
    return int(wiring.clock.now().timestamp())


def deliver(
    api: Api,
    source: dict,
    payload: dict | bytes,
    webhook_id: str | None = None,
    *,
    secret: str | None = None,
    at: int | None = None,
) -> Reply:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    headers = headers_for(secret or source["secret"], webhook_id or f"msg_{uuid4().hex}", at or now_s(), raw)
    return post(api, source["id"], raw, headers)


def post(api: Api, source_id: str, raw: bytes, headers: dict) -> Reply:
    return api.request("POST", f"/webhooks/{source_id}", raw=raw, headers=headers, auth=False)


def order(order_id: str = "A-1", email: str = "asa.oberg@example.com", **data) -> dict:
    body = {"order_id": order_id, "customer": {"email": email}, "currency": "EUR", "items": [LINE]}
    return {"type": "order.refunded" if "refund_of" in data else "order.created", "data": body | data}


def deliveries(api: Api, source: dict, query: str = "") -> list[dict]:
    reply = api.get(f"/webhook-sources/{source['id']}/deliveries{query}")
    assert reply.status == 200, reply.json
    return reply.json["items"]


def customer_by_email(api: Api, email: str) -> dict:
    [customer] = api.get(f"/customers?email={email}").json["items"]
    return customer


def timeline(api: Api, customer_id: str, type_: str | None = None) -> list[dict]:
    return api.walk(f"/customers/{customer_id}/interactions" + (f"?type={type_}" if type_ else ""), 100)


def webhook_items() -> list[dict]:
    from boto3.dynamodb.types import TypeDeserializer

    plain = TypeDeserializer()
    items = aws_client("dynamodb").scan(TableName=get_settings().webhooks_table)["Items"]
    return [{k: plain.deserialize(v) for k, v in item.items()} for item in items]


# -- sources --------------------------------------------------------------------------------------


def test_a_source_is_registered_with_a_secret_that_is_shown_once(api):
    reply = api.post("/webhook-sources", {"name": "Webshop", "kind": "orders"})

    assert reply.status == 201
    source = reply.json
    assert source["id"].startswith("src_") and reply.headers["location"] == f"/webhook-sources/{source['id']}"
    assert (source["name"], source["kind"], source["webhook_path"]) == (
        "Webshop",
        "orders",
        f"/webhooks/{source['id']}",
    )
    assert source["secret"].startswith("whsec_") and len(base64.b64decode(source["secret"][6:])) == 32
    assert source["previous_secret_expires_at"] is None and reply.headers["etag"] == '"v1"'
    read = api.get(f"/webhook-sources/{source['id']}")
    assert read.status == 200 and "secret" not in read.json and source["secret"] not in read.body.decode()


def test_sources_are_listed_oldest_first_page_by_page_without_secrets(api):
    made = [
        create_source(api, kind, name)
        for kind, name in [("orders", "Shop"), ("tickets", "Desk"), ("interactions", "Tool")]
    ]

    listed = api.walk("/webhook-sources", 2)
    assert [s["id"] for s in listed] == [s["id"] for s in made]
    assert not any("secret" in s for s in listed)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Shop\u0007", "kind": "orders"}, "name"),
        ({"name": "Sh\u0085op", "kind": "orders"}, "name"),
        ({"name": "x" * 101, "kind": "orders"}, "name"),
        ({"name": " ", "kind": "orders"}, "name"),
        ({"name": "Shop", "kind": "newsletters"}, "kind"),
        ({"name": "Shop"}, "kind"),
    ],
)
def test_a_bad_source_is_400_naming_the_field(api, body, field):
    assert_problem(api.post("/webhook-sources", body), 400, field)


def test_a_source_created_twice_with_one_idempotency_key_is_one_source_with_one_secret(api):
    key = {"Idempotency-Key": str(uuid4())}
    first = api.post("/webhook-sources", {"name": "Shop", "kind": "orders"}, headers=key)
    again = api.post("/webhook-sources", {"name": "Shop", "kind": "orders"}, headers=key)

    assert (first.status, again.status, again.headers.get("idempotent-replayed")) == (201, 201, "true")
    assert again.json == first.json  # the stored answer is the caller's alone, secret included
    assert len(api.walk("/webhook-sources", 10)) == 1


def test_a_rotated_secret_keeps_the_old_one_valid_for_24_hours_then_only_the_new_one(api, frozen_clock):
    source = create_source(api)
    old = source["secret"]
    assert_problem(
        api.post(f"/webhook-sources/{source['id']}/rotate-secret", headers={"If-Match": '"v9"'}), 412
    )
    reply = api.post(f"/webhook-sources/{source['id']}/rotate-secret")
    assert reply.status == 200 and reply.headers["etag"] == '"v2"'
    new = reply.json["secret"]
    assert new != old
    expires = (
        (frozen_clock.now() + timedelta(hours=24)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
    assert reply.json["previous_secret_expires_at"] == expires
    assert api.get(f"/webhook-sources/{source['id']}").json["previous_secret_expires_at"] == expires

    assert deliver(api, source, order("A-1"), secret=old).status == 202
    assert deliver(api, source, order("A-2"), secret=new).status == 202
    frozen_clock.advance(timedelta(hours=24))
    assert_problem(deliver(api, source, order("A-3"), secret=old), 401, "webhook-signature")
    assert deliver(api, source, order("A-4"), secret=new).status == 202
    assert api.get(f"/webhook-sources/{source['id']}").json["previous_secret_expires_at"] is None


def test_a_deleted_source_refuses_its_deliveries_and_what_it_left_is_deleted(api, pump):
    source = create_source(api)
    assert deliver(api, source, order()).status == 202
    pump.drain()
    assert any(i["pk"] == f"SOURCE#{source['id']}" for i in webhook_items())

    assert_problem(api.delete(f"/webhook-sources/{source['id']}", headers={"If-Match": '"v7"'}), 412)
    assert api.delete(f"/webhook-sources/{source['id']}").status == 204
    assert_problem(api.get(f"/webhook-sources/{source['id']}"), 404)
    assert_problem(api.get(f"/webhook-sources/{source['id']}/deliveries"), 404)
    assert_problem(deliver(api, source, order("A-2")), 404)
    pump.drain()
    assert webhook_items() == []
    assert_problem(api.delete(f"/webhook-sources/{source['id']}"), 404)


# -- signatures -----------------------------------------------------------------------------------


def test_the_published_vector_is_accepted_by_the_route_and_one_changed_byte_is_not(api, monkeypatch):
    source = create_source(api)
    repository = wiring.webhook_source_repository()
    stored = repository.get_source(source["id"], consistent=True)
    vector_time = datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC)
    repository.update_secrets(stored, replace(stored, secrets=(Secret(VECTOR_SECRET, vector_time),)))
    monkeypatch.setattr(wiring, "clock", FrozenClock(vector_time))
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }

    # Authentic: the body is then judged, and it is no order.
    assert_problem(post(api, source["id"], VECTOR_BODY, headers), 422, "type")
    tampered = post(api, source["id"], VECTOR_BODY.replace(b"4", b"5", 1), headers)
    assert_problem(tampered, 401, "webhook-signature")


def test_a_delivery_signed_by_the_standardwebhooks_package_is_accepted(api, pump, frozen_clock):
    from standardwebhooks import Webhook

    source = create_source(api)
    body = json.dumps(order())
    signature = Webhook(source["secret"]).sign("msg_from_the_library", frozen_clock.now(), body)
    headers = {
        "webhook-id": "msg_from_the_library",
        "webhook-timestamp": str(now_s()),
        "webhook-signature": signature,
    }

    reply = post(api, source["id"], body.encode(), headers)
    assert reply.status == 202, reply.json
    assert (reply.json["id"], reply.json["status"], reply.json["type"]) == (
        "msg_from_the_library",
        "received",
        "order.created",
    )
    pump.drain()
    assert deliveries(api, source)[0]["status"] == "processed"


def _malformed(source: dict) -> dict[str, tuple[dict, str]]:
    raw = json.dumps(order()).encode()
    good = headers_for(source["secret"], "msg_1", now_s(), raw)
    signature = good["webhook-signature"].removeprefix("v1,")
    return {
        "no webhook-id": ({k: v for k, v in good.items() if k != "webhook-id"}, "webhook-id"),
        "no webhook-timestamp": (
            {k: v for k, v in good.items() if k != "webhook-timestamp"},
            "webhook-timestamp",
        ),
        "no webhook-signature": (
            {k: v for k, v in good.items() if k != "webhook-signature"},
            "webhook-signature",
        ),
        "a blank webhook-signature": (good | {"webhook-signature": "  "}, "webhook-signature"),
        "no comma": (good | {"webhook-signature": "v1" + signature}, "webhook-signature"),
        "bad base64": (good | {"webhook-signature": "v1,!!not-base64!!"}, "webhook-signature"),
        "an unknown version only": (good | {"webhook-signature": f"v2,{signature}"}, "webhook-signature"),
        "a non-integer timestamp": (good | {"webhook-timestamp": f"{now_s()}.5"}, "webhook-timestamp"),
        "a timestamp in words": (good | {"webhook-timestamp": "yesterday"}, "webhook-timestamp"),
        "a timestamp too old": (
            headers_for(source["secret"], "msg_1", now_s() - 301, raw),
            "webhook-timestamp",
        ),
        "a timestamp too new": (
            headers_for(source["secret"], "msg_1", now_s() + 301, raw),
            "webhook-timestamp",
        ),
        "another secret": (
            headers_for("whsec_" + base64.b64encode(b"k" * 32).decode(), "msg_1", now_s(), raw),
            "webhook-signature",
        ),
        "a space in webhook-id": (headers_for(source["secret"], "msg 1", now_s(), raw), "webhook-id"),
    }


MALFORMED = [
    "no webhook-id",
    "no webhook-timestamp",
    "no webhook-signature",
    "a blank webhook-signature",
    "no comma",
    "bad base64",
    "an unknown version only",
    "a non-integer timestamp",
    "a timestamp in words",
    "a timestamp too old",
    "a timestamp too new",
    "another secret",
    "a space in webhook-id",
]


@pytest.mark.parametrize("case", MALFORMED)
def test_every_malformed_or_wrong_signature_header_is_401_naming_the_header(api, frozen_clock, case):
    source = create_source(api)
    headers, header = _malformed(source)[case]

    reply = post(api, source["id"], json.dumps(order()).encode(), headers)
    problem = assert_problem(reply, 401, header)
    assert problem["type"] == "urn:problem-type:crm:invalid-signature"
    assert reply.headers["www-authenticate"].startswith("Webhook-Signature")
    assert deliveries(api, source) == []


def test_a_timestamp_at_the_edge_of_the_tolerance_is_accepted(api, frozen_clock):
    source = create_source(api)
    assert deliver(api, source, order("A-1"), at=now_s() - 300).status == 202
    assert deliver(api, source, order("A-2"), at=now_s() + 300).status == 202


def test_a_signature_listed_beside_others_of_old_secrets_and_versions_is_accepted(api, frozen_clock):
    source = create_source(api)
    raw = json.dumps(order()).encode()
    good = headers_for(source["secret"], "msg_1", now_s(), raw)
    other = headers_for("whsec_" + base64.b64encode(b"o" * 32).decode(), "msg_1", now_s(), raw)
    headers = good | {
        "webhook-signature": f"v2,abc= {other['webhook-signature']} {good['webhook-signature']}"
    }
    assert post(api, source["id"], raw, headers).status == 202


# -- what is refused before anything is stored ------------------------------------------------------


def test_an_unknown_source_is_404_signed_or_not(api):
    raw = json.dumps(order()).encode()
    assert_problem(post(api, "src_unknown", raw, {}), 404)
    assert_problem(post(api, "src_unknown", raw, headers_for(VECTOR_SECRET, "msg_1", now_s(), raw)), 404)


def test_a_body_over_256_kb_is_413_once_its_signature_holds(api, frozen_clock):
    source = create_source(api)
    huge = json.dumps(order(note="x" * 270_000)).encode()
    assert_problem(post(api, source["id"], huge, {}), 401, "webhook-id")
    assert_problem(deliver(api, source, huge), 413)
    assert deliveries(api, source) == []


@pytest.mark.parametrize(
    ("kind", "payload", "fields"),
    [
        ("orders", b"{not json", {"body"}),
        ("orders", b"[]", {"body"}),
        ("orders", order(customer={"email": "no-at-sign"}), {"data.customer.email"}),
        (
            "orders",
            order(items=[LINE | {"unit_price": "7.505", "sku": "no spaces"}]),
            {"data.items.0.unit_price", "data.items.0.sku"},
        ),
        (
            "orders",
            {"type": "ticket.created", "data": {}},
            {"type", "data.order_id", "data.customer", "data.currency", "data.items"},
        ),
        (
            "orders",
            {
                "type": "order.create",
                "data": order(customer={"email": "bad"}, items=[LINE | {"quantity": 0}])["data"],
            },
            {"type", "data.customer.email", "data.items.0.quantity"},
        ),
        (
            "tickets",
            {"type": "ticket.created", "data": {"ticket_id": "T-1", "customer": {"email": "a@example.com"}}},
            {"data.subject"},
        ),
        (
            "interactions",
            {"type": "interaction.created", "data": {"type": "visit", "channel": "store"}},
            {"data.customer"},
        ),
    ],
)
def test_a_body_that_does_not_fit_the_sources_kind_is_422_naming_the_fields_and_stored_nowhere(
    api, frozen_clock, kind, payload, fields
):
    source = create_source(api, kind)
    problem = assert_problem(deliver(api, source, payload), 422, *fields)
    assert {e["field"] for e in problem["errors"]} == fields
    assert deliveries(api, source) == []
    assert [i for i in webhook_items() if i["pk"] != "SOURCES"] == [] and _queued() == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_signed_body_not_sent_as_json_is_415_and_stored_nowhere(api, frozen_clock, content_type):
    source = create_source(api)
    raw = json.dumps(order()).encode()
    headers = headers_for(source["secret"], "msg_typed", now_s(), raw) | {"Content-Type": content_type}
    assert_problem(post(api, source["id"], raw, headers), 415)
    assert [i for i in webhook_items() if i["pk"] != "SOURCES"] == [] and _queued() == []
    headers["Content-Type"] = "application/json; charset=utf-8"
    assert post(api, source["id"], raw, headers).status == 202


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (json.dumps(order()).encode("utf-16"), "is not UTF-8"),
        (b"[" * 33 + b"]" * 33, "nests JSON deeper than 32 levels"),
        (b"[" * 5000 + b"]" * 5000, "nests JSON deeper than 32 levels"),
    ],
)
def test_a_body_that_is_not_utf8_json_of_a_sane_depth_is_422_naming_the_body(api, frozen_clock, raw, says):
    problem = assert_problem(deliver(api, create_source(api), raw), 422, "body")
    assert says in problem["errors"][0]["message"]


# -- deliveries become interactions -----------------------------------------------------------------


def test_an_order_its_refund_and_a_ticket_reach_the_timeline_and_the_case(api, pump, frozen_clock):
    shop = create_source(api, "orders", "Webshop")
    desk = create_source(api, "tickets", "Helpdesk")
    customer = {
        "email": "Maria.Santos@Example.ph",
        "name": "Maria Santos",
        "phone": "+63 917 123 4567",
        "locale": "tl",
    }
    bought = deliver(api, shop, order("A-1", customer=customer, occurred_at="2026-11-26T10:00:00+08:00"))
    assert bought.status == 202 and bought.json["status"] == "received"
    pump.drain()

    profile = customer_by_email(api, "maria.santos@example.ph")
    assert (profile["name"], profile["phone"], profile["locale"], profile["marketing_consent"]) == (
        "Maria Santos",
        "+639171234567",
        "tl",
        False,
    )
    [purchase] = timeline(api, profile["id"], "purchase")
    assert (purchase["order_id"], purchase["amount"], purchase["currency"]) == ("A-1", "22.50", "EUR")
    assert purchase["occurred_at"] == "2026-11-26T02:00:00.000Z"

    refund = order("R-1", customer=customer, items=[LINE | {"quantity": 1}], refund_of="A-1")
    assert deliver(api, shop, refund).status == 202
    ticket = {
        "ticket_id": "T-77",
        "customer": {"email": "maria.santos@example.ph"},
        "subject": "Kulang ang tsaa",
        "severity": "high",
    }
    assert deliver(api, desk, {"type": "ticket.created", "data": ticket}).status == 202
    pump.drain()

    [ret] = timeline(api, profile["id"], "return")
    assert (ret["purchase_id"], ret["order_id"], ret["amount"]) == (purchase["id"], "R-1", "7.50")
    [complaint] = timeline(api, profile["id"], "complaint")
    assert (complaint["subject"], complaint["severity"], complaint["channel"]) == (
        "Kulang ang tsaa",
        "high",
        "email",
    )
    [case] = api.get(f"/customers/{profile['id']}/cases").json["items"]
    assert (case["interaction_id"], case["subject"], case["status"], case["contact_status"]) == (
        complaint["id"],
        "Kulang ang tsaa",
        "acknowledged",
        "acknowledged_by_email",
    )
    [ack] = timeline(api, profile["id"], "message")
    assert ack["case_id"] == case["id"]

    processed = {d["type"]: d for d in deliveries(api, shop)}
    created = processed["order.created"]
    assert created["received_at"] <= created["processed_at"]
    assert {k: v for k, v in created.items() if not k.endswith("_at")} == {
        "id": bought.json["id"],
        "status": "processed",
        "type": "order.created",
        "customer_id": profile["id"],
        "interaction_id": purchase["id"],
    }
    assert processed["order.refunded"]["interaction_id"] == ret["id"]
    [opened] = deliveries(api, desk)
    assert (opened["status"], opened["interaction_id"]) == ("processed", complaint["id"])
    # Once final, a delivery keeps no payload (no personal data beyond need).
    assert not any("payload" in item for item in webhook_items())


def test_a_replayed_delivery_is_202_and_nothing_is_done_twice(api, pump, frozen_clock):
    source = create_source(api)
    first = deliver(api, source, order(), "msg_replayed")
    again = deliver(api, source, order(), "msg_replayed")
    assert (first.status, again.status) == (202, 202) and again.json == first.json
    pump.drain()

    late = deliver(api, source, order(), "msg_replayed")
    assert late.status == 202 and late.json["status"] == "processed"
    customer = customer_by_email(api, "asa.oberg@example.com")
    assert len(timeline(api, customer["id"])) == 1
    assert [d["id"] for d in deliveries(api, source)] == ["msg_replayed"]


def test_the_same_order_under_two_webhook_ids_is_one_purchase(api, pump, frozen_clock):
    source = create_source(api)
    assert deliver(api, source, order(), "msg_first").status == 202
    frozen_clock.advance(timedelta(minutes=10))
    assert deliver(api, source, order(), "msg_second").status == 202
    pump.drain()

    customer = customer_by_email(api, "asa.oberg@example.com")
    [purchase] = timeline(api, customer["id"])
    listed = deliveries(api, source)
    assert [d["id"] for d in listed] == ["msg_second", "msg_first"]  # newest first
    assert {(d["status"], d["interaction_id"]) for d in listed} == {("processed", purchase["id"])}


def test_deliveries_are_listed_newest_first_by_status_page_by_page(api, pump, frozen_clock):
    source = create_source(api)
    for n in range(3):
        assert deliver(api, source, order(f"A-{n}", items=[LINE | {"quantity": 1}]), f"msg_{n}").status == 202
        frozen_clock.advance(timedelta(seconds=1))
    too_much = order("R-1", items=[LINE | {"quantity": 2}], refund_of="A-0")
    pump.drain()
    assert deliver(api, source, too_much, "msg_refund").status == 202
    pump.drain()

    assert [d["id"] for d in api.walk(f"/webhook-sources/{source['id']}/deliveries", 2)] == [
        "msg_refund",
        "msg_2",
        "msg_1",
        "msg_0",
    ]
    [failed] = deliveries(api, source, "?status=failed")
    assert failed["id"] == "msg_refund" and "interaction_id" not in failed
    assert "more than the purchase has left" in failed["error"] and "data.items.0.quantity" in failed["error"]
    assert len(api.walk(f"/webhook-sources/{source['id']}/deliveries?status=processed", 1)) == 3
    assert deliveries(api, source, "?status=received") == []
    assert_problem(api.get(f"/webhook-sources/{source['id']}/deliveries?status=lost"), 400, "status")


def test_an_interactions_source_records_the_posted_interaction_or_says_why_not(api, pump, frozen_clock):
    tool = create_source(api, "interactions", "Marketing tool")
    known = api.create_customer(name="Ana Novak", locale="sl")
    visit = {"type": "visit", "channel": "store", "note": "Obisk v Ljubljani", "customer_id": known["id"]}
    message = {
        "type": "message",
        "channel": "email",
        "subject": "Hi",
        "text": "Hello",
        "customer": {"email": "oliver@example.com"},
    }
    assert deliver(api, tool, {"type": "interaction.created", "data": visit}, "msg_visit").status == 202
    assert deliver(api, tool, {"type": "interaction.created", "data": message}, "msg_message").status == 202
    nobody = visit | {"customer_id": "cus_nobody"}
    assert deliver(api, tool, {"type": "interaction.created", "data": nobody}, "msg_nobody").status == 202
    pump.drain()

    [recorded] = timeline(api, known["id"])
    assert (recorded["type"], recorded["note"]) == ("visit", "Obisk v Ljubljani")
    oliver = customer_by_email(api, "oliver@example.com")
    assert oliver["name"] == "oliver" and [i["type"] for i in timeline(api, oliver["id"])] == ["message"]
    by_id = {d["id"]: d for d in deliveries(api, tool)}
    assert by_id["msg_visit"]["interaction_id"] == recorded["id"]
    assert by_id["msg_nobody"]["status"] == "failed"
    assert by_id["msg_nobody"]["error"].startswith("data.customer_id names no customer")


# -- the consumer, its receives and the dead-letter queue -------------------------------------------


def _queued() -> list[dict]:
    sqs = aws_client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().webhooks_in_queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", [])
    return [lambda_sqs_record(m, arn) for m in messages]


def _delete(record: dict) -> None:
    sqs = aws_client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().webhooks_in_queue_name)["QueueUrl"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])


def _invoke(chalice_app, record: dict, receives: int, timeout_ms: int = 30_000) -> bool:
    """One invocation of the consumer with `record` as its `receives`-th receive, with
    `timeout_ms` to run: whether it succeeded (a batch whose every record failed raises, as
    Lambda retries it whole)."""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    record = record | {"attributes": record["attributes"] | {"ApproximateReceiveCount": str(receives)}}
    context = LambdaContext(
        "process_inbound_webhooks", 512, "arn:aws:lambda:eu-north-1:123456789012:function:x", timeout_ms
    )
    try:
        answer = chalice_app.handler_map["process_inbound_webhooks"]({"Records": [record]}, context)
    except BatchProcessingError:
        return False
    return answer == {"batchItemFailures": []}


def test_a_refund_of_an_order_never_sent_waits_then_fails_on_the_last_receive(api, chalice_app, frozen_clock):
    from chalicelib.events.webhooks_in import MAX_RECEIVES

    source = create_source(api)
    assert deliver(api, source, order("R-1", refund_of="A-404"), "msg_refund").status == 202
    [record] = _queued()

    for receives in range(1, MAX_RECEIVES):
        assert not _invoke(chalice_app, record, receives)  # received again after a backoff
        assert deliveries(api, source)[0]["status"] == "received"
    assert _invoke(chalice_app, record, MAX_RECEIVES)
    [failed] = deliveries(api, source)
    assert failed["status"] == "failed" and "data.refund_of" in failed["error"] and "A-404" in failed["error"]


def test_a_delivery_that_keeps_failing_is_marked_failed_before_it_goes_to_the_dead_letter_queue(
    api, chalice_app, frozen_clock, monkeypatch
):
    from chalicelib.events.webhooks_in import MAX_RECEIVES
    from chalicelib.services.interactions import InteractionService

    def unavailable(self, *args, **kwargs):
        raise ConnectionError("DynamoDB is unreachable at 10.0.0.7")

    monkeypatch.setattr(InteractionService, "record", unavailable)
    source = create_source(api)
    assert deliver(api, source, order(), "msg_doomed").status == 202
    [record] = _queued()

    assert not _invoke(chalice_app, record, MAX_RECEIVES - 1)
    assert deliveries(api, source)[0]["status"] == "received"
    assert not _invoke(chalice_app, record, MAX_RECEIVES)  # reported failed: SQS moves it to the DLQ
    [failed] = deliveries(api, source)
    assert failed["status"] == "failed" and failed["error"].startswith("The delivery could not be processed")
    assert "10.0.0.7" not in failed["error"]


def test_a_worker_that_stopped_after_the_claim_is_healed_by_the_redelivery(
    api, pump, frozen_clock, monkeypatch
):
    from chalicelib.services.interactions import InteractionService

    source = create_source(api)
    assert deliver(api, source, order(), "msg_1").status == 202
    real = InteractionService.record

    def stopped(self, *args, **kwargs):
        raise TimeoutError("the invocation timed out")

    monkeypatch.setattr(InteractionService, "record", stopped)
    with pytest.raises(TimeoutError):
        wiring.inbound_webhook_processor().process(source["id"], "msg_1")
    [guard] = [i for i in webhook_items() if i["sk"] == "ORDER#A-1"]
    assert timeline(api, guard["customer_id"]) == []

    monkeypatch.setattr(InteractionService, "record", real)
    pump.drain()  # the queue's message, delivered again
    [purchase] = timeline(api, guard["customer_id"])
    assert purchase["id"] == guard["interaction_id"]
    assert deliveries(api, source)[0]["interaction_id"] == purchase["id"]


def test_the_consumer_marks_failed_after_as_many_receives_as_the_queue_allows():
    from chalicelib.events.webhooks_in import MAX_RECEIVES

    queue = INFRA["Resources"]["WebhooksInQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVES


# -- erasure --------------------------------------------------------------------------------------


def test_an_erased_customers_webhook_items_are_gone(api, pump, frozen_clock):
    shop = create_source(api)
    desk = create_source(api, "tickets")
    assert deliver(api, shop, order("A-1", email="erase.me@example.com")).status == 202
    assert deliver(api, shop, order("A-2", email="keep.me@example.com")).status == 202
    ticket = {"ticket_id": "T-1", "customer": {"email": "erase.me@example.com"}, "subject": "Gone"}
    assert deliver(api, desk, {"type": "ticket.created", "data": ticket}).status == 202
    pump.drain()
    erased = customer_by_email(api, "erase.me@example.com")
    kept = customer_by_email(api, "keep.me@example.com")
    naming = lambda cid: [i for i in webhook_items() if cid in json.dumps(i, default=str)]  # noqa: E731
    assert len(naming(erased["id"])) == 4  # two deliveries, an order's and a ticket's guard

    assert api.post(f"/customers/{erased['id']}/erase").status == 202
    pump.drain()

    assert naming(erased["id"]) == []
    assert len(naming(kept["id"])) == 2
    # The erased customer's deliveries stay, stripped: their webhook-ids are still known.
    assert sorted(d.get("customer_id", "-") for d in deliveries(api, shop)) == sorted(["-", kept["id"]])
    [ticket] = deliveries(api, desk)
    assert (ticket["status"], "customer_id" in ticket, "interaction_id" in ticket) == (
        "processed",
        False,
        False,
    )
    assert [i["sk"] for i in webhook_items() if i["sk"].startswith(("ORDER#", "TICKET#"))] == ["ORDER#A-2"]


def test_a_resent_delivery_of_an_erased_customer_is_202_and_creates_no_one(api, pump, frozen_clock):
    source = create_source(api)
    erased_order = order("A-1", email="erase.me@example.com", customer={"email": "erase.me@example.com"})
    assert deliver(api, source, erased_order, "msg_before").status == 202
    pump.drain()
    erased = customer_by_email(api, "erase.me@example.com")
    assert api.post(f"/customers/{erased['id']}/erase").status == 202
    pump.drain()

    again = deliver(api, source, erased_order, "msg_before")  # the sender's retry, after the erasure
    assert again.status == 202 and again.json["status"] == "processed"
    pump.drain()
    assert api.get("/customers?email=erase.me@example.com").json["items"] == []
    [kept] = deliveries(api, source)
    assert {k: v for k, v in kept.items() if not k.endswith("_at")} == {
        "id": "msg_before",
        "status": "processed",
        "type": "order.created",
    }
    [item] = [i for i in webhook_items() if i["pk"] != "SOURCES"]
    assert not {"payload", "customer_id", "interaction_id", "error", "customer_pk", "customer_sk"} & set(item)


def test_a_delivery_still_queued_when_its_customer_is_erased_fails_and_creates_no_one(
    api, chalice_app, dynamodb_backend, frozen_clock
):
    from tests.conftest import EVENTS_QUEUE_CONSUMERS, event_pump

    known = api.create_customer(name="Erik Väntande", email="erik.vantande@example.com")
    source = create_source(api)
    queued = order("A-1", customer={"email": "Erik.Vantande@Example.com", "name": "Erik Väntande"})
    assert deliver(api, source, queued, "msg_queued").status == 202
    # The erasure runs (its job, the streams' purges) while the delivery waits on the queue.
    held = event_pump(
        chalice_app, dynamodb_backend, leave_out=(*EVENTS_QUEUE_CONSUMERS, "process_inbound_webhooks")
    )
    assert api.post(f"/customers/{known['id']}/erase").status == 202
    held.drain()
    [item] = [i for i in webhook_items() if i["sk"] == "DELIVERY#msg_queued"]
    assert "payload" not in item and "vantande" not in json.dumps(item, default=str).casefold()

    [record] = _queued()
    assert _invoke(chalice_app, record, 1)
    assert api.get("/customers?email=erik.vantande@example.com").json["items"] == []
    [failed] = deliveries(api, source)
    assert failed["status"] == "failed" and "erased" in failed["error"] and "customer_id" not in failed


def test_a_delivery_stored_but_not_queued_is_503_and_the_senders_retry_queues_it(
    api, pump, frozen_clock, monkeypatch
):
    class Unreachable:
        def send(self, body):
            raise ConnectionError("SQS is unreachable")

    source = create_source(api)
    reachable = wiring.webhooks_in_queue
    monkeypatch.setattr(wiring, "webhooks_in_queue", lambda: Unreachable())
    lost = deliver(api, source, order(), "msg_lost")
    assert_problem(lost, 503)
    assert int(lost.headers["retry-after"]) >= 1
    assert _queued() == [] and deliveries(api, source)[0]["status"] == "received"

    monkeypatch.setattr(wiring, "webhooks_in_queue", reachable)
    assert deliver(api, source, order(), "msg_lost").status == 202
    pump.drain()
    assert deliveries(api, source)[0]["status"] == "processed"


def test_a_source_whose_purge_could_not_be_queued_is_gone_and_its_delete_can_be_sent_again(
    api, pump, frozen_clock, monkeypatch
):
    class Unreachable:
        def send(self, body):
            raise ConnectionError("SQS is unreachable")

    source = create_source(api)
    assert deliver(api, source, order()).status == 202
    pump.drain()
    reachable = wiring.webhooks_in_queue
    monkeypatch.setattr(wiring, "webhooks_in_queue", lambda: Unreachable())
    refused = api.delete(f"/webhook-sources/{source['id']}")
    assert_problem(refused, 503)
    assert int(refused.headers["retry-after"]) >= 1
    monkeypatch.setattr(wiring, "webhooks_in_queue", reachable)

    assert_problem(deliver(api, source, order("A-2")), 404)
    assert_problem(api.get(f"/webhook-sources/{source['id']}"), 404)
    assert source["id"] not in [s["id"] for s in api.walk("/webhook-sources", 10)]
    assert api.delete(f"/webhook-sources/{source['id']}").status == 204  # sent again
    pump.drain()
    assert webhook_items() == []
    assert_problem(api.delete(f"/webhook-sources/{source['id']}"), 404)


def test_a_purge_too_large_for_one_invocation_goes_on_in_the_next(api, chalice_app, frozen_clock):
    from chalicelib.domain.webhook_sources import Delivery, Guard

    source = create_source(api)
    repository = wiring.webhook_source_repository()
    now = frozen_clock.now()
    for n in range(40):
        repository.add_delivery(Delivery(source["id"], f"msg_{n}", now, "order.created", "processed"))
        repository.claim(Guard(source["id"], f"ORDER#A-{n}", "cus_x", f"int_{n}", now))
    assert api.delete(f"/webhook-sources/{source['id']}").status == 204
    [purge] = _queued()

    # An invocation with no time left deletes one page, then hands the purge on.
    assert _invoke(chalice_app, purge, 1, timeout_ms=0)
    _delete(purge)  # as Lambda does with a message its handler took
    left = [i for i in webhook_items() if i["pk"] == f"SOURCE#{source['id']}"]
    assert 0 < len(left) < 81  # 80 items and the source's DELETED mark
    [handed_on] = _queued()
    assert json.loads(handed_on["body"]) == {"source_id": source["id"], "purge": True}

    assert _invoke(chalice_app, handed_on, 1)
    assert webhook_items() == [] and _queued() == []


def test_a_refund_recorded_before_its_outcome_was_lost_is_processed_naming_it_when_redelivered(
    api, pump, frozen_clock, monkeypatch
):
    from chalicelib.store.webhook_sources import WebhookSourceRepository

    source = create_source(api)
    assert deliver(api, source, order("A-1")).status == 202
    pump.drain()
    assert deliver(api, source, order("R-1", refund_of="A-1"), "msg_refund").status == 202  # all of it
    real = WebhookSourceRepository.finish

    def lost(self, delivery):
        raise ConnectionError("the worker stopped before the outcome was written")

    monkeypatch.setattr(WebhookSourceRepository, "finish", lost)
    with pytest.raises(ConnectionError):
        wiring.inbound_webhook_processor().process(source["id"], "msg_refund")
    monkeypatch.setattr(WebhookSourceRepository, "finish", real)
    pump.drain()  # the queue's message, delivered again

    customer = customer_by_email(api, "asa.oberg@example.com")
    [ret] = timeline(api, customer["id"], "return")
    [refunded] = [d for d in deliveries(api, source) if d["id"] == "msg_refund"]
    assert (refunded["status"], refunded["interaction_id"]) == ("processed", ret["id"])


def test_the_same_full_refund_under_two_webhook_ids_is_one_return_and_both_are_processed(
    api, pump, frozen_clock
):
    source = create_source(api)
    assert deliver(api, source, order("A-1")).status == 202
    pump.drain()
    assert deliver(api, source, order("R-1", refund_of="A-1"), "msg_refund_1").status == 202
    pump.drain()
    assert deliver(api, source, order("R-1", refund_of="A-1"), "msg_refund_2").status == 202
    pump.drain()

    customer = customer_by_email(api, "asa.oberg@example.com")
    [ret] = timeline(api, customer["id"], "return")
    refunds = [d for d in deliveries(api, source) if d["type"] == "order.refunded"]
    assert [(d["status"], d["interaction_id"]) for d in refunds] == [("processed", ret["id"])] * 2


def test_an_order_numbered_like_an_earlier_refund_is_a_purchase(api, pump, frozen_clock):
    source = create_source(api)
    assert deliver(api, source, order("A1")).status == 202
    pump.drain()
    assert deliver(api, source, order("1001", items=[LINE | {"quantity": 1}], refund_of="A1")).status == 202
    pump.drain()
    assert deliver(api, source, order("1001")).status == 202
    pump.drain()

    customer = customer_by_email(api, "asa.oberg@example.com")
    purchases = timeline(api, customer["id"], "purchase")
    assert sorted(p["order_id"] for p in purchases) == ["1001", "A1"]
    [ret] = timeline(api, customer["id"], "return")
    [bought] = [p for p in purchases if p["order_id"] == "A1"]
    assert (ret["order_id"], ret["purchase_id"]) == ("1001", bought["id"])
    assert {d["status"] for d in deliveries(api, source)} == {"processed"}
