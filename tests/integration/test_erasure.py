"""GDPR erasure end to end: a customer with everything (profile, purchases, a return, notes, a
complaint acknowledged by email, staff notes, loyalty, audit, an idempotent POST, a /me PATCH,
an export document) is erased by a job, the stream records flow through the consumers, and no
item of any table (nor any message on the events queue, nor any object in the exports bucket)
holds a trace of their personal data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from chalicelib.config import get_settings
from tests.functional.conftest import Api, assert_problem


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


NAME = "Ingegärd Pålsson-Wikström"
PREFERRED = "Lillan Pålsson"
NEW_PREFERRED = "Inge-Lill"
EMAIL = "ingegard.palsson@exempel.se"
ATTRIBUTES = {"favoritbutik": "Butiken vid Slussen", "kundnummer": "KN-99812734"}
NOTES = [
    "Köpte kaffe åt svärmor Gunnel",
    "Returnerade koppen, den var sprucken",
    "Termosen läckte i väskan på tunnelbanan",
    "Besök i butiken med dottern Sigrid",
]
COMPLAINT_SUBJECT = "Trasig termos från Götgatan"
STAFF_NOTE = "Ringde Inge-Lill kl 14, hon var upprörd"
RESOLUTION = "Ny termos skickad hem till Storgatan 12"


def _texts(value: Any) -> Iterator[str]:
    """Every string in a value, looking inside strings that are JSON themselves (audit changes,
    case history, idempotency records store JSON, possibly with \\u escapes)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _texts(v)
    elif isinstance(value, list | tuple | set):
        for v in value:
            yield from _texts(v)
    elif isinstance(value, str):
        yield value
        stripped = value.strip()
        if stripped[:1] in ("{", "[", '"'):
            try:
                inner = json.loads(stripped)
            except ValueError:
                return
            if inner != value:
                yield from _texts(inner)
    elif value is not None:
        yield str(value)


