from __future__ import annotations

import json
import time

import pytest

from tests.functional.conftest import Api, assert_problem


def test_the_openapi_document_is_served_without_auth(api):
    reply = api.get("/openapi.json", auth=False)
    assert reply.status == 200
    doc = reply.json
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_route_is_described_in_the_openapi_document(api, chalice_app):
    doc = api.get("/openapi.json", auth=False).json
    served = {
        (path, method.lower())
        for path, methods in chalice_app.routes.items()
        for method in methods
        if method != "OPTIONS"
    }
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert served == described


def test_every_reference_in_the_document_resolves(api):
    doc = api.get("/openapi.json", auth=False).json
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    names = {ref.rsplit("/", 1)[1] for ref in refs}
    assert names and names <= set(doc["components"]["schemas"])


def test_operations_describe_bodies_parameters_errors_and_security(api):
    doc = api.get("/openapi.json", auth=False).json
    create = doc["paths"]["/customers"]["post"]
    body = doc["components"]["schemas"]["CustomerCreate"]
    assert body["required"] == ["name"] and body["additionalProperties"] is False
    assert {"201", "400", "401", "403", "409", "413", "415"} <= set(create["responses"])
    assert create["responses"]["400"]["content"]["application/problem+json"]
    assert create["security"] == [{"bearerAuth": []}]
    listing = doc["paths"]["/customers"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"limit", "cursor", "email", "q", "tier"}
    interaction = doc["paths"]["/customers/{customer_id}/interactions"]["post"]
    schema = interaction["requestBody"]["content"]["application/json"]["schema"]
    assert schema["discriminator"]["propertyName"] == "type"
    assert doc["paths"]["/health"]["get"]["security"] == []


@pytest.fixture
def origin_allowed():
    return "http://localhost:3000"


