"""One record of an import file written as the HTTP API would write it: validated by the API's
own models (the `RowValidators` the composition root passes in), through the same services,
with ids derived from the import and the row (domain/imports.py), so a second run of the row
finds what its first run wrote and creates nothing twice. In a dry run nothing is written: the
lookups and checks run, and the outcome says what would have happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chalicelib.domain import audit
from chalicelib.domain.clock import to_stored_precision
from chalicelib.domain.contact import email_key
from chalicelib.domain.customers import Customer
from chalicelib.domain.import_formats import Record
from chalicelib.domain.imports import (
    BLANK,
    CREATED,
    ROW_FAILED,
    SKIPPED,
    UNCHANGED,
    UPDATED,
    Import,
    RowOutcome,
    content_interaction_id,
    cut_source,
    row_customer_id,
    row_interaction_id,
)
from chalicelib.errors import CrmError, FieldError, ServiceBusy

MAX_EMAIL_LENGTH = 254
MAX_ID_LENGTH = 64


def _plausible_id(value: str) -> bool:
    return 0 < len(value) <= MAX_ID_LENGTH and value.isascii() and value.isprintable()


class RowValidators(Protocol):
    """The API's request models, as functions: each raises ValidationFailed naming the fields."""

    def customer_create(self, body: dict) -> dict: ...
    def customer_patch(self, body: dict) -> dict: ...
    def interaction(self, body: dict, now: datetime) -> dict: ...


class RowCustomers(Protocol):
    def get(self, customer_id: str, *, consistent: bool = False) -> Customer | None: ...
    def by_email(self, key: str) -> Customer | None: ...
    def by_emails(self, keys: list[str]) -> dict[str, Customer | None]: ...


@dataclass(frozen=True)
class _Done:
    outcome: str
    customer_id: str | None = None
    interaction_id: str | None = None
    reason: str | None = None
    errors: tuple[tuple[str, str], ...] = ()


def _failed(errors: list[FieldError], reason: str) -> _Done:
    return _Done(ROW_FAILED, reason=reason, errors=tuple((e.field, e.message) for e in errors))


def _refused(error: CrmError) -> _Done:
    errors = error.errors or [FieldError("row", error.detail)]
    return _failed(errors, error.detail)


def _problem(field: str, message: str) -> _Done:
    return _failed([FieldError(field, message)], f"{field} {message}")


