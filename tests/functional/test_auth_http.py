"""Authentication and the role/route matrix, through the HTTP interface."""

from __future__ import annotations

import re
import time

import pytest

from chalicelib.api.http import ROUTES
from tests.conftest import token
from tests.functional.conftest import Api, assert_problem

PUBLIC = {
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/swagger-ui-bundle.js"),
    ("GET", "/docs/swagger-ui.css"),
    ("GET", "/email-confirmations/{token}"),
    ("POST", "/email-confirmations/{token}"),
    ("GET", "/unsubscribe"),
    ("POST", "/unsubscribe"),
    ("POST", "/webhooks/{source_id}"),
}
# Every route, classified: the roles that may call it. A new route fails the matrix test
# until it is added here.
ROLE_MATRIX = {
    ("GET", "/health"): {"anyone"},
    ("GET", "/openapi.json"): {"anyone"},
    ("GET", "/docs"): {"anyone"},
    ("GET", "/docs/swagger-ui-bundle.js"): {"anyone"},
    ("GET", "/docs/swagger-ui.css"): {"anyone"},
    ("GET", "/email-confirmations/{token}"): {"anyone"},
    ("POST", "/email-confirmations/{token}"): {"anyone"},
    ("POST", "/customers"): {"staff"},
    ("POST", "/customers/batch"): {"staff"},
    ("GET", "/customers"): {"staff"},
    ("GET", "/customers/{customer_id}"): {"staff"},
    ("PATCH", "/customers/{customer_id}"): {"staff"},
    ("DELETE", "/customers/{customer_id}"): {"staff"},
    ("POST", "/customers/{customer_id}/interactions"): {"staff"},
    ("POST", "/customers/{customer_id}/interactions/batch"): {"staff"},
    ("GET", "/customers/{customer_id}/interactions"): {"staff"},
    ("GET", "/customers/{customer_id}/interactions/{interaction_id}"): {"staff"},
    ("GET", "/customers/{customer_id}/loyalty"): {"staff"},
    ("GET", "/customers/{customer_id}/habits"): {"staff"},
    ("GET", "/customers/{customer_id}/cases"): {"staff"},
    ("GET", "/customers/{customer_id}/audit"): {"staff"},
    ("GET", "/customers/{customer_id}/identities"): {"staff"},
    ("PUT", "/customers/{customer_id}/identities/{subject}"): {"staff"},
    ("DELETE", "/customers/{customer_id}/identities/{subject}"): {"staff"},
    ("GET", "/me"): {"customer"},
    ("PATCH", "/me"): {"customer"},
    ("GET", "/me/interactions"): {"customer"},
    ("GET", "/me/interactions/{interaction_id}"): {"customer"},
    ("POST", "/me/orders"): {"customer"},
    ("POST", "/me/complaints"): {"customer"},
    ("GET", "/me/cases"): {"customer"},
    ("GET", "/me/cases/{case_id}"): {"customer"},
    ("GET", "/me/export"): {"customer"},
    ("GET", "/customers/{customer_id}/export"): {"staff"},
    ("POST", "/customers/{customer_id}/erase"): {"staff"},
    ("POST", "/customers/{customer_id}/exports"): {"staff"},
    ("POST", "/me/exports"): {"customer"},
    ("GET", "/jobs/{job_id}"): {"staff"},
    ("GET", "/me/jobs/{job_id}"): {"customer"},
    ("GET", "/cases"): {"staff"},
    ("GET", "/cases/{case_id}"): {"staff"},
    ("GET", "/cases/{case_id}/history"): {"staff"},
    ("PATCH", "/cases/{case_id}"): {"staff"},
    ("GET", "/products"): {"staff", "customer"},
    ("GET", "/products/{sku}"): {"staff", "customer"},
    ("POST", "/products"): {"staff"},
    ("PATCH", "/products/{sku}"): {"staff"},
    ("GET", "/products/{sku}/related"): {"staff", "customer"},
    ("GET", "/customers/{customer_id}/recommendations"): {"staff"},
    ("GET", "/me/recommendations"): {"customer"},
    ("POST", "/segments"): {"staff"},
    ("GET", "/segments"): {"staff"},
    ("GET", "/segments/{segment_id}"): {"staff"},
    ("PATCH", "/segments/{segment_id}"): {"staff"},
    ("DELETE", "/segments/{segment_id}"): {"staff"},
    ("GET", "/segments/{segment_id}/members"): {"staff"},
    ("POST", "/campaigns"): {"staff"},
    ("GET", "/campaigns"): {"staff"},
    ("GET", "/campaigns/{campaign_id}"): {"staff"},
    ("PATCH", "/campaigns/{campaign_id}"): {"staff"},
    ("DELETE", "/campaigns/{campaign_id}"): {"staff"},
    ("POST", "/campaigns/{campaign_id}/preview"): {"staff"},
    ("POST", "/campaigns/{campaign_id}/runs"): {"staff"},
    ("GET", "/campaigns/{campaign_id}/runs"): {"staff"},
    ("GET", "/campaigns/{campaign_id}/runs/{run_id}"): {"staff"},
    ("GET", "/campaigns/{campaign_id}/runs/{run_id}/recipients"): {"staff"},
    ("GET", "/unsubscribe"): {"anyone"},
    ("POST", "/unsubscribe"): {"anyone"},
    ("POST", "/webhook-sources"): {"staff"},
    ("GET", "/webhook-sources"): {"staff"},
    ("GET", "/webhook-sources/{source_id}"): {"staff"},
    ("DELETE", "/webhook-sources/{source_id}"): {"staff"},
    ("POST", "/webhook-sources/{source_id}/rotate-secret"): {"staff"},
    ("GET", "/webhook-sources/{source_id}/deliveries"): {"staff"},
    # The signature is the authentication: no token.
    ("POST", "/webhooks/{source_id}"): {"anyone"},
    ("POST", "/webhook-subscriptions"): {"staff"},
    ("GET", "/webhook-subscriptions"): {"staff"},
    ("GET", "/webhook-subscriptions/{subscription_id}"): {"staff"},
    ("PATCH", "/webhook-subscriptions/{subscription_id}"): {"staff"},
    ("DELETE", "/webhook-subscriptions/{subscription_id}"): {"staff"},
    ("POST", "/webhook-subscriptions/{subscription_id}/rotate-secret"): {"staff"},
    ("GET", "/webhook-subscriptions/{subscription_id}/deliveries"): {"staff"},
    ("POST", "/webhook-subscriptions/{subscription_id}/deliveries/{delivery_id}/retry"): {"staff"},
    ("POST", "/webhook-subscriptions/{subscription_id}/replay"): {"staff"},
    ("POST", "/customers/{customer_id}/merge"): {"staff"},
    ("GET", "/merges/{merge_id}"): {"staff"},
    ("GET", "/customers/{customer_id}/duplicates"): {"staff"},
    ("POST", "/customers/{customer_id}/not-duplicate"): {"staff"},
    ("POST", "/imports"): {"staff"},
    ("GET", "/imports/{import_id}"): {"staff"},
    ("GET", "/imports/{import_id}/errors"): {"staff"},
    ("GET", "/imports/{import_id}/results"): {"staff"},
    ("POST", "/imports/{import_id}/cancel"): {"staff"},
}
# Public routes whose path names a resource (not a token): an unknown one is 404.
NAMED_IN_PATH = {"/webhooks/{source_id}"}


