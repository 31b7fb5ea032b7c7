"""GDPR export: everything we hold on a person, in one documented JSON document."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests

from tests.functional.conftest import assert_problem, bulk_interactions
from tests.integration.streams import interaction_records


def _add_notes(case_id: str, notes: list[str]) -> None:
    from chalicelib import wiring
    from chalicelib.domain.cases import add_note

    repository = wiring.case_repository()
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


# 4,000 characters that Lambda's response carries as 6 bytes each (\u00e4): 24 KB a note.
LONG_NOTE = "ä" * 4000


def test_an_export_too_large_for_a_response_is_413_naming_the_job_route(api):
    c = api.create_customer(name="Väinö Hämäläinen", locale="fi")
    bulk_interactions(c["id"], 230, note=LONG_NOTE)  # 1.9 MB as UTF-8, 5.6 MB as Lambda carries it

    problem = assert_problem(api.get(f"/customers/{c['id']}/export"), 413)
    assert problem["type"] == "urn:problem-type:crm:export-too-large"
    assert f"POST /customers/{c['id']}/exports" in problem["detail"]
    mine = assert_problem(api.as_role("customer", c["id"]).get("/me/export"), 413)
    assert "POST /me/exports" in mine["detail"]


def test_an_export_job_links_to_the_whole_document_for_15_minutes(api, pump):
    c = api.create_customer(name="Väinö Hämäläinen", email="vaino@example.fi", locale="fi")
    bulk_interactions(c["id"], 230, note=LONG_NOTE)

    reply = api.post(f"/customers/{c['id']}/exports")
    assert reply.status == 202, reply.json
    job = reply.json
    assert reply.headers["location"] == f"/jobs/{job['id']}"
    assert (job["kind"], job["status"], job["result"]) == ("export", "running", None)
    pump.drain(timeout=60)

    done = api.get(f"/jobs/{job['id']}").json
    assert done["status"] == "completed" and done["completed_at"]
    url = done["result"]["download_url"]
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["900"]
    download = requests.get(url, timeout=10)
    assert download.status_code == 200 and len(download.content) == done["result"]["size_bytes"]
    doc = download.json()
    assert doc["format"] == done["result"]["format"] == "crm-export/1"
    assert doc["customer"]["email"] == "vaino@example.fi"
    assert len(doc["interactions"]) == 230 and doc["interactions"][0]["note"] == LONG_NOTE
    assert {"loyalty", "cases", "audit", "exported_at"} <= set(doc)


def test_a_customer_exports_as_a_job_and_sees_only_their_own_jobs(api, pump):
    c = api.create_customer(name="Mojca Žagar", locale="sl")
    other = api.create_customer(name="Saša Kovačič", locale="sl")
    me = api.as_role("customer", c["id"])

    reply = me.post("/me/exports")
    assert reply.status == 202 and reply.headers["location"] == f"/me/jobs/{reply.json['id']}"
    pump.drain(timeout=60)

    mine = me.get(reply.headers["location"])
    assert mine.status == 200 and mine.json["status"] == "completed"
    assert requests.get(mine.json["result"]["download_url"], timeout=10).json()["customer"]["id"] == c["id"]
    assert_problem(api.as_role("customer", other["id"]).get(reply.headers["location"]), 404)
    assert_problem(me.get("/me/jobs/job_nope"), 404)
    assert api.get(f"/jobs/{reply.json['id']}").json["customer_id"] == c["id"]
    assert_problem(api.get("/jobs/job_nope"), 404)
    assert_problem(api.post("/customers/cus_nope/exports"), 404)
