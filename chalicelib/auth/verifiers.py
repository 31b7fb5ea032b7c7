"""The two verifiers, ``verify(token) -> Principal`` or ``AuthError``: HS256 tokens signed
with a shared secret, and RS256 tokens of an Amazon Cognito user pool.

Each accepts exactly one algorithm, chosen here and never taken from the token, so
``alg: none`` and algorithm-confusion tokens (an HS256 token "signed" with the RSA public
key) are refused before any key is looked at. PyJWT's exceptions are not chained
(``raise ... from None``) because some of them quote attacker-controlled header values.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from chalicelib.auth.jwks import RS256, CachedKeySet, fetch_jwks_document
from chalicelib.auth.principal import ROLES, AuthError, Principal, cognito_role, role_claim

HS256 = "HS256"

# A Cognito token with many groups is a few KB; anything far beyond is not a token.
MAX_TOKEN_CHARS = 16 * 1024
# Claims every token must carry (``iat``/``nbf`` are checked when present).
REQUIRED_CLAIMS = ("exp", "iss", "sub")
# The claims an error message may name: PyJWT's own text is never passed on.
_NAMED_CLAIMS = frozenset(("exp", "iat", "nbf", "iss", "sub", "aud"))


# PyJWT's exceptions and our fixed, token-free messages for them; any other is "malformed".
_MESSAGES = (
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.ImmatureSignatureError, "token is not yet valid"),
    (jwt.InvalidIssuerError, "token issuer is not accepted"),
    (jwt.InvalidAudienceError, "token audience is not accepted"),
    (jwt.InvalidAlgorithmError, "token algorithm is not accepted"),
    (jwt.InvalidSignatureError, "token signature is invalid"),
    (jwt.exceptions.InvalidSubjectError, "token subject is invalid"),
)


def _auth_error_from(exc: jwt.PyJWTError) -> AuthError:
    if isinstance(exc, jwt.MissingRequiredClaimError) and exc.claim in _NAMED_CLAIMS:
        return AuthError(f"token is missing the '{exc.claim}' claim")
    message = next((text for kind, text in _MESSAGES if isinstance(exc, kind)), "token is malformed")
    return AuthError(message)


def _unverified_header(token: object) -> dict[str, Any]:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise AuthError("token is malformed")
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("token is malformed") from None


def _require_alg(header: Mapping[str, Any], algorithm: str) -> None:
    if header.get("alg") != algorithm:
        raise AuthError("token algorithm is not accepted")


def _decode(token: str, key: Any, algorithm: str, issuer: str, leeway: float) -> dict[str, Any]:
    """Verify signature, ``exp``/``nbf``/``iat`` and ``iss``; audience is ours to check
    because Cognito access tokens carry ``client_id`` instead of ``aud``."""
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            issuer=issuer,
            leeway=leeway,
            options={"require": list(REQUIRED_CLAIMS), "verify_aud": False},
        )
    except jwt.PyJWTError as exc:
        raise _auth_error_from(exc) from None


def _audience_matches(aud: object, audience: str) -> bool:
    if isinstance(aud, str):
        return aud == audience
    if isinstance(aud, list) and aud and all(isinstance(item, str) for item in aud):
        return audience in aud
    return False


def _subject(claims: Mapping[str, Any]) -> str:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise AuthError("token subject is invalid")
    return sub


# --------------------------------------------------------------------------- HS256


class HS256Verifier:
    """Tokens signed with a shared secret (local stage and tests), made by ``issue_token``.

    Accepts only HS256 and requires ``aud`` to name ``audience`` and a string
    ``role`` claim that is one of ``ROLES``.
    """

    def __init__(self, secret: str, issuer: str, audience: str, leeway_seconds: int = 30) -> None:
        if not secret:
            raise ValueError("HS256 verification needs a non-empty secret")
        if not issuer or not audience:
            raise ValueError("HS256 verification needs an issuer and an audience")
        # Fail at start-up, not on the first request, if PyJWT refuses the secret
        # (it rejects PEM/DER/SSH keys and JWK-looking JSON as HMAC secrets).
        try:
            jwt.get_algorithm_by_name(HS256).prepare_key(secret)
        except jwt.PyJWTError:
            raise ValueError("the HS256 secret is not usable as an HMAC key") from None
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._leeway = float(leeway_seconds)

    def __repr__(self) -> str:  # never show the secret
        return f"HS256Verifier(issuer={self._issuer!r}, audience={self._audience!r})"

    def verify(self, token: str) -> Principal:
        header = _unverified_header(token)
        _require_alg(header, HS256)
        claims = _decode(token, self._secret, HS256, self._issuer, self._leeway)
        if not _audience_matches(claims.get("aud"), self._audience):
            raise AuthError("token audience is not accepted")
        subject = _subject(claims)
        role = role_claim(claims, "role")
        if role is None:
            raise AuthError("token has no valid role")
        return Principal(subject=subject, role=role)


def issue_token(
    secret: str,
    subject: str,
    role: str,
    *,
    issuer: str,
    audience: str,
    ttl_seconds: int = 8 * 3600,
    now: float | None = None,
) -> str:
    """An HS256 token that ``HS256Verifier(secret, issuer, audience)`` accepts, carrying
    ``sub``, ``role``, ``iss``, ``aud``, ``iat``, ``nbf``, ``exp`` and ``jti``."""
    if not secret:
        raise ValueError("an HS256 token needs a non-empty secret")
    if not subject:
        raise ValueError("a token needs a subject")
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    issued_at = int(time.time() if now is None else now)
    claims = {
        "sub": subject,
        "role": role,
        "iss": issuer,
        "aud": audience,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + int(ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=HS256)


# --------------------------------------------------------------------------- Cognito


class JWKSVerifier:
    """RS256 tokens of an Amazon Cognito user pool, keys from its JWKS URL.

    * ``iss`` must equal ``issuer`` (``https://cognito-idp.<region>.amazonaws.com/<pool id>``).
    * ID tokens: ``aud`` must equal ``audience`` (the app client id). Access tokens have
      no ``aud``: then ``client_id`` must equal ``audience`` and ``token_use`` be ``"access"``.
    * Role: ``principal.cognito_role``. The app client must not be allowed to write
      ``custom:role``, or users could promote themselves. A token naming no role is a
      ``"customer"`` marked ``link_only``: a fresh sign-up is in no group, and is a customer
      only once its user is linked to one (never staff).

    Keys: ``jwks.CachedKeySet``, cached for ``cache_seconds`` (timed by ``clock``).
    ``exp``/``nbf``/``iat`` are checked against the real time.
    """

    def __init__(
        self,
        jwks_url: str,
        issuer: str,
        audience: str,
        *,
        fetch_jwks: Callable[[str], dict] | None = None,
        cache_seconds: int = 3600,
        clock: Callable[[], float] = time.time,
        leeway_seconds: int = 30,
    ) -> None:
        if not jwks_url:
            raise ValueError("JWKS verification needs a JWKS URL")
        if not issuer or not audience:
            raise ValueError("JWKS verification needs an issuer and an audience")
        self._jwks_url = jwks_url
        self._issuer = issuer
        self._audience = audience
        fetch = fetch_jwks if fetch_jwks is not None else fetch_jwks_document
        self._keys = CachedKeySet(jwks_url, fetch, cache_seconds, clock)
        self._leeway = float(leeway_seconds)

    def __repr__(self) -> str:
        return (
            f"JWKSVerifier(jwks_url={self._jwks_url!r}, issuer={self._issuer!r}, audience={self._audience!r})"
        )

    def verify(self, token: str) -> Principal:
        header = _unverified_header(token)
        # Before any key lookup, so HS256/none tokens never trigger a JWKS fetch.
        _require_alg(header, RS256)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("token signing key is unknown")
        claims = _decode(token, self._keys.key(kid), RS256, self._issuer, self._leeway)
        self._check_audience(claims)
        subject = _subject(claims)
        role = cognito_role(claims)
        if role is None:
            return Principal(subject=subject, role="customer", issuer=self._issuer, link_only=True)
        return Principal(subject=subject, role=role, issuer=self._issuer)

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        if "aud" in claims:
            accepted = _audience_matches(claims["aud"], self._audience)
        else:
            accepted = claims.get("token_use") == "access" and claims.get("client_id") == self._audience
        if not accepted:
            raise AuthError("token audience is not accepted")
