"""Every change to a customer or a case is in the audit trail, written with the change."""

from __future__ import annotations

from tests.functional.conftest import assert_problem


def test_customer_changes_are_audited_with_who_when_route_and_masked_fields(api):
    c = api.create_customer(
        name="Åsa Öberg", email="asa.oberg@example.com", phone="+46701234567", locale="sv"
    )
    api.patch(f"/customers/{c['id']}", {"locale": "sv-SE", "email": "asa@example.org"})
    trail = api.get(f"/customers/{c['id']}/audit").json["items"]
    assert [e["action"] for e in trail] == ["update", "create"]
    update, create = trail
    assert update["actor"] == {"subject": "staff-1", "role": "staff"}
    assert update["route"] == "PATCH /customers/{customer_id}"
    assert update["entity"] == "customer" and update["entity_id"] == c["id"]
    assert {ch["field"]: (ch["before"], ch["after"]) for ch in update["changes"]} == {
        "email": ("a***@example.com", "a***@example.org"),
        "locale": ("sv", "sv-SE"),
    }
    created = {ch["field"]: ch["after"] for ch in create["changes"]}
    assert created["name"] == "Å***" and created["phone"] == "+46******567" and created["locale"] == "sv"
    assert "asa.oberg" not in str(trail) and "Öberg" not in str(trail)


def test_a_rejected_change_writes_no_audit_entry(api):
    c = api.create_customer()
    assert_problem(api.patch(f"/customers/{c['id']}", {"locale": "fi"}, headers={"If-Match": '"v9"'}), 412)
    other = api.create_customer(name="B", email="b@example.com")
    assert_problem(api.patch(f"/customers/{c['id']}", {"email": "B@example.com"}), 409)
    assert [e["action"] for e in api.get(f"/customers/{c['id']}/audit").json["items"]] == ["create"]
    assert other


def test_the_audit_trail_is_paged_newest_first(api):
    c = api.create_customer()
    for locale in ("sv", "fi", "sl", "tl", "en"):
        api.patch(f"/customers/{c['id']}", {"locale": locale})
    walked = api.walk(f"/customers/{c['id']}/audit", limit=2)
    assert len(walked) == 6 and len({e["id"] for e in walked}) == 6
    assert [e["at"] for e in walked] == sorted((e["at"] for e in walked), reverse=True)


def test_an_unknown_customer_has_no_audit_trail(api):
    assert_problem(api.get("/customers/cus_nope/audit"), 404)


def test_a_customer_token_cannot_read_the_audit_trail(api):
    c = api.create_customer()
    assert_problem(api.as_role("customer", c["id"]).get(f"/customers/{c['id']}/audit"), 403)


def test_the_audit_trail_outlives_a_deleted_customer(api):
    c = api.create_customer(name="Jyrki Mäkelä", email="jyrki@example.fi")
    api.patch(f"/customers/{c['id']}", {"locale": "fi"})
    assert api.delete(f"/customers/{c['id']}").status == 204

    reply = api.get(f"/customers/{c['id']}/audit")

    assert reply.status == 200, reply.json
    assert [e["action"] for e in reply.json["items"]] == ["delete", "update", "create"]
    assert "jyrki@" not in str(reply.json) and "Mäkelä" not in str(reply.json)


def test_the_audit_trail_outlives_an_erased_customer_scrubbed(api, pump):
    c = api.create_customer(name="Saša Kovačič", email="sasa@example.si", tags=["vip-ljubljana"])
    erasing = api.post(f"/customers/{c['id']}/erase")
    assert erasing.status == 202, erasing.json
    pump.drain()  # the erasure job
    assert api.get(erasing.headers["location"]).json["status"] == "completed"

    reply = api.get(f"/customers/{c['id']}/audit")

    assert reply.status == 200, reply.json
    assert reply.json["items"][0]["action"] == "erase"
    assert "sasa@" not in str(reply.json) and "Kovačič" not in str(reply.json)
    assert "vip-ljubljana" not in str(reply.json)  # tags are personal data too
