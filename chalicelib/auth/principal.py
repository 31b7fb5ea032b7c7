"""Who is calling, and in which role: what both verifiers return, and how a token names a role."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ROLES = ("staff", "customer")


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


def role_claim(claims: Mapping[str, Any], name: str) -> str | None:
    """The role a string claim names, if it is one of ``ROLES``."""
    role = claims.get(name)
    if isinstance(role, str) and role in ROLES:
        return role
    return None


def cognito_role(claims: Mapping[str, Any]) -> str | None:
    """The role a Cognito token names: ``"staff"`` if in ``cognito:groups``, else
    ``"customer"`` if in the groups, else a ``custom:role`` of one of ``ROLES``.

    None if it names none (no group of ours, no ``custom:role``): then it is a customer's only
    if its user is linked to one. A malformed ``cognito:groups`` or an unknown ``custom:role``
    is refused, never read as no role.
    """
    groups = claims.get("cognito:groups")
    if groups is not None and not isinstance(groups, list):
        raise AuthError("token has no valid role")
    for role in ROLES:  # "staff" first: it wins over "customer"
        if role in (groups or ()):
            return role
    if claims.get("custom:role") is None:
        return None
    role = role_claim(claims, "custom:role")
    if role is None:
        raise AuthError("token has no valid role")
    return role
