"""Bearer-token verification: who is calling, and in which role.

Two verifiers share one contract, ``verify(token) -> Principal`` or ``AuthError``
(``verifiers.py``):

* ``HS256Verifier`` (local stage, tests): tokens signed with a shared secret, made by
  ``issue_token``.
* ``JWKSVerifier`` (cloud): RS256 ID or access tokens of an Amazon Cognito user pool,
  checked against the pool's published JSON Web Key Set (``jwks.py``: fetched, cached,
  refetched within a rate limit).

Principals and roles are in ``principal.py``. No message, log line or exception chain
produced here contains the token or any part of it: a token is a credential.
"""

from __future__ import annotations

from functools import lru_cache

from chalicelib.auth.jwks import JWKSUnavailableError, fetch_jwks_document
from chalicelib.auth.principal import ROLES, AuthError, Principal
from chalicelib.auth.verifiers import HS256Verifier, JWKSVerifier, issue_token
from chalicelib.config import Settings

__all__ = [
    "ROLES",
    "AuthError",
    "HS256Verifier",
    "JWKSUnavailableError",
    "JWKSVerifier",
    "Principal",
    "bearer_token",
    "fetch_jwks_document",
    "issue_token",
    "verifier_for",
]


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
