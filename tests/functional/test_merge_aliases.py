"""A merged customer's id is an alias of the survivor: every read under it is redirected (308)
to the same path under the survivor, every write refused (409), both naming `merged_into`; a
token of the merged id reaches the survivor's self-service; chains are followed."""

from __future__ import annotations

import re

import pytest

from chalicelib.api.http import ROUTES
from tests.conftest import token
from tests.functional.conftest import Api, assert_problem
from tests.functional.merge_helpers import finish, merge


def _customer_gets() -> list[str]:
    """Every read under a customer the app serves (ROUTES is filled as the app is imported)."""
    gets = sorted(
        r.path for r in ROUTES if r.method == "GET" and r.path.startswith("/customers/{customer_id}")
    )
    assert {"/customers/{customer_id}", "/customers/{customer_id}/interactions"} <= set(gets)
    return gets


@pytest.fixture
def merged(api):
    """(survivor, merged id): a merge started, its job not run."""
    survivor = api.create_customer(name="Maria Cruz", email="maria.cruz@example.ph")
    gone = api.create_customer(name="Ma. Luisa dela Cruz", email="luisa@example.ph")
    assert merge(api, survivor["id"], gone["id"]).status == 202
    return survivor, gone["id"]


def _concrete(template: str, customer_id: str) -> str:
    return re.sub(r"{\w+}", lambda m: customer_id if m.group(0) == "{customer_id}" else "x_1", template)


def test_every_read_of_an_unknown_customer_is_404(api):
    answers = {template: api.get(_concrete(template, "cus_nobody")).status for template in _customer_gets()}
    assert answers == dict.fromkeys(answers, 404)


def test_every_read_under_a_merged_id_is_redirected_to_the_survivor(api, merged):
    survivor, gone = merged
    for template in _customer_gets():
        reply = api.get(_concrete(template, gone))
        problem = assert_problem(reply, 308)
        assert problem["merged_into"] == survivor["id"], template
        assert reply.headers["location"] == _concrete(template, survivor["id"]), template


def test_the_redirect_keeps_the_query(api, merged):
    survivor, gone = merged
    reply = api.get(f"/customers/{gone}/interactions?type=purchase&limit=5")
    assert reply.status == 308
    assert reply.headers["location"] == f"/customers/{survivor['id']}/interactions?type=purchase&limit=5"
    followed = api.get(reply.headers["location"])
    assert followed.status == 200 and followed.json["items"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/customers/{id}", {"name": "Luisa Cruz"}),
        ("DELETE", "/customers/{id}", None),
        ("POST", "/customers/{id}/interactions", {"type": "inquiry", "channel": "web", "note": "Kumusta"}),
        ("POST", "/customers/{id}/erase", None),
        ("POST", "/customers/{id}/exports", None),
    ],
)
def test_a_write_to_a_merged_id_is_409_naming_the_survivor(api, merged, method, path, body):
    survivor, gone = merged
    reply = api.request(method, path.format(id=gone), body)
    problem = assert_problem(reply, 409)
    assert problem["merged_into"] == survivor["id"] and problem["type"].endswith(":merged")


def test_a_keyed_write_to_a_merged_id_is_409_and_remembered_so(api, merged):
    survivor, gone = merged
    body = {"type": "inquiry", "channel": "web", "note": "Salamat"}
    headers = {"Idempotency-Key": "alias-write-1"}
    first = api.post(f"/customers/{gone}/interactions", body, headers=headers)
    again = api.post(f"/customers/{gone}/interactions", body, headers=headers)
    assert assert_problem(first, 409)["merged_into"] == survivor["id"]
    assert again.status == 409 and again.json == first.json


def test_a_token_of_the_merged_id_reaches_the_survivors_self_service(client, api, merged):
    survivor, gone = merged
    me = Api(client, token("customer", gone))
    reply = me.get("/me")
    assert reply.status == 200 and reply.json["id"] == survivor["id"]
    assert me.get("/me/interactions").status == 200
    changed = me.patch("/me", {"preferred_name": "Malu"})
    assert changed.status == 200 and changed.json["id"] == survivor["id"]
    assert api.get(f"/customers/{survivor['id']}").json["preferred_name"] == "Malu"


def test_a_token_of_an_unknown_id_still_finds_nothing(client):
    assert_problem(Api(client, token("customer", "cus_nobody")).get("/me"), 404)


def test_a_chain_of_merges_is_followed_to_its_end(api):
    a = api.create_customer(name="Urška Novak", email="urska@example.si")
    b = api.create_customer(name="Urska Novak")
    c = api.create_customer(name="U. Novak")
    visit = api.post(f"/customers/{a['id']}/interactions", {"type": "visit", "channel": "store"}).json
    first = merge(api, b["id"], a["id"]).json
    finish(first["id"])
    second = merge(api, c["id"], b["id"])
    assert second.status == 202
    finish(second.json["id"])
    moved = api.get(f"/customers/{c['id']}/interactions/{visit['id']}").json
    assert moved["merged_from"] == a["id"]  # where it was recorded, not the last hop
    for old in (a["id"], b["id"]):
        reply = api.get(f"/customers/{old}/cases")
        assert reply.status == 308, reply.json
        assert reply.headers["location"] == f"/customers/{c['id']}/cases"
        assert reply.json["merged_into"] == c["id"]
    assert_problem(api.patch(f"/customers/{a['id']}", {"name": "Urška"}), 409)
    [found] = api.get("/customers?email=urska@example.si").json["items"]
    assert found["id"] == c["id"]
    assert Api(api._client, token("customer", a["id"])).get("/me").json["id"] == c["id"]


def test_naming_a_merged_id_as_a_different_person_is_409_naming_the_survivor(api, merged):
    survivor, gone = merged
    other = api.create_customer(name="Luz Peñaflor", email="luz.p@example.ph")
    reply = api.post(f"/customers/{other['id']}/not-duplicate", {"customer_id": gone})
    problem = assert_problem(reply, 409, "customer_id")
    assert problem["merged_into"] == survivor["id"]
