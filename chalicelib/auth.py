"""Bearer-token verification: who is calling, and in which role.

Two verifiers share one contract, ``verify(token) -> Principal`` or ``AuthError``:

* ``HS256Verifier`` (local stage, tests): tokens signed with a shared secret, made by
  ``issue_token``. They carry ``sub``, ``role``, ``iss``, ``aud``, ``iat``, ``nbf``,
  ``exp`` and ``jti``.
* ``JWKSVerifier`` (cloud): RS256 ID or access tokens of an Amazon Cognito user pool,
  checked against the pool's published JSON Web Key Set, which is cached.

Each verifier accepts exactly one algorithm, chosen here and never taken from the
token, so ``alg: none`` and algorithm-confusion tokens (an HS256 token "signed" with
the RSA public key) are refused before any key is looked at.

No message, log line or exception chain produced here contains the token or any
part of it: a token is a credential. PyJWT's own exceptions are not chained
(``raise ... from None``) because some of them quote attacker-controlled header
values.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt

from chalicelib.config import Settings

logger = logging.getLogger(__name__)

ROLES = ("staff", "customer")

HS256 = "HS256"
RS256 = "RS256"

# A Cognito token with many groups is a few KB; anything far beyond is not a token.
MAX_TOKEN_CHARS = 16 * 1024
# Claims every token must carry (``iat``/``nbf`` are checked when present).
REQUIRED_CLAIMS = ("exp", "iss", "sub")
# An unknown ``kid`` refetches the key set, but no more often than this.
MIN_REFETCH_SECONDS = 60.0
# While no key set was ever fetched successfully, retry sooner than that.
EMPTY_CACHE_RETRY_SECONDS = 5.0
JWKS_FETCH_TIMEOUT_SECONDS = 3.0
MAX_JWKS_BYTES = 512 * 1024


@dataclass(frozen=True)
class Principal:
    subject: str  # the token's `sub`; for a customer, once resolved, their customer id
    role: str  # "staff" or "customer"
    # Set for tokens of an outside identity provider (Cognito), whose `sub` is the provider's
    # own id of the user: a customer's is mapped to the customer id (store/identities.py).
    # None for the HS256 tokens this service issues, whose `sub` is the customer id itself.
    issuer: str | None = None
    # A customer token whose identity no customer is linked to (self-service answers 403).
    unlinked: bool = False
    # A Cognito token with neither a group nor a role: a customer only through the link of its
    # user (never anything more); unlinked, it may use no route.
    link_only: bool = False


class AuthError(Exception):
    """The request is not authenticated: the token is missing, malformed, badly
    signed, expired, not yet valid, or has the wrong issuer, audience or algorithm.

    ``str(exc)`` is a short human detail that never contains the token or any part of
    it, safe to return to the client and to log.
    """


class JWKSUnavailableError(AuthError):
    """The signing keys could not be fetched and none are cached. The token may be
    fine; the caller may answer 503 instead of 401 if it tells the two apart."""


# --------------------------------------------------------------------------- helpers


_CLAIM_NAMES = {
    "exp": "exp",
    "iat": "iat",
    "nbf": "nbf",
    "iss": "iss",
    "sub": "sub",
    "aud": "aud",
}


def _auth_error_from(exc: jwt.PyJWTError) -> AuthError:
    """Map a PyJWT exception to an AuthError with a fixed, token-free message.

    Order matters: ``InvalidSignatureError`` is a subclass of ``DecodeError``.
    """
    if isinstance(exc, jwt.ExpiredSignatureError):
        return AuthError("token has expired")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return AuthError("token is not yet valid")
    if isinstance(exc, jwt.InvalidIssuerError):
        return AuthError("token issuer is not accepted")
    if isinstance(exc, jwt.InvalidAudienceError):
        return AuthError("token audience is not accepted")
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return AuthError("token algorithm is not accepted")
    if isinstance(exc, jwt.InvalidSignatureError):
        return AuthError("token signature is invalid")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        name = _CLAIM_NAMES.get(exc.claim)
        if name is not None:
            return AuthError(f"token is missing the '{name}' claim")
    if isinstance(exc, jwt.exceptions.InvalidSubjectError):
        return AuthError("token subject is invalid")
    return AuthError("token is malformed")


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


def _role_from_role_claim(claims: Mapping[str, Any], name: str) -> str | None:
    role = claims.get(name)
    if isinstance(role, str) and role in ROLES:
        return role
    return None


# --------------------------------------------------------------------------- HS256


class HS256Verifier:
    """Tokens signed with a shared secret (local stage and tests).

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
        role = _role_from_role_claim(claims, "role")
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
    """An HS256 token that ``HS256Verifier(secret, issuer, audience)`` accepts."""
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


# --------------------------------------------------------------------------- JWKS / Cognito


