from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

# tests/unit has no __init__.py and there is no pytest `pythonpath` setting (yet), so
# make the project root importable when run as `.venv/bin/pytest tests/unit/...`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from chalicelib.auth import (
    AuthError,
    HS256Verifier,
    JWKSUnavailableError,
    JWKSVerifier,
    Principal,
    bearer_token,
    fetch_jwks_document,
    issue_token,
    verifier_for,
)
from chalicelib.config import Settings

# 64+ bytes, so PyJWT does not warn about short HMAC keys even for HS512.
SECRET = "unit-test-secret-" * 4
OTHER_SECRET = "another-unit-test-secret-" * 3
ISSUER = "crm-test"
AUDIENCE = "crm-api"

POOL_ISSUER = "https://cognito-idp.eu-north-1.amazonaws.com/eu-north-1_TEST"
CLIENT_ID = "testappclientid123"
JWKS_URL = POOL_ISSUER + "/.well-known/jwks.json"
KID = "key-1"


# --------------------------------------------------------------------------- helpers


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "user-1",
        "role": "staff",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def hs_token(payload: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=algorithm)


def hmac_forged(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """Sign by hand: PyJWT refuses to HMAC-sign with a PEM key (its own alg-confusion guard)."""
    signing_input = f"{b64url_json(header)}.{b64url_json(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


@pytest.fixture
def verifier() -> HS256Verifier:
    return HS256Verifier(SECRET, ISSUER, AUDIENCE)


def rejection(verifier: HS256Verifier | JWKSVerifier, token: Any) -> str:
    with pytest.raises(AuthError) as info:
        verifier.verify(token)
    return str(info.value)


# --------------------------------------------------------------------------- HS256


def test_a_valid_token_yields_its_principal(verifier: HS256Verifier) -> None:
    assert verifier.verify(hs_token(claims(sub="u-42", role="customer"))) == Principal("u-42", "customer")


def test_an_issued_token_verifies_and_carries_all_claims(
    verifier: HS256Verifier,
) -> None:
    token = issue_token(
        SECRET,
        "u-7",
        "staff",
        issuer=ISSUER,
        audience=AUDIENCE,
        ttl_seconds=120,
        now=1_700_000_000,
    )
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["sub"] == "u-7"
    assert payload["role"] == "staff"
    assert payload["iss"] == ISSUER
    assert payload["aud"] == AUDIENCE
    assert payload["iat"] == payload["nbf"] == 1_700_000_000
    assert payload["exp"] == 1_700_000_120
    assert isinstance(payload["jti"], str) and payload["jti"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"

    fresh = issue_token(SECRET, "u-7", "staff", issuer=ISSUER, audience=AUDIENCE)
    assert verifier.verify(fresh) == Principal("u-7", "staff")


def test_every_issued_token_has_a_distinct_jti() -> None:
    tokens = [
        issue_token(SECRET, "u", "staff", issuer=ISSUER, audience=AUDIENCE, now=1_700_000_000)
        for _ in range(3)
    ]
    assert len({jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}) == 3


def test_issuing_a_token_with_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError):
        issue_token(SECRET, "u", "admin", issuer=ISSUER, audience=AUDIENCE)


def test_a_token_signed_with_another_secret_is_rejected(
    verifier: HS256Verifier,
) -> None:
    assert rejection(verifier, hs_token(claims(), secret=OTHER_SECRET)) == "token signature is invalid"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_a_token_signed_with_alg_none_is_rejected(verifier: HS256Verifier, alg: str) -> None:
    token = f"{b64url_json({'alg': alg, 'typ': 'JWT'})}.{b64url_json(claims())}."
    assert rejection(verifier, token) == "token algorithm is not accepted"


def test_a_token_without_alg_is_rejected(verifier: HS256Verifier) -> None:
    token = f"{b64url_json({'typ': 'JWT'})}.{b64url_json(claims())}."
    assert rejection(verifier, token) == "token algorithm is not accepted"


def test_an_hs512_token_is_rejected(verifier: HS256Verifier) -> None:
    assert rejection(verifier, hs_token(claims(), algorithm="HS512")) == "token algorithm is not accepted"


def test_an_rs256_token_is_rejected_by_the_hs256_verifier(
    verifier: HS256Verifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    assert rejection(verifier, token) == "token algorithm is not accepted"


def test_a_token_with_a_wrong_issuer_is_rejected(verifier: HS256Verifier) -> None:
    assert rejection(verifier, hs_token(claims(iss="someone-else"))) == "token issuer is not accepted"


def test_a_token_without_an_issuer_is_rejected(verifier: HS256Verifier) -> None:
    assert "'iss'" in rejection(verifier, hs_token(claims(iss=None)))


@pytest.mark.parametrize("aud", ["other-api", ["other-api"], 42, None])
def test_a_token_with_a_wrong_or_missing_audience_is_rejected(verifier: HS256Verifier, aud: Any) -> None:
    assert rejection(verifier, hs_token(claims(aud=aud))) == "token audience is not accepted"


def test_an_hs256_token_with_client_id_instead_of_aud_is_rejected(
    verifier: HS256Verifier,
) -> None:
    token = hs_token(claims(aud=None, client_id=AUDIENCE, token_use="access"))
    assert rejection(verifier, token) == "token audience is not accepted"


def test_an_expired_token_is_rejected(verifier: HS256Verifier) -> None:
    now = int(time.time())
    assert (
        rejection(verifier, hs_token(claims(iat=now - 3600, nbf=now - 3600, exp=now - 60)))
        == "token has expired"
    )


def test_a_token_expired_within_the_leeway_is_still_accepted(
    verifier: HS256Verifier,
) -> None:
    now = int(time.time())
    assert verifier.verify(hs_token(claims(iat=now - 3600, nbf=now - 3600, exp=now - 5))).subject == "user-1"


def test_a_token_without_exp_is_rejected(verifier: HS256Verifier) -> None:
    assert rejection(verifier, hs_token(claims(exp=None))) == "token is missing the 'exp' claim"


def test_a_token_whose_nbf_is_in_the_future_is_rejected(
    verifier: HS256Verifier,
) -> None:
    now = int(time.time())
    assert rejection(verifier, hs_token(claims(nbf=now + 600, exp=now + 1200))) == "token is not yet valid"


def test_a_token_issued_in_the_future_is_rejected(verifier: HS256Verifier) -> None:
    now = int(time.time())
    assert (
        rejection(verifier, hs_token(claims(iat=now + 600, nbf=None, exp=now + 1200)))
        == "token is not yet valid"
    )


def test_a_token_without_iat_and_nbf_is_accepted(verifier: HS256Verifier) -> None:
    assert verifier.verify(hs_token(claims(iat=None, nbf=None))) == Principal("user-1", "staff")


def test_a_token_without_sub_is_rejected(verifier: HS256Verifier) -> None:
    assert rejection(verifier, hs_token(claims(sub=None))) == "token is missing the 'sub' claim"


@pytest.mark.parametrize("sub", ["", "   "])
def test_a_token_with_a_blank_sub_is_rejected(verifier: HS256Verifier, sub: str) -> None:
    assert rejection(verifier, hs_token(claims(sub=sub))) == "token subject is invalid"


def test_a_token_with_a_non_string_sub_is_rejected(verifier: HS256Verifier) -> None:
    assert rejection(verifier, hs_token(claims(sub=42))) == "token subject is invalid"


@pytest.mark.parametrize("role", ["admin", "Staff", "", ["staff"], 1, None])
def test_a_token_with_a_bad_or_missing_role_is_rejected(verifier: HS256Verifier, role: Any) -> None:
    assert rejection(verifier, hs_token(claims(role=role))) == "token has no valid role"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c",
        "....",
        "é.é.é",
        "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln",  # payload is not JSON
        "eyJhbGciOiJIUzI1NiJ9.WzEsMl0.c2ln",  # payload is a JSON list
        "x" * 20_000,
        None,
        b"bytes.are.not.tokens",
    ],
)
def test_a_garbage_token_is_rejected_as_malformed(verifier: HS256Verifier, garbage: Any) -> None:
    message = rejection(verifier, garbage)
    assert message in ("token is malformed", "token signature is invalid")