class ImportRows:
    def __init__(
        self,
        validators: RowValidators,
        customers: RowCustomers,
        customer_service: Callable[[Callable[[], str]], Any],
        duplicates: Any,
        interaction_service: Any,
        interactions: Any,
        resolve_alias: Callable[[str], str | None],
        now: Callable[[], datetime],
        latest_audit: Callable[[str], audit.AuditEntry | None] = lambda customer_id: None,
    ) -> None:
        self._validators = validators
        self._customers = customers
        # A CustomerService whose next new customer gets the id the given function answers.
        self._customer_service = customer_service
        self._duplicates = duplicates
        self._interaction_service = interaction_service
        self._interactions = interactions
        self._resolve_alias = resolve_alias
        self._now = now
        # The newest audit entry of a customer: whether a retried row's update was this import's.
        self._latest_audit = latest_audit
        self._retrying = False
        self._by_email: dict[str, Customer | None] = {}
        # New customers (create mode): each row's validated fields, the duplicate detection of
        # the chunk's rows (DuplicateService.detector) and the customers its rows created.
        self._fields: dict[int, dict] = {}
        self._detect: Callable[[Customer, list[Customer]], list] | None = None
        self._created: dict[int, Customer] = {}

    def prepare(self, imp: Import, records: list[Record]) -> None:
        """Read in batches what the rows of a chunk would look up one by one: the customers
        that interaction rows name by email; the duplicate candidates of new customers."""
        options = imp.options
        if options.kind == "customers" and self._detects_ahead(imp):
            self._prepare_new_customers(imp, records)
            return
        if options.kind != "interactions" or options.match_on != "email":
            return
        keys = []
        for record in records:
            ref = (record.customer_ref or "").strip()
            if record.body is None or not ref or len(ref) > MAX_EMAIL_LENGTH:
                continue
            try:
                key = email_key(ref)
            except ValueError:
                continue  # the row fails, naming the field, when it is written
            if key not in self._by_email:
                keys.append(key)
        if keys:
            self._by_email.update(self._customers.by_emails(keys))

    @staticmethod
    def _detects_ahead(imp: Import) -> bool:
        options = imp.options
        return options.mode == "create" and options.on_duplicate == "create" and not options.dry_run

    def _prepare_new_customers(self, imp: Import, records: list[Record]) -> None:
        now = self._now()
        candidates = []
        for record in records:
            if record.blank or record.body is None:
                continue
            try:
                fields = self._validators.customer_create(dict(record.body))
            except CrmError:
                continue  # the row fails, naming the fields, when it is written
            self._fields[record.rows[0]] = fields
            new_id = row_customer_id(imp.id, record.rows[0])
            candidates.append(Customer(id=new_id, created_at=now, updated_at=now, **fields))
        self._detect = self._duplicates.detector(candidates) if candidates else None

    def together(self, imp: Import) -> int:
        """How many records of `imp` may be written in one transaction (their writes and
        outcomes, while they fit): any number in a dry run (it writes outcomes only), of
        interactions, whose rows depend on no other row of the file but a return on its
        purchase (see `alone`), and of new customers whose duplicates were looked for ahead
        (`prepare`: the rows written before one are scored as they were created). One for
        a new customer that is skipped as a duplicate (detection reads what the row before
        wrote); none (0) for an update of a customer, which reads the profile it changes."""
        options = imp.options
        if options.dry_run or options.kind == "interactions" or self._detects_ahead(imp):
            return 1_000_000
        return 1 if options.mode == "create" else 0

    def undo(self, records: list[Record]) -> dict[int, Customer]:
        """The transactions of `records` did not commit (or are not to be counted on yet): none
        of them created a customer. Answers what was forgotten, for `restore`."""
        return {r.rows[0]: self._created.pop(r.rows[0]) for r in records if r.rows[0] in self._created}

    def restore(self, forgotten: dict[int, Customer]) -> None:
        """What `undo` forgot did commit after all."""
        self._created.update(forgotten)

    @staticmethod
    def alone(imp: Import, record: Record) -> bool:
        """A record written on its own, after the others before it: a return reads its purchase
        (which may be an earlier row)."""
        body = record.body or {}
        return imp.options.kind == "interactions" and not imp.options.dry_run and body.get("type") == "return"

    def write(self, imp: Import, record: Record, *, retrying: bool = False) -> list[RowOutcome]:
        """The outcome of each row of `record` (one, or an interaction's group of rows).
        `retrying`: the chunk ran before (its message is received again), so a row may have
        been written by that run without its outcome."""
        self._retrying = retrying
        if record.blank:
            done = _Done(SKIPPED, reason=BLANK)
        elif record.body is None:
            problems = [FieldError(p.field, p.message) for p in record.problems] or [
                FieldError("row", "could not be read")
            ]
            done = _failed(problems, "; ".join(f"{p.field} {p.message}" for p in problems))
        else:
            try:
                if imp.options.kind == "customers":
                    done = self._customer(imp, record)
                else:
                    done = self._interaction(imp, record)
            except ServiceBusy:
                raise  # other writers kept winning: the chunk is run again, the row not failed
            except CrmError as error:
                done = _refused(error)
        source = cut_source(record.source) if done.outcome == ROW_FAILED else None
        return [
            RowOutcome(
                row=row,
                outcome=done.outcome,
                customer_id=done.customer_id,
                interaction_id=done.interaction_id,
                reason=done.reason,
                errors=done.errors,
                source=source,
            )
            for row in record.rows
        ]

    # --- customers -----------------------------------------------------------------------------

    def _actor(self, imp: Import) -> audit.Actor:
        return audit.Actor(imp.requested_by, "staff", f"import {imp.id}")

    def _customer(self, imp: Import, record: Record) -> _Done:
        body = dict(record.body or {})
        options = imp.options
        if options.mode == "create":
            fields = self._fields.get(record.rows[0]) or self._validators.customer_create(body)
            return self._create(imp, record, fields)
        if options.match_on == "id":
            if not record.customer_ref:
                return _problem("id", "is required to match on id")
            customer = self._live_customer(record.customer_ref)
            if customer is None:
                return _problem("id", "is not the id of a customer")
            return self._update(imp, customer, self._validators.customer_patch(body))
        if not body.get("email"):
            return _problem("email", "is required to match on email")
        changes = self._validators.customer_patch(body)
        existing = self._customers.by_email(email_key(changes["email"]))
        if existing is None:
            return self._create(imp, record, self._validators.customer_create(body))
        return self._update(imp, existing, changes)

    def _live_customer(self, customer_id: str) -> Customer | None:
        """The customer of an id; a merged id follows its alias to the customer it now is."""
        if not _plausible_id(customer_id):
            return None  # no key lookup for what cannot be an id (DynamoDB refuses long keys)
        customer = self._customers.get(customer_id, consistent=True)
        if customer is None:
            survivor = self._resolve_alias(customer_id)
            customer = self._customers.get(survivor, consistent=True) if survivor else None
        return customer

    def _create(self, imp: Import, record: Record, fields: dict) -> _Done:
        new_id = row_customer_id(imp.id, record.rows[0])
        # An earlier run of this row may have created it: looked for first only where detection
        # (which would find the row's own customer) or a dry run decides; otherwise the
        # creation itself, conditional on the id being free, finds it.
        looked = imp.options.on_duplicate == "skip" or imp.options.dry_run
        if looked and self._customers.get(new_id, consistent=True) is not None:
            return _Done(CREATED, customer_id=new_id)
        now = self._now()
        candidate = Customer(id=new_id, created_at=now, updated_at=now, **fields)
        flagged = None
        if imp.options.on_duplicate == "skip":
            # Strongly consistent: the row before may be this same person, created a moment ago.
            flagged = self._duplicates.possible_duplicates(candidate, consistent=True)
            if flagged:
                best = flagged[0]
                return _Done(
                    SKIPPED,
                    customer_id=best.customer_id,
                    reason=f"duplicate of {best.customer_id} (score {best.score:.2f})",
                )
        if imp.options.dry_run:
            if candidate.email and self._customers.by_email(email_key(candidate.email)) is not None:
                return _failed(
                    [FieldError("email", "is already used by another customer")],
                    "Another customer already has this email address.",
                )
            return _Done(CREATED)
        if flagged is None and self._detect is not None and record.rows[0] in self._fields:
            flagged = self._detect(candidate, list(self._created.values()))
        try:
            created = self._customer_service(lambda: new_id).create(fields, self._actor(imp), flagged=flagged)
        except Exception:
            if self._customers.get(new_id, consistent=True) is not None:
                return _Done(CREATED, customer_id=new_id)  # by an earlier run of this row
            raise
        self._created[record.rows[0]] = created
        return _Done(CREATED, customer_id=created.id)

    def _update(self, imp: Import, before: Customer, changes: dict) -> _Done:
        if imp.options.dry_run:
            now = self._now()
            unchanged = before.with_changes(changes, now) == before.with_changes({}, now)
            return _Done(
                SKIPPED if unchanged else UPDATED,
                customer_id=before.id,
                reason=UNCHANGED if unchanged else None,
            )
        service = self._customer_service(lambda: before.id)
        after = service.update(before.id, changes, None, self._actor(imp))
        if after.version == before.version:
            if self._retrying and self._updated_by(imp, before.id):
                return _Done(UPDATED, customer_id=before.id)  # by the run that crashed
            return _Done(SKIPPED, customer_id=before.id, reason=UNCHANGED)
        return _Done(UPDATED, customer_id=before.id)

    def _updated_by(self, imp: Import, customer_id: str) -> bool:
        """The customer's last change was an update by this import: the earlier run of the row
        wrote it (in the update's own transaction) and died before the row's outcome."""
        entry = self._latest_audit(customer_id)
        return entry is not None and entry.action == "update" and entry.actor.route == self._actor(imp).route

    # --- interactions --------------------------------------------------------------------------

    def _interaction(self, imp: Import, record: Record) -> _Done:
        options = imp.options
        field = "customer_email" if options.match_on == "email" else "customer_id"
        ref = (record.customer_ref or "").strip()
        if not ref:
            return _problem(field, "is required")
        if options.match_on == "email":
            if len(ref) > MAX_EMAIL_LENGTH:
                return _problem(field, f"is longer than {MAX_EMAIL_LENGTH} characters")
            try:
                key = email_key(ref)
            except ValueError as error:
                return _problem(field, str(error))
            if key not in self._by_email:  # a chunk's rows often name the same customers
                self._by_email[key] = self._customers.by_email(key)
            customer = self._by_email[key]
        else:
            customer = self._live_customer(ref)
        if customer is None:
            return _problem(
                field,
                "is not the email address of a customer"
                if options.match_on == "email"
                else "is not the id of a customer",
            )
        body = dict(record.body or {})
        fields = self._validators.interaction(body, self._now())
        occurred_at = fields.get("occurred_at")
        if occurred_at is None:
            if options.mode == "upsert":
                return _problem(
                    "occurred_at", "is required in upsert mode: it is part of what identifies the interaction"
                )
            # The import's start, the same on every run of the row.
            occurred_at = imp.started_at or imp.created_at
            fields["occurred_at"] = occurred_at
        if options.mode == "upsert":
            interaction_id = content_interaction_id(customer.id, fields, occurred_at)
        else:
            interaction_id = row_interaction_id(imp.id, record.rows[0], occurred_at)
        if options.dry_run:
            if self._interactions.get(customer.id, interaction_id, consistent=True) is None:
                return _Done(CREATED, customer_id=customer.id)
            existed = True
        else:
            # Recording with a given id answers the interaction already there, if any: one
            # written before this call (by an earlier run of the row, or an earlier import).
            before = self._now()
            written = self._interaction_service.record(
                customer.id,
                {**fields, "import_id": imp.id},
                interaction_id,
                # A row's own id (create mode) is free but on a run after one that died.
                fresh=options.mode == "create" and not self._retrying,
            )
            existed = written.created_at < to_stored_precision(before)
        if existed and options.mode == "upsert":
            return _Done(SKIPPED, customer.id, interaction_id, UNCHANGED)
        return _Done(CREATED, customer.id, interaction_id)