def fetch_jwks_document(url: str) -> dict[str, Any]:
    """GET a JSON Web Key Set (the default fetcher of ``JWKSVerifier``)."""
    import urllib.parse
    import urllib.request

    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        raise ValueError("the JWKS URL must be http(s)")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked above
    with urllib.request.urlopen(request, timeout=JWKS_FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
        body = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError("the JWKS document is too large")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise TypeError("the JWKS document is not a JSON object")
    return document


def _signing_keys(document: object) -> dict[str, jwt.PyJWK]:
    """The RS256 signing keys of a JWKS document, by ``kid``; other keys are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise TypeError("the JWKS document has no 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg", RS256) != RS256:
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm=RS256)
        except jwt.PyJWTError:
            logger.warning("skipping an unusable JWKS key (kid %r)", kid)
    if not keys:
        raise ValueError("the JWKS document has no usable RS256 signing key")
    return keys


class JWKSVerifier:
    """RS256 tokens of an Amazon Cognito user pool, keys from its JWKS URL.

    * ``iss`` must equal ``issuer`` (``https://cognito-idp.<region>.amazonaws.com/<pool id>``).
    * ID tokens: ``aud`` must equal ``audience`` (the app client id). Access tokens have
      no ``aud``: then ``client_id`` must equal ``audience`` and ``token_use`` be ``"access"``.
    * Role: ``"staff"`` if in ``cognito:groups``, else ``"customer"`` if in the groups, else
      a ``custom:role`` claim of ``"staff"``/``"customer"``. The app client must not be
      allowed to write ``custom:role``, or users could promote themselves. A token with none
      of these is a ``"customer"`` marked ``link_only``: a fresh sign-up is in no group, and
      is a customer only once its user is linked to one (never staff).

    Keys are cached for ``cache_seconds`` (timed by ``clock``). An unknown ``kid``
    refetches the set, at most once per ``MIN_REFETCH_SECONDS``. If a refetch fails the
    cached keys stay in use. ``exp``/``nbf``/``iat`` are checked against the real time.
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
        self._fetch = fetch_jwks if fetch_jwks is not None else fetch_jwks_document
        self._cache_seconds = float(cache_seconds)
        self._clock = clock
        self._leeway = float(leeway_seconds)
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = 0.0  # last successful fetch
        self._attempted_at: float | None = None  # last fetch attempt, successful or not

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
        key = self._signing_key(kid)
        claims = _decode(token, key, RS256, self._issuer, self._leeway)
        self._check_audience(claims)
        subject = _subject(claims)
        role = self._role(claims)
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

    @staticmethod
    def _role(claims: Mapping[str, Any]) -> str | None:
        """The role the token names; None if it names none (no group of ours, no
        `custom:role`): then it is a customer's only if its user is linked to one. A malformed
        `cognito:groups` or an unknown `custom:role` is refused, never read as no role."""
        groups = claims.get("cognito:groups")
        if groups is not None and not isinstance(groups, list):
            raise AuthError("token has no valid role")
        for role in ROLES:  # "staff" first: it wins over "customer"
            if role in (groups or ()):
                return role
        if claims.get("custom:role") is None:
            return None
        role = _role_from_role_claim(claims, "custom:role")
        if role is None:
            raise AuthError("token has no valid role")
        return role

    # Key cache ---------------------------------------------------------------

    def _signing_key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            now = self._clock()
            stale = self._keys is None or now - self._fetched_at >= self._cache_seconds
            if stale and self._may_fetch(now):
                self._refresh(now)
            if self._keys is None:
                raise JWKSUnavailableError("token signing keys are unavailable")
            key = self._keys.get(kid)
            if key is None and self._may_fetch(now):
                self._refresh(now)
                key = self._keys.get(kid)
            if key is None:
                raise AuthError("token signing key is unknown")
            return key

    def _may_fetch(self, now: float) -> bool:
        if self._attempted_at is None:
            return True
        wait = MIN_REFETCH_SECONDS if self._keys is not None else EMPTY_CACHE_RETRY_SECONDS
        return now - self._attempted_at >= wait

    def _refresh(self, now: float) -> None:
        """Fetch the key set; on failure keep whatever is cached. Caller holds the lock."""
        self._attempted_at = now
        try:
            keys = _signing_keys(self._fetch(self._jwks_url))
        # Network, HTTP, JSON, content or injected-fetcher errors are all the same
        # to us: keep the cached keys (if any) and try again later.
        except Exception as exc:
            logger.warning(
                "JWKS fetch from %s failed (%s); %s",
                self._jwks_url,
                type(exc).__name__,
                "keeping cached keys" if self._keys is not None else "no keys cached",
            )
            return
        self._keys = keys
        self._fetched_at = now


# --------------------------------------------------------------------------- wiring


@lru_cache(maxsize=8)
def verifier_for(settings: Settings) -> HS256Verifier | JWKSVerifier:
    """The verifier for a stage. The same ``Settings`` give the same verifier, so the
    JWKS cache lives as long as the (Lambda) process."""
    mode = settings.auth_mode.strip().lower()
    if mode == "hs256":
        if not settings.jwt_secret:
            raise ValueError(f"stage {settings.stage!r} uses hs256 auth but CRM_JWT_SECRET is empty")
        return HS256Verifier(settings.jwt_secret, settings.jwt_issuer, settings.jwt_audience)
    if mode == "cognito":
        if not settings.jwks_url:
            raise ValueError(f"stage {settings.stage!r} uses cognito auth but CRM_JWKS_URL is empty")
        return JWKSVerifier(settings.jwks_url, settings.jwt_issuer, settings.jwt_audience)
    raise ValueError(f"unknown auth_mode {settings.auth_mode!r}; expected 'hs256' or 'cognito'")


def bearer_token(authorization_header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if authorization_header is None or not authorization_header.strip():
        raise AuthError("missing bearer token")
    parts = authorization_header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise AuthError("authorization header must be 'Bearer <token>'")
    return parts[1]
