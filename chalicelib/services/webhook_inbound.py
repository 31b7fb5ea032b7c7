"""Inbound webhooks: staff register sources; a source's deliveries are verified, stored and
queued in the request (`WebhookSourceService.receive`), and made interactions by the queue's
consumer (`InboundWebhookProcessor.process`, events/webhooks_in.py).

Nothing is done twice. A delivery is stored under its webhook-id only if absent, so a resent
delivery is answered with the one stored (queued again while it is `received`: a lost queue
message heals, and processing is idempotent). An order or ticket is claimed under its external
id (a guard holding the customer and the id its interaction gets) before the interaction is
written, conditional on that id being free: a second delivery of the same order, even under
another webhook-id, finds the guard and writes or finds that same interaction, and a worker
that stopped between the two writes is healed by the next delivery. An interactions source's
delivery gets an id derived from its webhook-id. A customer is found by email or created; two
deliveries creating the same one meet at the email's uniqueness, and the loser finds it.

Each delivery ends `processed` (with the customer and interaction) or `failed` with a sentence
an integrator understands; its payload is then removed. A delivery that waits for something
(a refund before its order) is retried by the queue and fails on its last receive.

Erasure: a delivery is stored naming the existing customer its payload names (the GSI an
erasure walks), so an erasure strips it even while it waits; a stripped delivery fails when
processed, creating no one, and its webhook-id, kept, is answered as before if sent again."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain import ids, storage, webhook_payloads, webhook_signatures
from chalicelib.domain.audit import Actor
from chalicelib.domain.clock import Clock, Deadline
from chalicelib.domain.customers import Customer
from chalicelib.domain.interactions import Interaction
from chalicelib.domain.webhook_payloads import Contact, Order, Posted, Ticket
from chalicelib.domain.webhook_secrets import first_secret, rotated
from chalicelib.domain.webhook_sources import (
    FAILED,
    MAX_BODY_BYTES,
    PROCESSED,
    Delivery,
    Guard,
    Source,
    order_guard,
    refund_guard,
    ticket_guard,
)
from chalicelib.errors import (
    Conflict,
    CrmError,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ServiceBusy,
    SignatureUnauthorized,
    Unprocessable,
)
from chalicelib.services.versions import retry_lost_races, update_at_version
from chalicelib.store.pagination import CursorCodec, Key, Page, page_of

RECEIVE_ROUTE = "POST /webhooks/{source_id}"
# A customer a source creates is created by it, in the audit trail: {"subject": <source id>,
# "role": "webhook"}.
ROLE = "webhook"
UNPROCESSABLE = "The delivery could not be processed; it may be sent again under a new webhook-id."
ERASED = "Its customer was erased while it waited to be processed: nothing was recorded."


class SourceStore(Protocol):
    def add_source(self, source: Source) -> Source: ...

    def get_source(self, source_id: str, *, consistent: bool = False) -> Source | None: ...

    def list_sources(self, limit: int, start: Key | None) -> tuple[list[Source], Key | None]: ...

    def update_secrets(self, before: Source, after: Source) -> Source: ...

    def delete_source(self, source: Source, at: datetime) -> None: ...

    def deleted(self, source_id: str) -> bool: ...

    def add_delivery(self, delivery: Delivery) -> Delivery: ...

    def get_delivery(
        self, source_id: str, webhook_id: str, *, consistent: bool = True
    ) -> Delivery | None: ...

    def deliveries(
        self, source_id: str, status: str | None, limit: int, start: Key | None
    ) -> tuple[list[Delivery], Key | None]: ...

    def finish(self, delivery: Delivery) -> bool: ...

    def guard(self, source_id: str, key: str) -> Guard | None: ...

    def claim(self, guard: Guard) -> None: ...

    def purge_source(self, source_id: str, deadline: Deadline | None = None) -> tuple[int, bool]: ...


class WorkQueue(Protocol):
    def send(self, body: dict) -> None: ...


class CustomerLookup(Protocol):
    def find_by_email(self, email: str) -> Page[Customer]: ...


class CustomerDirectory(CustomerLookup, Protocol):
    def create(self, fields: dict, actor: Actor) -> Customer: ...


class Timeline(Protocol):
    def record(self, customer_id: str, fields: dict, interaction_id: str | None = None) -> Interaction: ...

    def get(self, customer_id: str, interaction_id: str) -> Interaction: ...


Validate = Callable[[str, bytes, datetime], dict[str, Any]]


def _send(queue: Callable[[], WorkQueue], body: dict, detail: str) -> None:
    """Put a message on the queue; a failure to is a 503 the caller may retry (the request's
    stored effect is kept, and its retry sends the message again)."""
    try:
        queue().send(body)
    except Exception as error:
        raise ServiceBusy(detail, retry_after_s=5) from error


class WebhookSourceService:
    def __init__(
        self,
        store: SourceStore,
        queue: Callable[[], WorkQueue],
        clock: Clock,
        tolerance_s: int,
        cursors: CursorCodec | None = None,
        *,
        customers: CustomerLookup,
    ) -> None:
        self._store = store
        self._queue = queue
        self._clock = clock
        self._tolerance_s = tolerance_s
        self._cursors = cursors
        self._customers = customers

    # -- staff ----------------------------------------------------------------------------------

    def create(self, name: str, kind: str) -> Source:
        """A new source with its first secret (shown once, in the answer)."""
        now = self._clock.now()
        source = Source(ids.new_id(ids.WEBHOOK_SOURCE, now), name, kind, first_secret(now), now, now)
        return self._store.add_source(source)

    def get(self, source_id: str, *, consistent: bool = False) -> Source:
        source = self._store.get_source(source_id, consistent=consistent)
        if source is None:
            raise NotFound(f"No webhook source has the id {source_id!r}.")
        return source

    def list(self, limit: int, cursor: str | None) -> Page[Source]:
        return page_of(
            self._cursors, "webhook-sources", cursor, lambda start: self._store.list_sources(limit, start)
        )

    def rotate_secret(self, source_id: str, if_match: int | None) -> Source:
        """A new secret; the ones before it keep verifying for 24 hours (webhook_secrets)."""

        def write(before: Source) -> Source:
            now = self._clock.now()
            return self._store.update_secrets(
                before, replace(before, secrets=rotated(before.secrets, now), updated_at=now)
            )

        return update_at_version(
            "webhook source", lambda: self.get(source_id, consistent=True), write, if_match
        )

    def delete(self, source_id: str, if_match: int | None) -> None:
        """Delete the source (its deliveries are refused from now on, 404) and mark what it
        left, its deliveries and guards, for the queue's consumer to purge. A source deleted
        whose purge is not done yet is deleted again: its purge is queued again (so a DELETE
        answered 503, its message unsent, can be sent again)."""
        source = self._store.get_source(source_id, consistent=True)
        if source is None:
            if not self._store.deleted(source_id):
                raise NotFound(f"No webhook source has the id {source_id!r}.")
        else:
            if if_match is not None and source.version != if_match:
                raise PreconditionFailed(
                    f"The webhook source is at version {source.version}, not {if_match}: "
                    "re-read it and retry."
                )
            try:
                self._store.delete_source(source, self._clock.now())
            except storage.VersionConflict:
                raise PreconditionFailed(
                    "The webhook source was changed by another request: re-read it and retry."
                ) from None
        _send(
            self._queue,
            {"source_id": source_id, "purge": True},
            "The webhook source is deleted, but what it left could not be queued for deletion: "
            "send the DELETE again.",
        )

    def deliveries(
        self, source_id: str, status: str | None, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        self.get(source_id)
        return page_of(
            self._cursors,
            f"webhook-sources/{source_id}/deliveries?status={status or '*'}",
            cursor,
            lambda start: self._store.deliveries(source_id, status, limit, start),
        )

    # -- the sender -----------------------------------------------------------------------------

    def receive(
        self, source_id: str, headers: Mapping[str, str], body: bytes, validate: Validate
    ) -> Delivery:
        """Verify, store and queue one delivery; the one stored if its webhook-id came before.
        In this order: an unknown source is NotFound; a bad signature SignatureUnauthorized
        naming the header; a body over 256 KB PayloadTooLarge; one that is no payload of the
        source's kind Unprocessable naming the fields (`validate`), and stored nowhere."""
        now = self._clock.now()
        # Strongly consistent: a secret rotated a moment ago verifies at once.
        source = self.get(source_id, consistent=True)
        try:
            webhook_id = webhook_signatures.verify(
                source.verifying(now), headers, body, now, self._tolerance_s
            )
        except webhook_signatures.SignatureRefused as refused:
            raise SignatureUnauthorized(refused.header, refused.message) from None
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"The body is {len(body)} bytes; a webhook's limit is {MAX_BODY_BYTES}.")
        payload = validate(source.kind, body, now)
        received = Delivery(
            source_id,
            webhook_id,
            now,
            payload["type"],
            payload=payload,
            named_customer_id=self._named(payload),
        )
        try:
            delivery = self._store.add_delivery(received)
        except storage.AlreadyExists:
            delivery = self._store.get_delivery(source_id, webhook_id)
            if delivery is None:  # gone since (its source was deleted): nothing to do again
                raise NotFound(f"No webhook source has the id {source_id!r}.") from None
            if delivery.final:
                return delivery
        _send(
            self._queue,
            {"source_id": source_id, "webhook_id": webhook_id},
            "The delivery is stored but could not be queued: send it again, with the same webhook-id.",
        )
        return delivery

    def _named(self, payload: dict[str, Any]) -> str | None:
        """The existing customer a payload names: its customer_id as given, else the owner of
        its email address (a key lookup), else None (a new customer, made when processed)."""
        work = webhook_payloads.read(payload)
        if isinstance(work, Posted) and work.customer_id:
            return work.customer_id
        if work.contact is None:
            return None
        found = self._customers.find_by_email(work.contact.email).items
        return found[0].id if found else None


