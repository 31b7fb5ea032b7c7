"""DynamoDB writes of several items: `transaction()` (TransactWriteItems) with its retries of
transaction conflicts, its refusal of items over 400 KB and the claims of keyed requests'
attempts, and how to read why DynamoDB cancelled one; `deferring()` and `commit_together()`,
which send the transactions of several writers as one (a bulk import's rows)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache

from pynamodb.connection import Connection
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.domain import attempts
from chalicelib.domain.storage import VersionConflict
from chalicelib.errors import ServiceBusy, TooLargeToStore
from chalicelib.store.models.attempts import AttemptModel


def error_code(error: PynamoDBException) -> str | None:
    """DynamoDB's error code, or None when no answer came (a timeout, a broken connection:
    PynamoDB's own `cause_response_code` fails on those)."""
    response = getattr(error.cause, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def failed_conditions(error: TransactWriteError) -> list[bool]:
    """Which items of a cancelled transaction failed their condition, in request order.
    PynamoDB sends condition checks first, then deletes, puts and updates, so a transaction
    that starts with "the customer exists" finds that check at index 0."""
    return [bool(r) and r.code == "ConditionalCheckFailed" for r in error.cancellation_reasons]


@lru_cache(maxsize=4)
def connection(region: str) -> Connection:
    """One connection (and so one botocore client) per process for transactions: creating a
    client costs a quarter of a second."""
    return Connection(region=region)


ITEM_LIMIT = "DynamoDB's 400 KB item limit"
TOO_LARGE = f"The change would make an item larger than {ITEM_LIMIT}."
BATCH_WRITE_ITEMS = 25  # BatchWriteItem's maximum, and what PynamoDB's batch_write sends at once


def _refused_for_size(error: TransactWriteError) -> bool:
    """DynamoDB refuses an item over 400 KB: a Put as a ValidationException of the whole
    request, an Update that grows an item as a cancelled transaction whose reason is a
    ValidationError. Both messages say "... exceeded the maximum allowed size"."""
    if error_code(error) == "ValidationException":
        return _size_message(error.cause_response_message or "")
    return any(
        r is not None and r.code == "ValidationError" and _size_message(r.message or "")
        for r in error.cancellation_reasons
    )


def _size_message(message: str) -> bool:
    # Items: "... exceeded the maximum allowed size". Keys (a safety net: the API bounds what
    # it stores in keys): "Size of hashkey has exceeded the maximum size limit of 2048 bytes",
    # "Aggregated size of all range keys has exceeded the size limit of 1024 bytes" (DynamoDB
    # Local: "Hash primary key values must be under 2048 bytes").
    lowered = message.lower()
    key_limit = "key" in lowered and ("2048" in lowered or "1024" in lowered)
    return "maximum allowed size" in lowered or key_limit


# TransactionConflict: another transaction (or a write) on one of the items was in progress.
# Nothing was written, and the SDK does not retry it: the same request is sent again after a
# full-jitter exponential backoff (25, 50, 100 ms caps), then the caller is told to come back.
CONFLICT_ATTEMPTS = 4
CONFLICT_BACKOFF_BASE_S = 0.025


def _claim(t: TransactWrite) -> str | None:
    """In a keyed request (domain/attempts.py), each transaction also adds its claim to the
    attempts' seed, conditional on its absence. The claim is named by what the transaction
    writes, so the retry of a transaction that committed fails on the claim (alone or with the
    conditions its own items already met) and is known to be done, while any other
    transaction has another name. The claim is an update, which PynamoDB sends last, so the
    items' positions in the cancellation reasons stay as the repositories expect."""
    seed = attempts.current()
    if seed is None:
        return None
    items = [t._condition_check_items, t._delete_items, t._put_items, t._update_items]
    name = attempts.claim_for(json.dumps(items, sort_keys=True, default=str).encode())
    t.update(
        AttemptModel(seed.key),
        actions=[AttemptModel.claims.add({name})],
        condition=~AttemptModel.claims.contains(name),
    )
    return name


def conflicted(error: TransactWriteError) -> bool:
    """Cancelled only because of concurrent transactions on its items: no condition failed,
    no item was invalid, so the same request may pass when sent again."""
    codes = {r.code for r in error.cancellation_reasons if r is not None and r.code != "None"}
    return error_code(error) == "TransactionCanceledException" and codes == {"TransactionConflict"}


@contextmanager
def transaction(region: str, too_large: str = TOO_LARGE) -> Iterator[TransactWrite]:
    """One TransactWriteItems, as `with transaction(region) as t:`, committed when the block
    ends. DynamoDB's refusal of an item over 400 KB becomes `TooLargeToStore(too_large)`, so no
    caller takes it for a lost race (`too_large` should name the item). A cancellation by
    TransactionConflict alone is sent again (the request is the same: all or nothing, and its
    conditions are evaluated again) up to CONFLICT_ATTEMPTS times, then is `ServiceBusy` (503
    with Retry-After): never mistaken for a failed condition. Within `deferring()` it is kept
    instead of sent."""
    t = TransactWrite(connection=connection(region))
    yield t
    kept = _deferred.get()
    if kept is not None:
        if attempts.current() is not None:
            raise RuntimeError("a keyed request's transactions cannot be deferred")
        kept.append(t)
        return
    _commit(t, _claim(t), too_large)


def _commit(t: TransactWrite, claim: str | None, too_large: str) -> None:
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            t._commit()  # what TransactWrite's own __exit__ calls; sent again as it is
            return
        except TransactWriteError as error:
            if claim and failed_conditions(error)[-1:] == [True]:
                # An earlier attempt of this request committed this very transaction: the
                # models are left as a commit leaves them (PynamoDB bumps their versions).
                for model in t._models_for_version_attribute_update:
                    model.update_local_version_attribute()
                return
            if _refused_for_size(error):
                raise TooLargeToStore(too_large) from error
            if not conflicted(error):
                raise
            if attempt == CONFLICT_ATTEMPTS:
                raise ServiceBusy(
                    "Other changes to the same records kept coming first; nothing was written. Retry."
                ) from error
            time.sleep(random.uniform(0, CONFLICT_BACKOFF_BASE_S * 2 ** (attempt - 1)))  # noqa: S311


# Deferred transactions: what `transaction()` blocks wrote while `deferring()` is on.
_deferred: ContextVar[list[TransactWrite] | None] = ContextVar("deferred_transactions", default=None)

MAX_TRANSACTION_ITEMS = 100  # TransactWriteItems' limits: 100 actions and 4 MB in all
# What commit_together sends at most: the request's JSON is measured, DynamoDB counts the items'
# own sizes (smaller), so this leaves room for the difference without relying on it.
TOGETHER_BYTES = 3 * 1024 * 1024


@contextmanager
def deferring() -> Iterator[list[TransactWrite]]:
    """Within the block, each `transaction()` is not sent: it is appended to the list this
    yields, in order, and its block ends as if it had committed. Its caller cannot learn a
    failed condition then: `commit_together` sends them, all or nothing, and a writer whose
    transactions did not commit must do its work again, outside the block."""
    kept: list[TransactWrite] = []
    token = _deferred.set(kept)
    try:
        yield kept
    finally:
        _deferred.reset(token)


def is_deferring() -> bool:
    return _deferred.get() is not None


def _operations(units: Sequence[TransactWrite]) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """The actions of `units` as one transaction's: a condition check that several of them make
    alike (the same customer exists) is made once (DynamoDB takes one action per item)."""
    checks: dict[str, dict] = {}
    deletes: list[dict] = []
    puts: list[dict] = []
    updates: list[dict] = []
    for t in units:
        for check in t._condition_check_items:
            checks.setdefault(json.dumps(check, sort_keys=True, default=str), check)
        deletes += t._delete_items
        puts += t._put_items
        updates += t._update_items
    return list(checks.values()), deletes, puts, updates


def fit_together(units: Sequence[TransactWrite]) -> bool:
    """Whether `units` can be sent as one TransactWriteItems (its 100 actions and 4 MB)."""
    operations = _operations(units)
    if sum(len(part) for part in operations) > MAX_TRANSACTION_ITEMS:
        return False
    return len(json.dumps(operations, default=str).encode()) <= TOGETHER_BYTES


def commit_together(region: str, units: Sequence[TransactWrite]) -> bool:
    """Send the deferred transactions `units` as one: True if it committed; False if DynamoDB
    refused or cancelled it (a failed condition, two actions on one item, an item too large, a
    conflict that kept coming back). Then nothing of it was written, or (an answer that never
    came) all of it was: each writer's conditions tell when it does its work again."""
    if not units:
        return True
    t = TransactWrite(connection=connection(region))
    t._condition_check_items, t._delete_items, t._put_items, t._update_items = _operations(units)
    for unit in units:
        t._models_for_version_attribute_update += unit._models_for_version_attribute_update
    try:
        _commit(t, None, TOO_LARGE)
    except (TransactWriteError, TooLargeToStore, ServiceBusy):
        return False
    return True


@contextmanager
def versioned_transaction(region: str, record_id: str, too_large: str = TOO_LARGE) -> Iterator[TransactWrite]:
    """`transaction` for a write conditional on the versions it read: a failed condition means
    that another change came first, VersionConflict(record_id)."""
    try:
        with transaction(region, too_large) as t:
            yield t
    except TransactWriteError as error:
        if not any(failed_conditions(error)):
            raise  # not a lost race: no condition failed
        raise VersionConflict(record_id) from error
