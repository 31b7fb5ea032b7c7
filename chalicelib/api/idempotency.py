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
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from chalice import Response

from chalicelib.config import get_settings
from chalicelib.domain import attempts
from chalicelib.errors import Conflict, CrmError, FieldError, Unprocessable, ValidationFailed

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
EXPIRES_AFTER_SECONDS = 24 * 60 * 60
REPLAYED_HEADER = "Idempotent-Replayed"
# Stable across Lambda function names and refactors of this module: Powertools would
# otherwise prefix every key with "<function name>.<module>.<qualname>".
_KEY_PREFIX = "crm-http"


class _NotRemembered(Exception):
    """Raised out of the idempotent function for an answer that must not be stored (a 5xx
    response, a key reused with another body): Powertools then deletes the in-progress record
    instead, and the answer is given as is."""

    def __init__(self, *, record: dict[str, Any] | None = None, error: CrmError | None = None) -> None:
        super().__init__(record["status"] if record else error)
        self.record = record
        self.error = error


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


@dataclass(frozen=True)
class Outcome:
    """What a keyed request answers: the stored response (`record`), and whether it is a
    replay of an earlier attempt's rather than this one's."""

    record: dict[str, Any]
    replayed: bool


def run_once(
    *,
    caller: str,
    route: str,
    key: str,
    body: bytes,
    run: Callable[[], Response],
    lambda_context: Any = None,
    owner: Callable[[dict[str, Any]], str | None] | None = None,
) -> Outcome:
    """Run `run()` once per (caller, route, key) within 24 hours; replay its response after.

    Raises Unprocessable for a key reused with another body and Conflict while the first
    request still runs. `owner(record)` names the customer whose data the stored response
    holds (or None): a pointer to the record is then written under that customer, so
    erasure can find it."""
    from aws_lambda_powertools.utilities.idempotency import idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
        IdempotencyValidationError,
    )

    check_key(key)
    ran: list[dict[str, Any]] = []

    def execute(request: dict[str, Any]) -> dict[str, Any]:
        from chalicelib.domain.storage import KeyReused

        try:
            seed = _seed(request)
        except KeyReused:
            # Not remembered: the first body's retry must still get its own answer.
            raise _NotRemembered(error=_reused_key()) from None
        with attempts.repeatable(seed):
            response = run()
        record = to_record(response if isinstance(response, Response) else Response(body=response))
        ran.append(record)
        if record["status"] >= 500:
            raise _NotRemembered(record=record)
        return record

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
    except _NotRemembered as outcome:
        if outcome.error is not None:
            raise outcome.error from None
        return Outcome(outcome.record, replayed=False)
    except IdempotencyValidationError:
        raise _reused_key() from None
    except IdempotencyPersistenceLayerError:
        if not ran:
            raise
        # The view ran (and committed) but its response could not be stored: answer it, and
        # let a retry run again under the same seed, which finds the write already done.
        _forget_in_progress(data)
        return Outcome(ran[0], replayed=False)
    except IdempotencyAlreadyInProgressError:
        raise Conflict(
            f"A request with this {HEADER} is still being processed: retry in a moment.",
            headers={"Retry-After": "1"},
        ) from None
    if ran and owner is not None:
        _point_to_record(owner(record), data)
    return Outcome(record, replayed=not ran)


def _seed(request: dict[str, Any]) -> attempts.Seed:
    """The seed of this key's attempts: stored by the first, read back by every retry."""
    from chalicelib import wiring

    return wiring.keyed_requests().seed(record_id(request) or "", request["body_sha256"])


def _reused_key() -> Unprocessable:
    return Unprocessable(
        f"This {HEADER} was already used for a request with a different body: "
        "send the same body to get the first response, or use a new key.",
        errors=[FieldError(HEADER, "was used with a different body")],
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
    from chalicelib import wiring
    from chalicelib.observability import logger

    found = record_id(data)
    if found is None:
        return
    try:
        wiring.keyed_requests().remember_owner(customer_id, found)
    except Exception:  # the response is stored; the record expires in 24 h anyway
        logger.exception("idempotency pointer not written", extra={"customer_id": customer_id})


def to_record(response: Response) -> dict[str, Any]:
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