class _Refused(Exception):
    """The delivery cannot become an interaction, however often it is tried."""

    def __init__(self, reason: str, customer_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.customer_id = customer_id


class Waiting(Exception):
    """The delivery needs something that may still come (a refund's order): tried again later,
    it fails with this reason on its last receive."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _sentence(error: CrmError, renamed: Mapping[str, str]) -> str:
    """A refusal of the timeline's rules, with its fields named as the payload names them."""
    fields = "; ".join(f"{renamed.get(e.field, 'data.' + e.field)} {e.message}" for e in error.errors)
    return f"{error.detail} ({fields})" if fields else error.detail


def _refusal(error: CrmError) -> bool:
    """The timeline's refusals of what a delivery asks for (a return of more than was bought);
    a Conflict naming no field is a lost race instead, worth trying again."""
    return isinstance(error, Unprocessable) or (isinstance(error, Conflict) and bool(error.errors))


class InboundWebhookProcessor:
    def __init__(
        self,
        store: SourceStore,
        customers: CustomerDirectory,
        timeline: Timeline,
        clock: Clock,
        queue: Callable[[], WorkQueue],
    ) -> None:
        self._store = store
        self._customers = customers
        self._timeline = timeline
        self._clock = clock
        self._queue = queue

    def process(self, source_id: str, webhook_id: str, *, last_receive: bool = False) -> Delivery | None:
        """Make a received delivery its interaction, once; answer it as it ends (None if it is
        gone). Errors that may pass are raised (the queue tries again); on the `last_receive`
        a delivery still waiting fails with the reason."""
        delivery = self._store.get_delivery(source_id, webhook_id)
        if delivery is None or delivery.final:
            return delivery
        if delivery.stripped:
            erased = replace(delivery, status=FAILED, error=ERASED, processed_at=self._clock.now())
            self._store.finish(erased)
            return erased
        try:
            guard = self._do(delivery, webhook_payloads.read(delivery.payload or {}))
            outcome = replace(
                delivery,
                status=PROCESSED,
                customer_id=guard.customer_id,
                interaction_id=guard.interaction_id,
                processed_at=self._clock.now(),
            )
        except _Refused as refused:
            outcome = replace(
                delivery,
                status=FAILED,
                customer_id=refused.customer_id,
                error=refused.reason,
                processed_at=self._clock.now(),
            )
        except Waiting as waiting:
            if not last_receive:
                raise
            outcome = replace(delivery, status=FAILED, error=waiting.reason, processed_at=self._clock.now())
        outcome = replace(outcome, payload=None)  # what the store keeps of a final delivery
        self._store.finish(outcome)
        return outcome

    def fail(self, source_id: str, webhook_id: str, reason: str = UNPROCESSABLE) -> None:
        """The last receive of a delivery whose processing kept failing."""
        delivery = self._store.get_delivery(source_id, webhook_id)
        if delivery is not None and not delivery.final:
            self._store.finish(replace(delivery, status=FAILED, error=reason, processed_at=self._clock.now()))

    def purge(self, source_id: str, deadline: Deadline | None = None) -> int:
        """Delete what a deleted source left (its deliveries and guards): how many items went.
        What the `deadline` leaves is handed on, as a new purge message, to a later invocation."""
        removed, done = self._store.purge_source(source_id, deadline)
        if not done:
            self._queue().send({"source_id": source_id, "purge": True})
        return removed

    # -- one delivery ---------------------------------------------------------------------------

    def _do(self, delivery: Delivery, work: Order | Ticket | Posted) -> Guard:
        source_id, at = delivery.source_id, delivery.received_at
        if isinstance(work, Order):
            occurred_at = work.occurred_at or at
            fields = work.fields() | {"occurred_at": occurred_at}
            if work.refund_of is None:
                customer = lambda: self._customer(source_id, work.contact)  # noqa: E731
            else:
                purchase = self._purchase(source_id, work.refund_of)
                fields["purchase_id"] = purchase.interaction_id
                customer = lambda: purchase.customer_id  # noqa: E731
            key = order_guard(work.order_id) if work.refund_of is None else refund_guard(work.order_id)
            guard = self._claimed(source_id, key, customer, occurred_at)
            return self._write(guard, fields, {"purchase_id": "data.refund_of"})
        if isinstance(work, Ticket):
            customer = lambda: self._customer(source_id, work.contact)  # noqa: E731
            guard = self._claimed(source_id, ticket_guard(work.ticket_id), customer, at)
            return self._write(guard, work.fields() | {"occurred_at": at})
        occurred_at = work.fields.get("occurred_at") or at
        customer_id = work.customer_id or self._customer(source_id, work.contact)  # type: ignore[arg-type]
        # The webhook-id names the interaction: a redelivery finds the one it wrote.
        digest = hashlib.sha256(f"{source_id}\n{delivery.id}".encode()).digest()
        interaction_id = f"{ids.INTERACTION}_{ids.ulid_from(occurred_at, digest[:10])}"
        missing = (
            f"data.customer_id names no customer ({customer_id!r}: none has that id, or it was "
            "deleted or erased); nothing was recorded."
            if work.customer_id
            else None
        )
        guard = Guard(source_id, "", customer_id, interaction_id, at)
        return self._write(guard, work.fields | {"occurred_at": occurred_at}, missing=missing)

    def _claimed(self, source_id: str, key: str, customer: Callable[[], str], at: datetime) -> Guard:
        """The guard of an external id: the one claimed before, else a new claim (the customer
        found or created, the interaction's id drawn now)."""
        found = self._store.guard(source_id, key)
        if found is not None:
            return found
        guard = Guard(source_id, key, customer(), ids.new_id(ids.INTERACTION, at), self._clock.now())
        try:
            self._store.claim(guard)
        except storage.AlreadyExists:
            found = self._store.guard(source_id, key)  # another delivery of it claimed it first
            if found is None:
                raise
            return found
        return guard

    def _write(
        self, guard: Guard, fields: dict, renamed: Mapping[str, str] | None = None, missing: str | None = None
    ) -> Guard:
        try:
            self._timeline.record(guard.customer_id, dict(fields), guard.interaction_id)
        except storage.AlreadyExists:
            pass  # written by another delivery of it, or by this one before it stopped
        except NotFound:
            reason = missing or f"Customer {guard.customer_id} was deleted or erased: nothing was recorded."
            raise _Refused(reason, None if missing else guard.customer_id) from None
        except CrmError as error:
            if not _refusal(error):
                raise
            raise _Refused(_sentence(error, renamed or {}), guard.customer_id) from None
        return guard

    def _purchase(self, source_id: str, order_id: str) -> Guard:
        """The guard of the order a refund refunds, once its purchase is recorded."""
        guard = self._store.guard(source_id, order_guard(order_id))
        if guard is None:
            raise Waiting(f"data.refund_of names {order_id!r}, no order this source has sent.")
        try:
            self._timeline.get(guard.customer_id, guard.interaction_id)
        except NotFound:
            raise Waiting(f"The order {order_id!r} that data.refund_of names is not recorded.") from None
        return guard

    def _customer(self, source_id: str, contact: Contact) -> str:
        """The customer with the contact's email address, else a new one of its details. Two
        deliveries creating the same customer at once: the email is unique, the loser finds it."""

        def attempt() -> str:
            found = self._customers.find_by_email(contact.email).items
            if found:
                return found[0].id
            return self._customers.create(contact.profile(), Actor(source_id, ROLE, RECEIVE_ROUTE)).id

        return retry_lost_races(
            attempt,
            Conflict("The customer's email address kept changing hands: retry."),
            attempts=3,
            lost=Conflict,
        )