def test_a_preflight_from_an_allowed_origin_is_answered(client, origin_allowed):
    response = client.http.request(
        "OPTIONS",
        "/customers",
        headers={
            "Origin": origin_allowed,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == origin_allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


def test_responses_to_an_allowed_origin_carry_cors_headers(client, staff_token, origin_allowed):
    response = client.http.get(
        "/customers", headers={"Origin": origin_allowed, "Authorization": f"Bearer {staff_token}"}
    )
    assert response.headers["Access-Control-Allow-Origin"] == origin_allowed
    assert "ETag" in response.headers["Access-Control-Expose-Headers"]


def test_an_origin_not_in_the_configuration_gets_no_cors_headers(client):
    response = client.http.request("OPTIONS", "/customers", headers={"Origin": "https://evil.example.net"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cognito_rs256_tokens_are_verified_against_the_jwks(client, monkeypatch):
    """The cloud path: RS256 tokens of a Cognito user pool, keys from its JWKS."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    from chalicelib.api import authentication
    from chalicelib.auth import JWKSVerifier

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "k1", "alg": "RS256"}
    issuer = "https://cognito-idp.eu-north-1.amazonaws.com/eu-north-1_TEST"
    verifier = JWKSVerifier(
        f"{issuer}/.well-known/jwks.json", issuer, "client-123", fetch_jwks=lambda url: {"keys": [jwk]}
    )
    monkeypatch.setattr(authentication, "_verifier", lambda: verifier)
    now = int(time.time())
    claims = {
        "sub": "u1",
        "iss": issuer,
        "client_id": "client-123",
        "token_use": "access",
        "cognito:groups": ["staff"],
        "iat": now,
        "exp": now + 300,
    }
    good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    assert Api(client, good).get("/customers").status == 200
    customer = jwt.encode(
        claims | {"cognito:groups": ["customer"]}, key, algorithm="RS256", headers={"kid": "k1"}
    )
    assert_problem(Api(client, customer).get("/customers"), 403)
    wrong_issuer = jwt.encode(
        claims | {"iss": "https://elsewhere"}, key, algorithm="RS256", headers={"kid": "k1"}
    )
    assert_problem(Api(client, wrong_issuer).get("/customers"), 401)
    from tests.conftest import token

    assert_problem(Api(client, token()).get("/customers"), 401)


def test_every_authenticated_post_documents_the_idempotency_key(api):
    doc = api.get("/openapi.json", auth=False).json
    posts = [(path, ops["post"]) for path, ops in doc["paths"].items() if ops.get("post", {}).get("x-roles")]
    assert posts
    for path, op in posts:
        names = {p["name"] for p in op["parameters"]}
        assert "Idempotency-Key" in names, path
        assert {"409", "422"} <= set(op["responses"]), path


def test_the_served_document_passes_the_openapi_spec_validator(api):
    from openapi_spec_validator import OpenAPIV31SpecValidator

    doc = api.get("/openapi.json", auth=False).json
    assert [error.message for error in OpenAPIV31SpecValidator(doc).iter_errors()] == []


def test_the_contract_every_functional_test_keeps_is_the_served_document(api):
    from tests.functional.contract import contract

    assert api.get("/openapi.json", auth=False).json == contract().document


def test_each_complaint_body_has_its_own_schema(api):
    doc = api.get("/openapi.json", auth=False).json
    schemas = doc["components"]["schemas"]

    def body(path):
        return doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]

    assert body("/me/complaints") == {"$ref": "#/components/schemas/MyComplaintIn"}
    assert set(schemas["MyComplaintIn"]["properties"]) == {"subject", "description", "severity", "channel"}
    staff = body("/customers/{customer_id}/interactions")
    assert "#/components/schemas/ComplaintIn" in staff["discriminator"]["mapping"].values()
    assert schemas["ComplaintIn"]["properties"]["type"]["const"] == "complaint"


def test_two_models_of_one_name_cannot_both_enter_the_document():
    from chalicelib.api.openapi import _add_components

    components = {"ComplaintIn": {"type": "object", "properties": {"type": {"const": "complaint"}}}}
    _add_components({"ComplaintIn": dict(components["ComplaintIn"])}, components)  # the same one: fine
    with pytest.raises(ValueError, match="ComplaintIn"):
        _add_components({"ComplaintIn": {"type": "object"}}, components)


def test_a_patch_field_that_cannot_be_cleared_has_no_null_default(api):
    patch = api.get("/openapi.json", auth=False).json["components"]["schemas"]["CustomerPatch"]["properties"]
    assert patch["name"]["type"] == "string" and "default" not in patch["name"]
    assert "default" not in patch["marketing_consent"] and "default" not in patch["tags"]
    assert {"type": "null"} in patch["preferred_name"]["anyOf"]  # this one may be cleared


def test_the_headers_the_server_sends_are_documented(api):
    doc = api.get("/openapi.json", auth=False).json
    create = doc["paths"]["/customers"]["post"]["responses"]
    assert create["201"]["headers"]["Location"]["required"] is True
    assert create["201"]["headers"]["ETag"]["required"] is True
    assert create["201"]["headers"]["Idempotent-Replayed"]["required"] is False
    assert "Idempotent-Replayed" in create["409"]["headers"]  # a remembered conflict is replayed too
    assert create["409"]["headers"]["Retry-After"]["schema"]["pattern"] == "^[0-9]+$"
    assert create["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert doc["paths"]["/cases/{case_id}"]["patch"]["responses"]["200"]["headers"]["ETag"]["required"]
    assert doc["paths"]["/me/orders"]["post"]["responses"]["201"]["headers"]["Location"]["required"]
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            assert "500" in operation["responses"], path


def test_phone_numbers_written_as_people_write_them_are_valid_in_the_document_too(api):
    # The functional tests' contract check fails a 201 whose request body the document rejects.
    for phone in ("+46 70-123 45 67", "+44 (0)20 7946 0958", "+358.40.123.4567"):
        reply = api.post("/customers", {"name": "Åsa Öberg", "phone": phone})
        assert reply.status == 201, reply.json
        assert reply.json["phone"] == "+" + "".join(c for c in phone.replace("(0)", "") if c.isdigit())


def test_a_browser_on_an_allowed_origin_may_read_www_authenticate(api, origin_allowed):
    reply = api.get("/customers", auth=False, headers={"Origin": origin_allowed})
    assert_problem(reply, 401)
    assert reply.headers["access-control-allow-origin"] == origin_allowed
    exposed = {h.strip().lower() for h in reply.headers["access-control-expose-headers"].split(",")}
    assert {"www-authenticate", "etag", "location", "idempotent-replayed", "retry-after"} <= exposed


# Each JSON type's own keywords: on another type JSON Schema ignores them (a `maxLength` on an
# object limits nothing), and a name that is no keyword at all (`le`) is ignored everywhere.
_KEYWORDS = {
    "string": {"minLength", "maxLength", "pattern", "format"},
    "object": {"properties", "required", "additionalProperties", "propertyNames"}
    | {"minProperties", "maxProperties"},
    "array": {"items", "prefixItems", "minItems", "maxItems", "uniqueItems"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
    "boolean": set(),
    "null": set(),
}
_ANY_TYPE = {"type", "title", "description", "default", "examples", "enum", "const"}
_ANY_TYPE |= {"anyOf", "oneOf", "allOf", "not", "$ref", "discriminator"}


def _misplaced_keywords(node, where: str) -> list[str]:
    found = []
    if isinstance(node, dict):
        kind = node.get("type")
        if isinstance(kind, str):
            found += [f"{where}: {key} on {kind}" for key in node if key not in _ANY_TYPE | _KEYWORDS[kind]]
        for key, value in node.items():
            if key in ("properties", "$defs") and isinstance(value, dict):
                for name, schema in value.items():
                    found += _misplaced_keywords(schema, f"{where}/{key}/{name}")
            elif key not in ("examples", "default", "enum", "const"):
                found += _misplaced_keywords(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _misplaced_keywords(value, f"{where}/{i}")
    return found


def test_every_constraint_in_the_document_is_a_keyword_of_the_type_it_constrains(api):
    doc = api.get("/openapi.json", auth=False).json
    parameters = {
        f"{method} {path} {parameter['name']}": parameter["schema"]
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        for parameter in operation["parameters"]
    }
    found = _misplaced_keywords(doc["components"]["schemas"], "#/components/schemas")
    found += [f for where, schema in parameters.items() for f in _misplaced_keywords(schema, where)]
    assert found == []
    names = doc["components"]["schemas"]["ProductPatch"]["properties"]["names"]
    assert (names["minProperties"], names["maxProperties"]) == (1, 50)
    quantity = doc["components"]["schemas"]["LineItemIn"]["properties"]["quantity"]
    assert (quantity["exclusiveMinimum"], quantity["maximum"]) == (0, 1_000_000)


def test_a_misplaced_keyword_is_found():
    assert _misplaced_keywords({"type": "object", "maxLength": 50}, "names") == ["names: maxLength on object"]
    assert _misplaced_keywords({"anyOf": [{"type": "integer", "le": 5}]}, "n") == ["n/anyOf/0: le on integer"]


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("/products/SKU-1", {"currency": None, "active": None}, ["currency", "active"]),
        ("/products/SKU-1", {"names": None, "price": None}, ["names", "price"]),
        ("/products/SKU-1", {}, ["body"]),
        ("/cases/cas_1", {}, ["body"]),
        ("/cases/cas_1", {"status": None}, ["status"]),
        ("/customers/cus_1", {"name": None, "tags": None}, ["name", "tags"]),
    ],
)
def test_a_patch_the_server_refuses_as_null_or_empty_is_invalid_in_the_document_too(api, path, body, fields):
    from tests.functional.contract import contract

    assert_problem(api.patch(path, body), 400, *fields)
    assert contract().request_body_errors("PATCH", contract().template(path), body)


def test_a_patch_that_may_be_empty_or_clear_fields_is_accepted_as_the_document_says(api):
    # The contract check fails any 200 whose body the document rejects.
    customer = api.create_customer(email="asa@example.com")
    assert api.patch(f"/customers/{customer['id']}", {}).status == 200
    assert api.as_role("customer", customer["id"]).patch("/me", {}).status == 200
    cleared = api.patch(f"/customers/{customer['id']}", {"email": None, "preferred_name": None})
    assert cleared.status == 200 and cleared.json["email"] is None
    doc = api.get("/openapi.json", auth=False).json["components"]["schemas"]
    assert "minProperties" not in doc["CustomerPatch"] and "minProperties" not in doc["MePatch"]
    assert doc["CasePatch"]["minProperties"] == doc["ProductPatch"]["minProperties"] == 1


@pytest.mark.parametrize(
    ("query", "refused", "first"),
    [
        ("email=asa@example.com&q=asa", "q", "email"),
        ("email=asa@example.com&tier=gold", "tier", "email"),
        ("tier=platinum&q=ab", "tier", "q"),
        ("q=ab&tier=platinum", "tier", "q"),
    ],
)
def test_every_combination_of_customer_filters_the_server_refuses_is_described(api, query, refused, first):
    problem = assert_problem(api.get(f"/customers?{query}"), 400, refused)
    assert {"field": refused, "message": f"cannot be combined with {first}"} in problem["errors"]
    described = api.get("/openapi.json", auth=False).json["paths"]["/customers"]["get"]["description"]
    assert "`email`, `q` and `tier` exclude one another" in described


def test_query_parameters_are_not_nullable_in_the_document(api):
    doc = api.get("/openapi.json", auth=False).json
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            for parameter in operation["parameters"]:
                schema = json.dumps(parameter["schema"])
                assert '"null"' not in schema and '"default": null' not in schema, (path, parameter)