def _scan(table_name: str) -> list[dict]:
    table = boto3.resource("dynamodb").Table(table_name)
    items, kwargs = [], {}
    while True:
        page = table.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _event_bodies() -> list[str]:
    """The events on the queue, taken off it as its consumer (outbound webhooks) takes them:
    a later look sees what was published since (a message left in flight would hide the
    later messages of its customer, the FIFO queue's message group)."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().events_queue_name)["QueueUrl"]
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        if not got.get("Messages"):
            return bodies
        bodies += [m["Body"] for m in got["Messages"]]
        for m in got["Messages"]:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def _documents() -> list[str]:
    s3 = boto3.client("s3")
    bucket = get_settings().exports_bucket
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return [s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode() for key in keys]


def _leaks(pii: list[str]) -> dict[str, list[str]]:
    """Per table (and the events queue, and the exports bucket): the PII strings found in it."""
    settings = get_settings()
    sources = {
        name: _scan(name)
        for name in (
            settings.customers_table,
            settings.interactions_table,
            settings.cases_table,
            settings.idempotency_table,
            settings.jobs_table,
        )
    }
    sources["events queue"] = _event_bodies()
    sources["exports bucket"] = _documents()
    found: dict[str, list[str]] = {}
    for source, items in sources.items():
        haystack = "\n".join(t.casefold() for item in items for t in _texts(item))
        hits = [p for p in pii if p.casefold() in haystack]
        if hits:
            found[source] = hits
    return found


def _load_customer_with_everything(api: Api, pump) -> tuple[dict, list[str]]:
    customer = api.create_customer(
        name=NAME,
        preferred_name=PREFERRED,
        email=EMAIL,
        phone="+46 70 123 45 67",
        locale="sv-SE",
        attributes=ATTRIBUTES,
    )
    cid = customer["id"]
    timeline = f"/customers/{cid}/interactions"
    # Staff type line-item names freely: one that names the customer must not outlive erasure.
    coffee = {"sku": "SKU-KAFFE", "name": f"Kaffe 500 g till {NAME}", "quantity": 2, "unit_price": "59.90"}
    purchase = api.post(
        timeline,
        {"type": "purchase", "channel": "store", "currency": "SEK", "items": [coffee], "note": NOTES[0]},
    )
    assert purchase.status == 201, purchase.json
    thermos = {"sku": "SKU-TERMOS", "name": "Termos 1 l", "quantity": 1, "unit_price": "249.00"}
    assert (
        api.post(
            timeline, {"type": "purchase", "channel": "web", "currency": "SEK", "items": [thermos]}
        ).status
        == 201
    )
    returned = api.post(
        timeline,
        {
            "type": "return",
            "channel": "store",
            "currency": "SEK",
            "purchase_id": purchase.json["id"],
            "items": [{**coffee, "quantity": 1}],
            "note": NOTES[1],
        },
    )
    assert returned.status == 201, returned.json
    complaint = api.post(
        timeline,
        {
            "type": "complaint",
            "channel": "phone",
            "severity": "high",
            "subject": COMPLAINT_SUBJECT,
            "note": NOTES[2],
        },
    )
    assert complaint.status == 201, complaint.json
    once = api.post(
        timeline,
        {"type": "visit", "channel": "store", "note": NOTES[3]},
        headers={"Idempotency-Key": "besok-1"},
    )
    assert once.status == 201, once.json
    me = api.as_role("customer", cid)
    assert me.patch("/me", {"preferred_name": NEW_PREFERRED}).status == 200
    assert me.post("/me/exports").status == 202
    pump.drain()  # loyalty, the case, its acknowledgement email, the export document

    [case] = api.get(f"/customers/{cid}/cases").json["items"]
    assert case["status"] == "acknowledged"
    assert api.patch(f"/cases/{case['id']}", {"status": "in_progress", "note": STAFF_NOTE}).status == 200
    resolved = api.patch(f"/cases/{case['id']}", {"status": "resolved", "resolution": RESOLUTION})
    assert resolved.status == 200, resolved.json
    pump.drain()
    assert api.get(f"/customers/{cid}/loyalty").json["net_spend"] == {"SEK": "308.90"}

    profile = api.get(f"/customers/{cid}").json
    pii = [NAME, "Ingegärd", "Wikström", PREFERRED, NEW_PREFERRED, EMAIL, profile["phone"], "70 123 45 67"]
    pii += [*ATTRIBUTES.values(), *NOTES, COMPLAINT_SUBJECT, STAFF_NOTE, RESOLUTION]
    return customer, pii


def test_erasure_leaves_no_personal_data_anywhere_but_keeps_anonymous_aggregates(api, pump):
    from chalicelib.store.models import AuditModel, IdempotencyPointerModel, customer_pk

    customer, pii = _load_customer_with_everything(api, pump)
    cid = customer["id"]
    settings = get_settings()
    # The detector works: before erasure the data is everywhere, including the stored response.
    # (It takes the events published so far off the queue, as the queue's consumer does: what
    # is on it after the erasure is what the erasure published.)
    before = _leaks(pii)
    for table in (settings.customers_table, settings.interactions_table, settings.cases_table):
        assert table in before, before
    assert any(i["pk"].startswith("CASE#") for i in _scan(settings.customers_table))
    assert EMAIL in before["exports bucket"], before
    [export] = _scan(settings.jobs_table)
    assert (export["kind"], export["status"]) == ("export", "completed")
    assert NOTES[3] in before.get(settings.idempotency_table, []), before
    assert list(
        IdempotencyPointerModel.query(customer_pk(cid), IdempotencyPointerModel.sk.startswith("IDEMPOTENCY#"))
    )

    reply = api.post(f"/customers/{cid}/erase")
    assert reply.status == 202, reply.body
    job = reply.json
    assert reply.headers["location"] == f"/jobs/{job['id']}"
    assert (job["kind"], job["status"], job["customer_id"], job["completed_at"]) == (
        "erasure",
        "running",
        cid,
        None,
    )
    pump.drain()  # the job, then REMOVE records of the profile, interactions and cases
    done = api.get(f"/jobs/{job['id']}").json
    assert (done["status"], done["reason"], done["result"]) == ("completed", None, None)
    assert done["completed_at"] >= done["created_at"]

    assert _leaks(pii) == {}
    assert_problem(api.get(f"/jobs/{export['id']}"), 404)  # the customer's exports went too

    assert_problem(api.get(f"/customers/{cid}"), 404)
    assert_problem(api.post(f"/customers/{cid}/erase"), 404)
    me = api.as_role("customer", cid)
    gone = assert_problem(me.get("/me"), 410)
    assert gone["type"] == "urn:problem-type:crm:gone"
    assert_problem(me.get("/me/cases"), 410)
    assert_problem(me.get("/me/export"), 410)
    assert_problem(me.post("/me/exports"), 410)
    assert_problem(me.get(f"/me/jobs/{job['id']}"), 410)

    customers = _scan(settings.customers_table)
    anonymous = [i for i in customers if i["pk"].startswith("ANONYMOUS#")]
    [kept] = [i for i in anonymous if i["sk"] == "LOYALTY"]
    assert kept["sk"] == "LOYALTY" and not {"tier", "tier_sk", "review_pk", "review_at", "customer_id"} & set(
        kept
    )
    aggregates = json.loads(kept["aggregates"])
    assert aggregates["net_spend"] == {"SEK": "308.90"}
    assert (aggregates["purchase_count"], aggregates["return_count"]) == (2, 1)
    assert cid not in json.dumps(kept, default=str)
    assert '"name"' not in kept["aggregates"] and "Kaffe" not in kept["aggregates"]  # SKUs, numbers
    assert aggregates["sku_count"] == 2
    habits = {i["sk"]: json.loads(i["habit"]) for i in anonymous if i["sk"] != "LOYALTY"}
    assert {i["pk"] for i in anonymous} == {kept["pk"]}
    assert set(habits) == {"HABIT#SKU-KAFFE", "HABIT#SKU-TERMOS"}
    assert habits["HABIT#SKU-KAFFE"] == {
        "sku": "SKU-KAFFE",
        "times_bought": 1,
        "quantity": 2,
        "first_purchase_at": habits["HABIT#SKU-KAFFE"]["first_purchase_at"],
        "last_purchase_at": habits["HABIT#SKU-KAFFE"]["first_purchase_at"],
    }
    left = {i["sk"].split("#")[0] for i in customers if i["pk"] == customer_pk(cid)}
    assert left == {"DELETED", "AUDIT"}, left
    assert _scan(settings.interactions_table) == [] and _scan(settings.cases_table) == []
    assert [i for i in customers if i["pk"].startswith("CASE#")] == []  # the history went too

    entries = list(AuditModel.query(customer_pk(cid), AuditModel.sk.startswith("AUDIT#")))
    [erase] = [e for e in entries if e.action == "erase"]
    assert (erase.actor_subject, erase.actor_role, erase.entity_id) == ("staff-1", "staff", cid)
    assert json.loads(erase.changes) == []
    kept_changes = [c for e in entries for c in json.loads(e.changes)]
    assert any(c["field"] == "preferred_name" for c in kept_changes)  # who changed what, when: kept
    assert all(c["before"] is None and c["after"] is None for c in kept_changes if c["field"] == "name")


def test_erasing_an_unknown_customer_is_404_and_needs_staff(api):
    assert_problem(api.post("/customers/cus_nope/erase"), 404)
    c = api.create_customer(name="Mojca Žagar")
    assert_problem(api.as_role("customer", c["id"]).post(f"/customers/{c['id']}/erase"), 403)
    assert api.get(f"/customers/{c['id']}").status == 200


def test_what_a_deleted_customer_left_can_be_erased(api, pump):
    customer = api.create_customer(name="Tuomas Järvinen", email="tuomas.erased@example.fi")
    filed = api.post(
        f"/customers/{customer['id']}/interactions",
        {"type": "complaint", "channel": "email", "severity": "low", "subject": "Tuomaksen valitus"},
    )
    assert filed.status == 201
    pump.drain()  # the case opens
    assert api.delete(f"/customers/{customer['id']}").status == 204
    pump.drain()  # the purge closes the case and keeps it
    case = api.get(f"/cases/case_{filed.json['id'].split('_', 1)[1]}").json
    assert (case["status"], case["closed_reason"]) == ("closed", "customer_deleted")

    # The events published so far (the profile, the complaint, the case) are taken off the
    # queue by its consumer; what the erasure publishes must hold none of the customer's data.
    _event_bodies()
    reply = api.post(f"/customers/{customer['id']}/erase")
    assert reply.status == 202, reply.json
    pump.drain()

    assert api.get(f"/jobs/{reply.json['id']}").json["status"] == "completed"
    pii = ["Tuomas Järvinen", "tuomas.erased@example.fi", "Tuomaksen valitus"]
    published = _event_bodies()
    assert [json.loads(b)["type"] for b in published] == ["customer.erased"]
    assert not [p for p in pii if any(p in b for b in published)]
    assert _leaks(pii) == {}
    assert_problem(api.get(f"/cases/{case['id']}"), 404)
    assert [e["action"] for e in api.get(f"/customers/{customer['id']}/audit").json["items"]][:1] == ["erase"]
    assert_problem(api.post(f"/customers/{customer['id']}/erase"), 404)  # erased now
