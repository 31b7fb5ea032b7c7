"""The Cognito post-confirmation trigger: a user who confirmed their sign-up becomes a customer
(the one with their verified email address, or a new one), so their tokens reach /me.

Cognito invokes the function synchronously and expects the event back. An exception makes the
confirmation fail for the user, who can try again: linking is idempotent."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api import deps
from chalicelib.observability import logger

bp = Blueprint(__name__)


@bp.lambda_function(name="link_customer_on_sign_up")
def link_customer_on_sign_up(event, context):
    customer_id = deps.identity_service().on_sign_up(event)
    if customer_id is not None:
        logger.info("sign-up linked to a customer", extra={"customer_id": customer_id})
    return event