# Public routes whose token is a query parameter rather than a path segment.
TOKEN_IN_QUERY = {"/unsubscribe"}


def _concrete(path: str) -> str:
    concrete = re.sub(r"{\w+}", "x_unknown", path)
    return f"{concrete}?token=x_unknown" if path in TOKEN_IN_QUERY else concrete


def test_every_route_is_classified_in_the_role_matrix(chalice_app):
    served = {
        (method, path)
        for path, methods in chalice_app.routes.items()
        for method in methods
        if method != "OPTIONS"
    }
    assert served == set(ROLE_MATRIX)
    assert {(r.method, r.path) for r in ROUTES} == set(ROLE_MATRIX)


@pytest.mark.parametrize(("method", "path"), sorted(ROLE_MATRIX))
def test_the_role_matrix(client, method, path):
    allowed = ROLE_MATRIX[(method, path)]
    spec = next(r for r in ROUTES if (r.method, r.path) == (method, path))
    assert set(spec.roles or ("anyone",)) == allowed
    body = {} if method in ("POST", "PATCH") else None
    for role in ("staff", "customer"):
        reply = Api(client, token(role, "cus_someone")).request(method, _concrete(path), body)
        if role in allowed or "anyone" in allowed:
            assert reply.status not in (401, 403), (role, reply.json)
        else:
            assert_problem(reply, 403)
    anonymous = Api(client, None).request(method, _concrete(path), body)
    if "anyone" in allowed:
        # A public route with a token in its path or query gets a made-up one: 400, not a 401.
        made_up = "{" in path or path in TOKEN_IN_QUERY
        expected = 404 if path in NAMED_IN_PATH else 400 if made_up else 200
        assert anonymous.status == expected, anonymous.json
    else:
        assert_problem(anonymous, 401)


def test_health_needs_no_token(api):
    reply = api.get("/health", auth=False)
    assert (reply.status, reply.json) == (200, {"status": "ok"})


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not.a.jwt",
        "Bearer abc",
        "token-without-scheme",
    ],
)
def test_a_malformed_authorization_is_401(client, header):
    reply = Api(client, None).get("/customers", headers={"Authorization": header})
    problem = assert_problem(reply, 401)
    assert "not.a.jwt" not in problem["detail"]
    assert reply.headers.get("www-authenticate", "").startswith("Bearer")


def test_a_token_signed_with_another_key_is_401(client):
    from chalicelib.auth import issue_token

    bad = issue_token(
        "another-key-of-at-least-32-bytes-long!!", "s", "staff", issuer="crm-local", audience="crm-api"
    )
    reply = Api(client, bad).get("/customers")
    problem = assert_problem(reply, 401)
    assert bad not in reply.body.decode()
    assert "signature" in problem["detail"]


def test_an_expired_token_is_401(client):
    expired = token(ttl_seconds=60, now=time.time() - 3600)
    assert "expired" in assert_problem(Api(client, expired).get("/customers"), 401)["detail"]


def test_a_token_not_yet_valid_is_401(client):
    future = token(now=time.time() + 3600)
    assert_problem(Api(client, future).get("/customers"), 401)


def test_an_unknown_role_is_401(client):
    import jwt

    from chalicelib.config import get_settings

    settings = get_settings()
    claims = {
        "sub": "s",
        "role": "admin",
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "exp": int(time.time()) + 60,
    }
    admin = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    assert_problem(Api(client, admin).get("/customers"), 401)


def test_a_customer_token_is_403_on_staff_routes(client, api):
    c = api.create_customer()
    customer_api = Api(client, token("customer", c["id"]))
    assert_problem(customer_api.get(f"/customers/{c['id']}"), 403)
    assert_problem(customer_api.get("/customers"), 403)
