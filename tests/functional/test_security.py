"""Tokens that must never pass, and logs that must never hold tokens or personal data."""

from __future__ import annotations

import base64
import json
import logging
import time

import jwt
import pytest

from chalicelib.config import get_settings
from tests.conftest import token
from tests.functional.conftest import Api, assert_problem


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**overrides) -> dict:
    settings = get_settings()
    now = int(time.time())
    return {
        "sub": "staff-1",
        "role": "staff",
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + 300,
    } | overrides


BAD_TOKENS = {
    "alg none": lambda: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}.",
    "HS512": lambda: jwt.encode(_claims(), get_settings().jwt_secret + "x" * 40, algorithm="HS512"),
    "wrong issuer": lambda: jwt.encode(
        _claims(iss="someone-else"), get_settings().jwt_secret, algorithm="HS256"
    ),
    "wrong audience": lambda: jwt.encode(
        _claims(aud="another-api"), get_settings().jwt_secret, algorithm="HS256"
    ),
    "expired": lambda: jwt.encode(
        _claims(exp=int(time.time()) - 120), get_settings().jwt_secret, algorithm="HS256"
    ),
    "not yet valid": lambda: jwt.encode(
        _claims(nbf=int(time.time()) + 600), get_settings().jwt_secret, algorithm="HS256"
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_a_bad_token_is_401_and_never_echoed(client, kind):
    bad = BAD_TOKENS[kind]()
    reply = Api(client, bad).get("/customers")
    assert_problem(reply, 401)
    body = reply.body.decode()
    for part in bad.split("."):
        if len(part) > 8:
            assert part not in body


def test_logs_hold_neither_tokens_nor_emails_nor_phones(client, caplog, capsys):
    secret_token = token()
    api = Api(client, secret_token)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("crm").setLevel(logging.DEBUG)
        c = api.post(
            "/customers", {"name": "Åsa Öberg", "email": "asa.secret@example.com", "phone": "+46701112233"}
        ).json
        api.post("/customers", {"name": "Dup", "email": "asa.secret@example.com"})
        api.patch(f"/customers/{c['id']}", {"email": "not-an-email"})
        api.get("/customers?email=asa.secret@example.com")
        Api(client, secret_token + "garbage").get("/customers")
        Api(client, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.").get("/customers")
    logged = caplog.text + capsys.readouterr().out
    assert logged, "the requests were not logged at all"
    for secret in (
        secret_token,
        secret_token.split(".")[1],
        "asa.secret@example.com",
        "asa.secret",
        "+46701112233",
        "46701112233",
        "eyJzdWIiOiJ4In0",
    ):
        assert secret not in logged