def test_a_json_list_payload_with_a_valid_signature_is_malformed(
    verifier: HS256Verifier,
) -> None:
    header = b64url_json({"alg": "HS256", "typ": "JWT"})
    payload = b64url(b"[1,2]")
    signature = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert rejection(verifier, f"{header}.{payload}.{b64url(signature)}") == "token is malformed"


def test_an_unsupported_critical_header_is_rejected_without_echoing_it(
    verifier: HS256Verifier,
) -> None:
    header = b64url_json({"alg": "HS256", "crit": ["x-evil-extension-name"], "x-evil-extension-name": 1})
    token = f"{header}.{b64url_json(claims())}.c2ln"
    with pytest.raises(AuthError) as info:
        verifier.verify(token)
    assert str(info.value) == "token is malformed"
    assert "x-evil-extension-name" not in "".join(traceback.format_exception(info.value))


def _token_fragments(token: str) -> list[str]:
    # The whole token and each long-enough segment: short ones ("a") would match plain words.
    return [token] + [segment for segment in token.split(".") if len(segment) >= 8]


def test_error_messages_never_contain_the_token(
    verifier: HS256Verifier,
    caplog: pytest.LogCaptureFixture,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    now = int(time.time())
    bad_tokens = [
        hs_token(claims(), secret=OTHER_SECRET),
        hs_token(claims(exp=now - 3600, iat=now - 7200, nbf=now - 7200)),
        hs_token(claims(nbf=now + 3600)),
        hs_token(claims(iss="nope")),
        hs_token(claims(aud="nope")),
        hs_token(claims(role="root")),
        hs_token(claims(sub=None)),
        hs_token(claims(), algorithm="HS512"),
        jwt.encode(claims(), rsa_key, algorithm="RS256"),
        f"{b64url_json({'alg': 'none'})}.{b64url_json(claims())}.",
        "not-a-jwt-but-a-long-enough-secret-looking-string",
        "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2lnbmF0dXJlLWJ5dGVz",
    ]
    caplog.set_level(logging.DEBUG)
    for token in bad_tokens:
        with pytest.raises(AuthError) as info:
            verifier.verify(token)
        rendered = [
            str(info.value),
            repr(info.value),
            "".join(traceback.format_exception(info.value)),
        ]
        for fragment in _token_fragments(token):
            for text in rendered:
                assert fragment not in text
            assert fragment not in caplog.text


def test_the_secret_is_not_in_the_verifier_repr(verifier: HS256Verifier) -> None:
    assert SECRET not in repr(verifier)


def test_an_hs256_verifier_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        HS256Verifier("", ISSUER, AUDIENCE)


# --------------------------------------------------------------------------- verifier_for


def test_verifier_for_an_hs256_stage_is_an_hs256_verifier() -> None:
    settings = Settings(auth_mode="hs256", jwt_secret=SECRET, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    verifier = verifier_for(settings)
    assert isinstance(verifier, HS256Verifier)
    token = issue_token(SECRET, "u-1", "customer", issuer=ISSUER, audience=AUDIENCE)
    assert verifier.verify(token) == Principal("u-1", "customer")
    assert verifier_for(settings) is verifier


def test_verifier_for_an_hs256_stage_with_an_empty_secret_raises() -> None:
    with pytest.raises(ValueError):
        verifier_for(Settings(auth_mode="hs256", jwt_secret=""))


def test_verifier_for_a_cognito_stage_is_a_jwks_verifier() -> None:
    settings = Settings(
        auth_mode="cognito",
        jwks_url=JWKS_URL,
        jwt_issuer=POOL_ISSUER,
        jwt_audience=CLIENT_ID,
    )
    assert isinstance(verifier_for(settings), JWKSVerifier)


def test_verifier_for_a_cognito_stage_without_a_jwks_url_raises() -> None:
    with pytest.raises(ValueError):
        verifier_for(Settings(auth_mode="cognito", jwks_url=""))


def test_verifier_for_an_unknown_auth_mode_raises() -> None:
    with pytest.raises(ValueError):
        verifier_for(Settings(auth_mode="basic", jwt_secret=SECRET))


# --------------------------------------------------------------------------- RS256 / Cognito


def _new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return _new_rsa_key()


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return _new_rsa_key()


def jwk_for(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return jwk


def jwks_of(*entries: tuple[rsa.RSAPrivateKey, str]) -> dict[str, Any]:
    return {"keys": [jwk_for(key, kid) for key, kid in entries]}


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeFetcher:
    """Serves the given key sets in turn (the last one forever) and counts calls."""

    def __init__(self, *documents: dict[str, Any] | Exception) -> None:
        self.documents = list(documents)
        self.urls: list[str] = []

    @property
    def calls(self) -> int:
        return len(self.urls)

    def __call__(self, url: str) -> dict[str, Any]:
        self.urls.append(url)
        document = self.documents[min(len(self.urls), len(self.documents)) - 1]
        if isinstance(document, Exception):
            raise document
        return document


def id_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "0b7c-uuid",
        "iss": POOL_ISSUER,
        "aud": CLIENT_ID,
        "token_use": "id",
        "cognito:groups": ["staff"],
        "cognito:username": "alice",
        "auth_time": now,
        "iat": now,
        "exp": now + 3600,
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def access_claims(**overrides: Any) -> dict[str, Any]:
    base = id_claims(
        aud=None,
        client_id=CLIENT_ID,
        token_use="access",
        scope="aws.cognito.signin.user.admin",
    )
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def rs_token(
    payload: dict[str, Any],
    key: rsa.RSAPrivateKey,
    kid: str = KID,
    algorithm: str = "RS256",
) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})


def cognito_verifier(fetcher: FakeFetcher, clock: FakeClock | None = None, **kwargs: Any) -> JWKSVerifier:
    return JWKSVerifier(
        JWKS_URL,
        POOL_ISSUER,
        CLIENT_ID,
        fetch_jwks=fetcher,
        clock=clock or FakeClock(),
        **kwargs,
    )


def test_a_valid_cognito_id_token_yields_its_principal(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    fetcher = FakeFetcher(jwks_of((rsa_key, KID)))
    verifier = cognito_verifier(fetcher)
    assert verifier.verify(rs_token(id_claims(), rsa_key)) == Principal("0b7c-uuid", "staff", POOL_ISSUER)
    assert fetcher.urls == [JWKS_URL]


def test_a_valid_cognito_access_token_with_client_id_yields_its_principal(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    verifier = cognito_verifier(FakeFetcher(jwks_of((rsa_key, KID))))
    token = rs_token(access_claims(**{"cognito:groups": ["customer"]}), rsa_key)
    assert verifier.verify(token) == Principal("0b7c-uuid", "customer", POOL_ISSUER)


def test_an_access_token_for_another_app_client_is_rejected(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    verifier = cognito_verifier(FakeFetcher(jwks_of((rsa_key, KID))))
    token = rs_token(access_claims(client_id="someotherclient"), rsa_key)
    assert rejection(verifier, token) == "token audience is not accepted"


def test_a_client_id_token_that_is_not_an_access_token_is_rejected(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    verifier = cognito_verifier(FakeFetcher(jwks_of((rsa_key, KID))))
    token = rs_token(access_claims(token_use="id"), rsa_key)
    assert rejection(verifier, token) == "token audience is not accepted"


def test_a_wrong_aud_is_not_rescued_by_a_matching_client_id(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    verifier = cognito_verifier(FakeFetcher(jwks_of((rsa_key, KID))))
    token = rs_token(access_claims(aud="someotherclient"), rsa_key)
    assert rejection(verifier, token) == "token audience is not accepted"


def test_an_id_token_of_another_user_pool_is_rejected(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    verifier = cognito_verifier(FakeFetcher(jwks_of((rsa_key, KID))))
    token = rs_token(
        id_claims(iss="https://cognito-idp.eu-north-1.amazonaws.com/eu-north-1_OTHER"),
        rsa_key,
    )
    assert rejection(verifier, token) == "token issuer is not accepted"


def test_an_expired_cognito_token_is_rejected(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = cognito_verifier(FakeFetcher(jwks_of((rsa_key, KID))))
    now = int(time.time())
    token = rs_token(id_claims(iat=now - 7200, auth_time=now - 7200, exp=now - 3600), rsa_key)
    assert rejection(verifier, token) == "token has expired"


@pytest.mark.parametrize(
    ("extra", "role"),
    [
        ({"cognito:groups": ["staff"]}, "staff"),
        ({"cognito:groups": ["customer"]}, "customer"),
        ({"cognito:groups": ["customer", "staff"]}, "staff"),
        ({"cognito:groups": ["beta-testers", "customer"]}, "customer"),
        ({"cognito:groups": None, "custom:role": "customer"}, "customer"),
        ({"cognito:groups": ["beta-testers"], "custom:role": "staff"}, "staff"),
    ],
)
def test_the_cognito_role_comes_from_groups_then_custom_role(
    rsa_key: rsa.RSAPrivateKey, extra: dict[str, Any], role: str
) -> None:
    verifier = cognito_verifier(FakeFetcher(jwks_of((rsa_key, KID))))
    assert verifier.verify(rs_token(id_claims(**extra), rsa_key)).role == role


@pytest.mark.parametrize(
    "extra",
    [
        {"cognito:groups": "staff"},
        {"cognito:groups": {"staff": True}},
        {"cognito:groups": None, "custom:role": "admin"},
        {"cognito:groups": ["admins"], "custom:role": "root"},
    ],
)
def test_a_cognito_token_with_a_malformed_group_claim_or_an_unknown_role_is_rejected(
    rsa_key: rsa.RSAPrivateKey, extra: dict[str, Any]
) -> None:
    verifier = cognito_verifier(FakeFetcher(jwks_of((rsa_key, KID))))
    assert rejection(verifier, rs_token(id_claims(**extra), rsa_key)) == "token has no valid role"


@pytest.mark.parametrize(
    "extra",
    [
        {"cognito:groups": None},
        {"cognito:groups": []},
        {"cognito:groups": ["admins"]},
        {"cognito:groups": None, "role": "staff"},  # not a claim Cognito tokens are read for
    ],
)
def test_a_cognito_token_in_no_group_of_ours_is_a_customer_only_through_a_link(
    rsa_key: rsa.RSAPrivateKey, extra: dict[str, Any]
) -> None:
    # A fresh sign-up is in no group: the link the trigger makes is what makes it a customer's.
    verifier = cognito_verifier(FakeFetcher(jwks_of((rsa_key, KID))))
    for claims in (id_claims(**extra), access_claims(**extra)):
        principal = verifier.verify(rs_token(claims, rsa_key))
        assert (principal.role, principal.link_only, principal.issuer) == ("customer", True, POOL_ISSUER)


def test_a_token_signed_by_another_rsa_key_with_the_same_kid_is_rejected(
    rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = cognito_verifier(FakeFetcher(jwks_of((rsa_key, KID))))
    assert rejection(verifier, rs_token(id_claims(), other_rsa_key)) == "token signature is invalid"


def test_an_hs256_token_signed_with_the_rsa_public_key_is_rejected(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    # The classic algorithm-confusion attack: the public key is public, so if the
    # verifier let the token choose HS256 it would use the PEM as an HMAC secret.
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fetcher = FakeFetcher(jwks_of((rsa_key, KID)))
    verifier = cognito_verifier(fetcher)
    for key in (
        public_pem,
        public_pem.strip(),
        json.dumps(jwk_for(rsa_key, KID)).encode(),
    ):
        token = hmac_forged({"alg": "HS256", "typ": "JWT", "kid": KID}, id_claims(), key)
        assert rejection(verifier, token) == "token algorithm is not accepted"
    assert fetcher.calls == 0  # refused on the header, before any key was looked up


@pytest.mark.parametrize("alg", ["none", "RS512", "PS256", "HS256"])
def test_a_cognito_verifier_accepts_only_rs256(rsa_key: rsa.RSAPrivateKey, alg: str) -> None:
    verifier = cognito_verifier(FakeFetcher(jwks_of((rsa_key, KID))))
    if alg == "none":
        token = f"{b64url_json({'alg': 'none', 'kid': KID})}.{b64url_json(id_claims())}."
    elif alg == "HS256":
        token = jwt.encode(id_claims(), SECRET, algorithm="HS256", headers={"kid": KID})
    else:
        token = rs_token(id_claims(), rsa_key, algorithm=alg)
    assert rejection(verifier, token) == "token algorithm is not accepted"


def test_keys_are_cached_between_verifications(rsa_key: rsa.RSAPrivateKey) -> None:
    fetcher = FakeFetcher(jwks_of((rsa_key, KID)))
    clock = FakeClock()
    verifier = cognito_verifier(fetcher, clock, cache_seconds=3600)
    token = rs_token(id_claims(), rsa_key)
    verifier.verify(token)
    clock.advance(3599)
    verifier.verify(token)
    assert fetcher.calls == 1

    clock.advance(1)  # cache_seconds have passed
    verifier.verify(token)
    assert fetcher.calls == 2


def test_an_unknown_kid_refetches_once_and_not_again_within_a_minute(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    fetcher = FakeFetcher(jwks_of((rsa_key, KID)))
    clock = FakeClock()
    verifier = cognito_verifier(fetcher, clock)
    verifier.verify(rs_token(id_claims(), rsa_key))
    assert fetcher.calls == 1

    clock.advance(61)
    assert (
        rejection(verifier, rs_token(id_claims(), rsa_key, kid="unknown")) == "token signing key is unknown"
    )
    assert fetcher.calls == 2

    clock.advance(30)
    assert (
        rejection(verifier, rs_token(id_claims(), rsa_key, kid="unknown-too"))
        == "token signing key is unknown"
    )
    assert fetcher.calls == 2  # within 60 s of the last fetch: no hammering

    clock.advance(31)
    rejection(verifier, rs_token(id_claims(), rsa_key, kid="unknown"))
    assert fetcher.calls == 3


def test_an_unknown_kid_right_after_the_first_fetch_does_not_fetch_twice(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    fetcher = FakeFetcher(jwks_of((rsa_key, KID)))
    verifier = cognito_verifier(fetcher)
    assert (
        rejection(verifier, rs_token(id_claims(), rsa_key, kid="unknown")) == "token signing key is unknown"
    )
    assert fetcher.calls == 1


def test_a_rotated_key_is_picked_up_by_the_unknown_kid_refetch(
    rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    fetcher = FakeFetcher(jwks_of((rsa_key, KID)), jwks_of((rsa_key, KID), (other_rsa_key, "key-2")))
    clock = FakeClock()
    verifier = cognito_verifier(fetcher, clock)
    verifier.verify(rs_token(id_claims(), rsa_key))
    clock.advance(120)
    assert verifier.verify(rs_token(id_claims(), other_rsa_key, kid="key-2")).subject == "0b7c-uuid"
    assert fetcher.calls == 2


def test_cached_keys_stay_in_use_when_a_refresh_fails(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    fetcher = FakeFetcher(jwks_of((rsa_key, KID)), OSError("network down"))
    clock = FakeClock()
    verifier = cognito_verifier(fetcher, clock, cache_seconds=600)
    token = rs_token(id_claims(), rsa_key)
    verifier.verify(token)
    clock.advance(601)
    assert verifier.verify(token).role == "staff"
    assert fetcher.calls == 2
    verifier.verify(token)
    assert fetcher.calls == 2  # the failed refresh is not retried on every request


def test_no_keys_at_all_is_an_auth_error_and_is_retried_after_a_pause(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    fetcher = FakeFetcher(OSError("network down"), {"keys": []}, jwks_of((rsa_key, KID)))
    clock = FakeClock()
    verifier = cognito_verifier(fetcher, clock)
    token = rs_token(id_claims(), rsa_key)
    with pytest.raises(JWKSUnavailableError):
        verifier.verify(token)
    with pytest.raises(JWKSUnavailableError):
        verifier.verify(token)
    assert fetcher.calls == 1

    clock.advance(5)
    with pytest.raises(JWKSUnavailableError):  # a key set with no usable key counts as a failure
        verifier.verify(token)
    clock.advance(5)
    assert verifier.verify(token).role == "staff"
    assert fetcher.calls == 3


def test_unusable_jwks_entries_are_skipped(
    rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    document = jwks_of((rsa_key, KID))
    document["keys"] = [
        "not-a-key",
        {"kty": "oct", "kid": "sym", "k": b64url(b"k" * 32)},
        {**jwk_for(other_rsa_key, "enc-key"), "use": "enc"},
        {**jwk_for(other_rsa_key, "rs512-key"), "alg": "RS512"},
        {"kty": "RSA", "kid": "broken", "n": "AQAB"},
        *document["keys"],
    ]
    verifier = cognito_verifier(FakeFetcher(document))
    assert verifier.verify(rs_token(id_claims(), rsa_key)).role == "staff"
    for kid in ("sym", "enc-key", "rs512-key", "broken"):
        assert (
            rejection(verifier, rs_token(id_claims(), other_rsa_key, kid=kid))
            == "token signing key is unknown"
        )


def test_concurrent_first_verifications_fetch_the_keys_once(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    document = jwks_of((rsa_key, KID))
    calls: list[str] = []

    def slow_fetch(url: str) -> dict[str, Any]:
        calls.append(url)
        time.sleep(0.05)
        return document

    verifier = JWKSVerifier(JWKS_URL, POOL_ISSUER, CLIENT_ID, fetch_jwks=slow_fetch)
    token = rs_token(id_claims(), rsa_key)
    results: list[Principal] = []
    threads = [threading.Thread(target=lambda: results.append(verifier.verify(token))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len(calls) == 1


@pytest.mark.loopback  # its own key-set server, on 127.0.0.1
def test_the_default_fetcher_gets_a_key_set_over_http(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = json.dumps(jwks_of((rsa_key, KID))).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
        verifier = JWKSVerifier(url, POOL_ISSUER, CLIENT_ID)
        assert verifier.verify(rs_token(id_claims(), rsa_key)) == Principal("0b7c-uuid", "staff", POOL_ISSUER)
    finally:
        server.shutdown()
        server.server_close()


def test_the_default_fetcher_refuses_non_http_urls(tmp_path: Any) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": []}))
    with pytest.raises(ValueError):
        fetch_jwks_document(path.as_uri())


# --------------------------------------------------------------------------- bearer_token


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc.def.ghi",
        "bearer abc.def.ghi",
        "BEARER abc.def.ghi",
        "  Bearer   abc.def.ghi  ",
    ],
)
def test_bearer_token_returns_the_token_of_a_bearer_header(header: str) -> None:
    assert bearer_token(header) == "abc.def.ghi"


@pytest.mark.parametrize("header", [None, "", "   "])
def test_bearer_token_without_a_header_is_a_missing_token(header: str | None) -> None:
    with pytest.raises(AuthError, match=r"^missing bearer token$"):
        bearer_token(header)


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "abc.def.ghi", "Token abc"])
def test_bearer_token_with_another_shape_is_rejected_without_echoing_it(
    header: str,
) -> None:
    with pytest.raises(AuthError) as info:
        bearer_token(header)
    assert str(info.value) == "authorization header must be 'Bearer <token>'"
    assert "dXNlcjpwYXNz" not in str(info.value)
