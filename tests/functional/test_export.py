"""GDPR export: everything we hold on a person, in one documented JSON document."""

from __future__ import annotations

from tests.functional.conftest import assert_problem, bulk_interactions
from tests.integration.streams import interaction_records


def _add_notes(case_id: str, notes: list[str]) -> None:
    from chalicelib.api import deps
    from chalicelib.domain.cases import add_note

    repository = deps.case_repository()
    before = after = repository.get(case_id)
    for note in notes:
        after = add_note(after, note, by="staff-1", at=before.opened_at)
    repository.update(before, after)


def test_the_export_holds_profile_timeline_cases_loyalty_and_audit(api, client):
    c = api.create_customer(name="Jyrki Mäkelä", email="jyrki@example.fi", locale="fi")
    api.patch(f"/customers/{c['id']}", {"preferred_name": "Jyrki"})
    bulk_interactions(c["id"], 130)
    purchase = {
        "type": "purchase",
        "channel": "web",
        "currency": "EUR",
        "items": [{"sku": "SKU-TEA", "name": "Tee", "quantity": 1, "unit_price": "3.90"}],
    }
    api.post(f"/customers/{c['id']}/interactions", purchase)
    api.post(
        f"/customers/{c['id']}/interactions",
        {"type": "complaint", "channel": "phone", "severity": "low", "subject": "Väärä tuote"},
    )
    records = interaction_records()
    client.lambda_.invoke("update_loyalty", {"Records": records})
    client.lambda_.invoke("open_cases", {"Records": records})
    [case] = api.get(f"/customers/{c['id']}/cases").json["items"]
    notes = [f"Muistiinpano {n}" for n in range(24)]  # more than the case item keeps
    _add_notes(case["id"], notes)

    reply = api.get(f"/customers/{c['id']}/export")
    assert reply.status == 200
    doc = reply.json
    assert doc["format"] == "crm-export/1"
    assert doc["customer"]["preferred_name"] == "Jyrki" and doc["customer"]["email"] == "jyrki@example.fi"
    assert len(doc["interactions"]) == 132
    assert [k["subject"] for k in doc["cases"]] == ["Väärä tuote"]
    [exported] = doc["cases"]
    assert [h["note"] for h in exported["history"]] == ["Opened from a complaint.", *notes]
    assert exported["history_count"] == 25
    assert doc["loyalty"]["net_spend"] == {"EUR": "3.90"}
    actions = sorted(e["action"] for e in doc["audit"] if e["entity"] == "customer")
    assert actions == ["create", "update"]
    update = next(e for e in doc["audit"] if e["action"] == "update")
    assert update["changes"] == [{"field": "preferred_name", "before": None, "after": "Jyrki"}]


def test_a_customer_exports_their_own_data_and_staff_an_unknown_id_gets_404(api):
    c = api.create_customer(name="Mojca Žagar", locale="sl")
    mine = api.as_role("customer", c["id"]).get("/me/export")
    assert mine.status == 200 and mine.json["customer"]["id"] == c["id"]
    assert_problem(api.get("/customers/cus_nope/export"), 404)
