from __future__ import annotations

import pytest

from tests.functional.conftest import assert_problem


def test_malformed_json_is_400(api):
    assert_problem(api.post("/customers", raw='{"name": "Åsa",'), 400)
    assert api.get("/customers").json["items"] == []


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "latin-1"])
def test_json_in_another_encoding_than_utf8_is_400(api, encoding):
    problem = assert_problem(api.post("/customers", raw='{"name": "Åsa Öberg"}'.encode(encoding)), 400)
    assert "UTF-8" in problem["detail"]
    assert api.get("/customers").json["items"] == []


@pytest.mark.parametrize("raw", ["[]", '"Åsa"', "42", "null"])
def test_a_json_body_that_is_not_an_object_is_400(api, raw):
    assert_problem(api.post("/customers", raw=raw), 400)


def test_an_empty_body_is_400(api):
    assert_problem(api.post("/customers", raw=""), 400)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_json_is_415(api, content_type):
    reply = api.post("/customers", raw="name=Åsa", headers={"Content-Type": content_type})
    assert_problem(reply, 415)
    assert api.get("/customers").json["items"] == []


def test_a_json_body_sent_without_content_type_is_415(client, staff_token):
    response = client.http.post(
        "/customers", headers={"Authorization": f"Bearer {staff_token}"}, body='{"name": "Åsa"}'
    )
    assert response.status_code == 415
    assert response.headers["Content-Type"] == "application/problem+json"


def test_json_with_a_charset_parameter_is_accepted(api):
    reply = api.post(
        "/customers", raw='{"name": "Åsa"}', headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert reply.status == 201


def test_a_body_over_1_mb_is_413_and_writes_nothing(api):
    raw = '{"name": "Åsa", "attributes": {"blob": "' + "x" * (1024 * 1024) + '"}}'
    assert_problem(api.post("/customers", raw=raw), 413)
    assert api.get("/customers").json["items"] == []


def test_a_wrong_type_is_named(api):
    assert_problem(
        api.post("/customers", {"name": 42, "tags": "vip", "attributes": {"a": 1}}),
        400,
        "name",
        "tags",
        "attributes.a",
    )


def test_an_unsupported_method_is_a_problem(api):
    reply = api.request("PUT", "/customers")
    assert reply.status == 405
    assert reply.content_type == "application/problem+json"


def test_a_rejected_interaction_writes_nothing(api):
    c = api.create_customer()
    bad = {
        "type": "purchase",
        "channel": "web",
        "currency": "EUR",
        "items": [{"sku": "A", "name": "a", "quantity": 1, "unit_price": "1.001"}],
    }
    assert_problem(api.post(f"/customers/{c['id']}/interactions", bad), 400, "items.0.unit_price")
    assert api.get(f"/customers/{c['id']}/interactions").json["items"] == []


def test_problems_are_rfc_9457_shaped(api):
    problem = assert_problem(api.get("/customers/cus_nope"), 404)
    assert problem["type"].startswith("urn:problem-type:crm:")
    assert problem["instance"] == "/customers/cus_nope"


def test_an_unexpected_failure_is_a_500_problem_without_internals(api, monkeypatch):
    from chalicelib.store.customers import CustomerRepository

    def broken(self, customer_id):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(CustomerRepository, "get", broken)
    reply = api.get("/customers/cus_x/interactions")
    assert_problem(reply, 500)
    assert b"secret internals" not in reply.body


def _bodyless_writes(api) -> list[tuple[str, str, tuple[str, ...]]]:
    doc = api.get("/openapi.json", auth=False).json
    return [
        (method.upper(), path, tuple(operation["x-roles"]))
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        if method in ("post", "put", "patch", "delete") and "requestBody" not in operation
    ]


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [("not json", "text/plain"), ('{"reason": "x"}', "application/json"), ("[1]", "application/json")],
)
def test_a_route_that_takes_no_body_refuses_one_naming_body(api, raw, content_type):
    routes = _bodyless_writes(api)
    assert {(m, p) for m, p, _ in routes} >= {
        ("POST", "/customers/{customer_id}/erase"),
        ("POST", "/customers/{customer_id}/exports"),
        ("POST", "/me/exports"),
        ("POST", "/email-confirmations/{token}"),
        ("PUT", "/customers/{customer_id}/identities/{subject}"),
        ("DELETE", "/customers/{customer_id}/identities/{subject}"),
        ("DELETE", "/customers/{customer_id}"),
    }
    customer = api.create_customer()
    for method, template, roles in routes:
        caller = api if not roles or "staff" in roles else api.as_role(roles[0], customer["id"])
        path = (
            template.replace("{customer_id}", customer["id"])
            .replace("{token}", "t")
            .replace("{subject}", "user-1")
        )
        reply = caller.request(method, path, raw=raw, headers={"Content-Type": content_type})
        problem = assert_problem(reply, 400, "body")
        assert problem["errors"] == [{"field": "body", "message": "this route takes no body"}], path
    assert api.get(f"/customers/{customer['id']}").status == 200  # neither erased nor deleted
    assert api.get(f"/customers/{customer['id']}/identities").json["items"] == []


@pytest.mark.parametrize("raw", ["", " \r\n\t "])
def test_an_empty_or_blank_body_is_no_body(api, raw):
    customer = api.create_customer()
    reply = api.request("POST", f"/customers/{customer['id']}/exports", raw=raw)
    assert reply.status == 202, reply.json
    assert api.request("DELETE", f"/customers/{customer['id']}", raw=raw).status == 204
