"""Who is calling: the bearer token verified, and a customer of an outside identity provider
(Cognito) resolved through the link of their user."""

from __future__ import annotations

from functools import lru_cache

from chalicelib import wiring
from chalicelib.config import get_settings
from chalicelib.errors import Unauthorized


@lru_cache(maxsize=1)
def _verifier():
    from chalicelib.auth import verifier_for

    return verifier_for(get_settings())


def authenticate(authorization: str | None):
    """The caller; a customer of an outside identity provider (Cognito) with their customer id
    as subject, through the link of their user (or marked unlinked)."""
    from chalicelib.auth import AuthError, bearer_token

    try:
        principal = _verifier().verify(bearer_token(authorization))
    except AuthError as error:
        raise Unauthorized(str(error)) from None
    if principal.role == "customer" and principal.issuer is not None:
        return wiring.identity_service().resolve(principal)
    return principal
