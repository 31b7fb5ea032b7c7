"""The Cognito post-confirmation trigger: a user who confirmed their sign-up becomes a customer
(the one with their verified email address, if no other user has it, or a new one), so their
tokens reach /me.

Cognito invokes the function synchronously, expects the event back, and invokes it again when
it does not answer within 5 seconds (linking is idempotent). An exception shows the user an
error, but their sign-up stays confirmed and Cognito never runs the trigger for it again: such
a user, like one left unlinked, is linked by staff (PUT /customers/{id}/identities/{sub})."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.observability import logger

bp = Blueprint(__name__)


@bp.lambda_function(name="link_customer_on_sign_up")
def link_customer_on_sign_up(event, context):
    done = wiring.identity_service().on_sign_up(event)
    if done.outcome == "another_pool":
        logger.warning("sign-up of a user pool this stage does not accept: ignored (see CRM_JWT_ISSUER)")
    elif done.outcome == "left_unlinked":
        # Not the user's sub nor the address: personal data stays out of logs.
        logger.warning("sign-up left unlinked: the customer with this verified address has a sign-in user")
    elif done.customer_id is not None:
        logger.info(
            "sign-up linked to a customer", extra={"customer_id": done.customer_id, "outcome": done.outcome}
        )
    return event
