"""Bulk imports row by row: CSV and NDJSON as given (BOM, quotes, names of the seed languages,
bad lines at known rows), upsert re-runs, interactions by email or id, imported complaints' cases,
and requests that make no sense."""

from __future__ import annotations

import json

import pytest

from tests.functional.conftest import Api, assert_problem
from tests.integration.imports import (
    _counts,
    _import,
    _put,
    _request,
    _results,
)


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


NAMES_CSV = (
    "\ufeffname,email,tags,attributes.note\r\n"
    'Pirkko Järvinen,pirkko@example.fi,vip; nordic,"Asiakas, jolla on\nkaksi riviä"\r\n'
    'Špela Kovačič,spela@example.si,,"Pravi: ""hvala"""\r\n'
    'Maria Dela Cruz-Santos,maria@example.ph,pamilya,"Maynila, Pilipinas"\r\n'
    "Åsa Öberg,asa@example.se,,\r\n"
).encode()


def test_a_csv_with_a_bom_quoted_newlines_and_commas_imports_every_name_as_written(api, chalice_app):
    imp = _import(api, chalice_app, NAMES_CSV)

    assert _counts(imp) == {
        "status": "completed",
        "rows": 4,
        "processed": 4,
        "created": 4,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert imp["started_at"] and imp["completed_at"]
    results = _results(api, imp["id"])
    assert [(r["row"], r["outcome"]) for r in results] == [
        (1, "created"),
        (2, "created"),
        (3, "created"),
        (4, "created"),
    ]
    pirkko = api.get(f"/customers/{results[0]['customer_id']}").json
    assert pirkko["name"] == "Pirkko Järvinen" and pirkko["tags"] == ["vip", "nordic"]
    assert pirkko["attributes"] == {"note": "Asiakas, jolla on\nkaksi riviä"}
    spela = api.get("/customers?email=spela@example.si").json["items"][0]
    assert spela["name"] == "Špela Kovačič" and spela["attributes"] == {"note": 'Pravi: "hvala"'}
    assert api.get("/customers?email=asa@example.se").json["items"][0]["name"] == "Åsa Öberg"
    assert api.get(f"/imports/{imp['id']}/errors").json == {"items": [], "next_cursor": None}


def test_an_ndjson_file_with_invalid_lines_names_exactly_those_rows_in_its_errors(api, chalice_app):
    lines = [
        {"name": "Juan dela Cruz", "email": "juan@example.ph"},
        "{not json",
        {"name": "Liisa Virtanen", "locale": "fi-FI"},
        {"name": "Bad Email", "email": "no-at-sign"},
        {"name": "Unknown Field", "favourite": "blue"},
        {"name": "Ana Novak", "email": "ana@example.si", "marketing_consent": True},
        "",
        '["an", "array"]',
    ]
    data = "\n".join(
        line if isinstance(line, str) else json.dumps(line, ensure_ascii=False) for line in lines
    )
    imp = _import(api, chalice_app, data.encode(), format="ndjson")

    assert _counts(imp) == {
        "status": "completed",
        "rows": 8,
        "processed": 8,
        "created": 3,
        "updated": 0,
        "skipped": 1,
        "failed": 4,
    }
    errors = api.walk(f"/imports/{imp['id']}/errors", limit=2)
    assert [e["row"] for e in errors] == [2, 4, 5, 8]
    by_row = {e["row"]: e for e in errors}
    assert by_row[4]["errors"][0]["field"] == "email"
    assert by_row[5]["errors"] == [{"field": "favourite", "message": "is not a known field"}]
    assert by_row[2]["source"] == "{not json"
    results = _results(api, imp["id"])
    assert [r["row"] for r in results] == list(range(1, 9))
    assert results[6] == {"row": 7, "outcome": "skipped", "reason": "blank"}


def test_an_upsert_re_import_of_the_same_files_changes_nothing(api, chalice_app):
    customers = (
        "email,name,locale,marketing_consent\n"
        "mika@example.fi,Mika Häkkinen,fi-FI,true\n"
        "tala@example.ph,Tala Reyes,fil,false\n"
    ).encode()
    first = _import(api, chalice_app, customers, mode="upsert")
    assert (first["created"], first["skipped"]) == (2, 0)
    versions = {c["email"]: c["version"] for c in api.get("/customers").json["items"]}

    again = _import(api, chalice_app, customers, mode="upsert")
    assert _counts(again) == {
        "status": "completed",
        "rows": 2,
        "processed": 2,
        "created": 0,
        "updated": 0,
        "skipped": 2,
        "failed": 0,
    }
    assert {r["reason"] for r in _results(api, again["id"])} == {"unchanged"}
    assert {c["email"]: c["version"] for c in api.get("/customers").json["items"]} == versions

    changed = customers.replace(b"Tala Reyes", b"Tala Reyes-Santos")
    assert _counts(_import(api, chalice_app, changed, mode="upsert"))["updated"] == 1

    purchases = (
        b"customer_email,type,channel,occurred_at,currency,items\n"
        b'mika@example.fi,purchase,store,2025-11-02T10:00:00Z,EUR,"[{""sku"": ""SAUNA-1"", '
        b'""name"": ""Kiuas"", ""quantity"": 1, ""unit_price"": ""499.00""}]"\n'
        b"tala@example.ph,inquiry,phone,2025-11-03T09:30:00Z,,\n"
    )
    bought = _import(api, chalice_app, purchases, kind="interactions", mode="upsert")
    assert (bought["created"], bought["failed"]) == (2, 0), api.get(f"/imports/{bought['id']}/errors").json
    rerun = _import(api, chalice_app, purchases, kind="interactions", mode="upsert")
    assert (rerun["created"], rerun["skipped"]) == (0, 2)
    mika = api.get("/customers?email=mika@example.fi").json["items"][0]
    timeline = api.get(f"/customers/{mika['id']}/interactions").json["items"]
    assert [(i["type"], i["occurred_at"]) for i in timeline] == [("purchase", "2025-11-02T10:00:00.000Z")]


def test_a_header_with_an_unknown_column_fails_the_import_naming_it(api, chalice_app):
    imp = _import(api, chalice_app, b"name,shoe_size\nAino,38\n")
    assert imp["status"] == "failed" and "shoe_size" in imp["reason"]


def test_an_import_request_that_makes_no_sense_is_refused_naming_the_field(api):
    assert_problem(
        api.post("/imports", {"kind": "customers", "format": "csv", "match_on": "id"}), 400, "match_on"
    )
    assert_problem(api.post("/imports", {"kind": "orders", "format": "xlsx"}), 400, "kind", "format")
    assert_problem(api.get("/imports/imp_NOPE"), 404)
    assert_problem(api.get("/imports/imp_NOPE/results"), 404)


def test_an_imported_complaint_older_than_its_sla_opens_a_case_escalated_once_and_not_acknowledged(
    api, chalice_app, client, pump
):
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    from chalicelib.domain.clock import to_rfc3339

    customer = api.create_customer(name="Jyrki Mäkelä", email="jyrki@example.fi", locale="fi")
    recent = to_rfc3339(datetime.now(UTC) - timedelta(minutes=10))
    data = (
        "customer_email,type,channel,occurred_at,severity,subject\n"
        "jyrki@example.fi,complaint,phone,2025-01-10T09:00:00Z,high,Paketti ei tullut\n"
        f"jyrki@example.fi,complaint,email,{recent},low,Väärä väri\n"
    ).encode()
    imp = _request(api, kind="interactions")
    _put(imp, data)
    pump.drain()

    assert api.get(f"/imports/{imp['id']}").json["created"] == 2
    cases = {c["subject"]: c for c in api.get(f"/customers/{customer['id']}/cases").json["items"]}
    old, new = cases["Paketti ei tullut"], cases["Väärä väri"]
    assert old["opened_at"] == "2025-01-10T09:00:00.000Z"
    assert (old["escalation_level"], old["contact_status"], old["status"]) == (1, "imported_past_due", "open")
    assert (new["escalation_level"], new["contact_status"]) == (0, "acknowledged_by_email")
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["eu-north-1"].sent_messages
    assert len(sent) == 1  # the recent complaint's acknowledgement only
    scheduled = json.loads((Path(__file__).parent / "events" / "scheduled_daily.json").read_text())
    assert client.lambda_.invoke("escalate_overdue_cases", scheduled).payload == {"escalated": 0}


def test_interactions_by_customer_id_follow_a_merged_id_and_fail_an_unknown_one_naming_the_field(
    api, chalice_app
):
    from chalicelib.store.keys import customer_pk
    from chalicelib.store.models.merges import AliasModel

    survivor = api.create_customer(name="Tala Reyes")["id"]
    merged = "cus_01KMERGEDAWAY0000000000000"
    AliasModel(
        customer_pk(merged),
        merged_id=merged,
        survivor_id=survivor,
        merge_id="mrg_X",
        merged_at="2026-01-01T00:00:00Z",
    ).save()
    lines = [
        {"customer_id": survivor, "type": "visit", "channel": "store", "occurred_at": "2025-10-01T10:00:00Z"},
        {"customer_id": merged, "type": "inquiry", "channel": "phone", "occurred_at": "2025-10-02T10:00:00Z"},
        {"customer_id": "cus_NOBODY", "type": "visit", "channel": "store"},
        {"type": "visit", "channel": "store"},
        {"customer_id": survivor, "type": "visit", "channel": "teleport"},
        {"customer_id": "x" * 5000, "type": "visit", "channel": "store"},
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    imp = _import(api, chalice_app, data, kind="interactions", format="ndjson", match_on="id")

    assert (imp["created"], imp["failed"]) == (2, 4)
    results = _results(api, imp["id"])
    assert [r.get("customer_id") for r in results[:2]] == [survivor, survivor]
    errors = {e["row"]: e["errors"] for e in api.get(f"/imports/{imp['id']}/errors").json["items"]}
    assert errors[3] == [{"field": "customer_id", "message": "is not the id of a customer"}]
    assert errors[4] == [{"field": "customer_id", "message": "is required"}]
    assert [e["field"] for e in errors[5]] == ["channel"]
    assert errors[6] == [{"field": "customer_id", "message": "is not the id of a customer"}]
    assert len(api.get(f"/customers/{survivor}/interactions").json["items"]) == 2


def test_an_interaction_naming_its_customer_by_a_malformed_email_fails_that_row_not_the_worker(
    api, chalice_app
):
    api.create_customer(name="Ana Novak", email="ana.novak@example.si")
    data = (
        "customer_email,type,channel\n"
        "ana.novak@example.si,visit,store\n"
        "not-an-address,visit,store\n"
        f"{'a' * 300}@example.si,visit,store\n"
    ).encode()
    imp = _import(api, chalice_app, data, kind="interactions")
    assert _counts(imp) == {
        "status": "completed",
        "rows": 3,
        "processed": 3,
        "created": 1,
        "updated": 0,
        "skipped": 0,
        "failed": 2,
    }
    errors = api.get(f"/imports/{imp['id']}/errors").json["items"]
    assert [(e["row"], e["errors"][0]["field"]) for e in errors] == [
        (2, "customer_email"),
        (3, "customer_email"),
    ]
