"""Idempotent POSTs: a client that sends `Idempotency-Key` may retry a write safely.

Built on Powertools' idempotency utility with the DynamoDB table from infra/ (pk `id`, TTL
attribute `expiration`). A key is scoped to the caller (role and subject) and to the route
with its path parameters, and is remembered for 24 hours together with a hash of the body:

- same key, same body: the first response (status, headers, body) is replayed, nothing runs;
- same key, other body: 422; same key while the first request still runs: 409;
- responses >= 500 and exceptions are not remembered, so a retry runs again.

Powertools (which imports boto3) is imported on the first request that carries a key, so
routes called without one never pay for it at cold start.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from chalice import Response

from chalicelib.config import get_settings
from chalicelib.domain import attempts
from chalicelib.errors import CrmError, FieldError, Unprocessable, ValidationFailed

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
EXPIRES_AFTER_SECONDS = 24 * 60 * 60
REPLAYED_HEADER = "Idempotent-Replayed"
# Stable across Lambda function names and refactors of this module: Powertools would
# otherwise prefix every key with "<function name>.<module>.<qualname>".
_KEY_PREFIX = "crm-http"


class _NotRemembered(Exception):
    """Raised out of the idempotent function for a response that must not be stored (a 5xx, a
    key reused with another body): Powertools then deletes the in-progress record instead,
    and the response is returned as is."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise ValidationFailed([FieldError(HEADER, f"must be 1 to {MAX_KEY_LENGTH} characters long")])


@lru_cache(maxsize=1)
def persistence_layer():
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(table_name=get_settings().idempotency_table)


def config(lambda_context: Any = None):
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    return IdempotencyConfig(
        event_key_jmespath="idempotency_key",
        payload_validation_jmespath="body_sha256",
        expires_after_seconds=EXPIRES_AFTER_SECONDS,
        use_local_cache=False,
        hash_function="sha256",
        # With a context, an in-progress record left by an invocation that timed out or
        # crashed stops blocking retries once that invocation's time is up.
        lambda_context=lambda_context,
    )


def request_data(*, caller: str, route: str, key: str, body: bytes) -> dict[str, Any]:
    """What Powertools hashes: the scoped key (a list, so no separator can be forged) and
    the body's hash for payload validation."""
    return {
        "idempotency_key": [caller, route, key],
        "body_sha256": hashlib.sha256(body or b"").hexdigest(),
    }


def run_once(
    *,
    caller: str,
    route: str,
    key: str,
    body: bytes,
    run: Callable[[], Response],
    lambda_context: Any = None,
    owner: Callable[[dict[str, Any]], str | None] | None = None,
    instance: str | None = None,
) -> Response:
    """Run `run()` once per (caller, route, key) within 24 hours; replay its response after.

    `owner(record)` names the customer whose data the stored response holds (or None): a
    pointer to the record is then written under that customer, so erasure can find it.
    `instance` (the request's path) goes into the problems answered here."""
    from aws_lambda_powertools.utilities.idempotency import idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
        IdempotencyValidationError,
    )

    from chalicelib.api.http import problem
    from chalicelib.errors import Conflict

    check_key(key)
    ran: list[Response] = []

    def execute(request: dict[str, Any]) -> dict[str, Any]:
        from chalicelib.store.idempotency import KeyReused

        try:
            seed = _seed(request)
        except KeyReused:
            # Not remembered: the first body's retry must still get its own answer.
            raise _NotRemembered(_reused_key_problem(instance)) from None
        else:
            with attempts.repeatable(seed):
                try:
                    response = run()
                except CrmError as error:  # the route handler converts these already; just in case
                    response = problem(error, instance)
        if not isinstance(response, Response):
            response = Response(body=response)
        ran.append(response)
        if response.status_code >= 500:
            raise _NotRemembered(response)
        return _to_record(response)

    # Decorated per call (cheap): the config then carries this invocation's Lambda context
    # and concurrent requests on threads (local server, tests) share no mutable state.
    once = idempotent_function(
        execute,
        data_keyword_argument="request",
        persistence_store=persistence_layer(),
        config=config(lambda_context),
        key_prefix=_KEY_PREFIX,
    )
    data = request_data(caller=caller, route=route, key=key, body=body)
    try:
        record = once(request=data)
    except _NotRemembered as error:
        return error.response
    except IdempotencyValidationError:
        return _reused_key_problem(instance)
    except IdempotencyPersistenceLayerError:
        if not ran:
            raise
        # The view ran (and committed) but its response could not be stored: answer it, and
        # let a retry run again under the same seed, which finds the write already done.
        _forget_in_progress(data)
        return ran[0]
    except IdempotencyAlreadyInProgressError:
        return problem(
            Conflict(
                f"A request with this {HEADER} is still being processed: retry in a moment.",
                headers={"Retry-After": "1"},
            ),
            instance,
        )
    if ran and owner is not None:
        _point_to_record(owner(record), data)
    response = _from_record(record)
    if not ran:
        response.headers[REPLAYED_HEADER] = "true"
    return response


def _seed(request: dict[str, Any]) -> attempts.Seed:
    """The seed of this key's attempts: stored by the first, read back by every retry."""
    from chalicelib.api import deps

    return deps.attempt_seeds().seed_for(record_id(request) or "", deps.clock.now(), request["body_sha256"])


def _reused_key_problem(instance: str | None) -> Response:
    from chalicelib.api.http import problem

    return problem(
        Unprocessable(
            f"This {HEADER} was already used for a request with a different body: "
            "send the same body to get the first response, or use a new key.",
            errors=[FieldError(HEADER, "was used with a different body")],
        ),
        instance,
    )


def _forget_in_progress(data: dict[str, Any]) -> None:
    from chalicelib.observability import logger

    try:
        persistence_layer().delete_record(data=data, exception=RuntimeError("response not stored"))
    except Exception:  # it then blocks retries until this invocation's time is up
        logger.exception("in-progress idempotency record not deleted")


def record_id(data: dict[str, Any]) -> str | None:
    """The id (table key) Powertools gives the record of `data`: "<key prefix>#<hash>". Uses
    the persistence layer's own hashing, so it is only right once the layer is configured
    (by the first idempotent call in the process)."""
    return persistence_layer()._get_hashed_idempotency_key(data)


def _point_to_record(customer_id: str | None, data: dict[str, Any]) -> None:
    if not customer_id:
        return
    from chalicelib.api import deps
    from chalicelib.observability import logger

    found = record_id(data)
    if found is None:
        return
    try:
        deps.idempotency_pointers().add(customer_id, found, deps.clock.now())
    except Exception:  # the response is stored; the record expires in 24 h anyway
        logger.exception("idempotency pointer not written", extra={"customer_id": customer_id})


def _to_record(response: Response) -> dict[str, Any]:
    body = response.body
    if body is None:
        text = ""
    elif isinstance(body, bytes):
        text = body.decode("utf-8")
    elif isinstance(body, str):
        text = body
    else:  # Chalice serialises other bodies as JSON
        text = json.dumps(body, separators=(",", ":"))
    return {"status": response.status_code, "headers": dict(response.headers or {}), "body": text}


def _from_record(record: dict[str, Any]) -> Response:
    return Response(body=record["body"], status_code=int(record["status"]), headers=dict(record["headers"]))
