"""Merging a duplicate customer into another: the request (checked, previewed or started) and
the merge as it progresses.

A start is one transaction (store/merges.py): the survivor's profile takes the survived
fields and the merged customer's addresses, the merged profile goes, its id becomes an alias of
the survivor, and a running merge is written, whose job (services/merge_job.py) moves the rest
(interactions, cases, audit trail, ...) in pages. While it runs, both customers carry a marker
that refuses any other merge involving them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.domain import audit, ids
from chalicelib.domain.audit import Actor, AuditEntry
from chalicelib.domain.clock import Clock
from chalicelib.domain.customers import EDITABLE_FIELDS, Customer
from chalicelib.domain.merges import CHOOSABLE, RUNNING, SIDES, Merge, SurvivorshipError, survive
from chalicelib.domain.storage import EmailTaken, VersionConflict
from chalicelib.errors import Conflict, FieldError, MergedInto, NotFound, Unprocessable
from chalicelib.services.ports import Merges, MergingCustomers
from chalicelib.services.versions import retry_lost_races

# The fields a merge's audit entry compares (the secondary ones are what a merge adds).
AUDITED = (*EDITABLE_FIELDS, "secondary_emails", "secondary_phones")
FIRST_STEP = "interactions"


@dataclass(frozen=True)
class MergePreview:
    """A dry run: the survivor's profile as the merge would leave it, and what would move."""

    profile: Customer
    sources: dict[str, str]
    counts: dict[str, int]


class MergeService:
    def __init__(
        self,
        merges: Merges,
        customers: MergingCustomers,
        clock: Clock,
        new_id: Callable[[datetime], str] = lambda at: ids.new_id(ids.MERGE, at),
    ) -> None:
        self._merges = merges
        self._customers = customers
        self._clock = clock
        self._new_id = new_id

    def preview(
        self, survivor_id: str, merged_id: str, fields: Mapping[str, Any], *, force: bool = False
    ) -> MergePreview:
        """What `start` would do, refused as it would be; nothing is written."""
        choices = _choices(fields)
        survivor, merged = self._pair(survivor_id, merged_id, force)
        profile, sources = _survive(survivor, merged, choices, self._clock.now())
        return MergePreview(profile, sources, self._merges.counts(merged_id))

    def start(
        self,
        survivor_id: str,
        merged_id: str,
        fields: Mapping[str, Any],
        actor: Actor,
        *,
        force: bool = False,
    ) -> Merge:
        """Merge `merged_id` into `survivor_id`: the profiles at once, the rest by the merge's
        job. Refused (409) for the same id, an alias, an erased customer, a customer a running
        merge involves, or two customers recorded as different people (unless `force`); 404
        for an unknown or deleted one; 422 for a `fields` key or side that is none."""
        choices = _choices(fields)

        def attempt() -> Merge:
            survivor, merged = self._pair(survivor_id, merged_id, force)
            now = self._clock.now()
            after, sources = _survive(survivor, merged, choices, now)
            merge = Merge(
                id=self._new_id(now),
                survivor_id=survivor.id,
                merged_id=merged.id,
                status=RUNNING,
                step=FIRST_STEP,
                requested_by=actor,
                created_at=now,
                sources=sources,
            )
            try:
                self._merges.start(
                    merge, survivor, after, merged, _audit_entry(survivor, after, merged, actor, now)
                )
            except EmailTaken:
                # An address of the two went to a third customer meanwhile (so one of the
                # profiles changed too): read both again.
                raise VersionConflict(survivor.id) from None
            return merge

        return retry_lost_races(
            attempt, Conflict("The customers are being changed by other requests right now: retry.")
        )

    def get(self, merge_id: str) -> Merge:
        merge = self._merges.get(merge_id)
        if merge is None:
            raise NotFound(f"No merge has the id {merge_id!r}.")
        return merge

    def _pair(self, survivor_id: str, merged_id: str, force: bool) -> tuple[Customer, Customer]:
        """Both profiles, strongly consistent (the start is conditional on their versions),
        once every check passed."""
        if survivor_id == merged_id:
            raise Conflict(
                "A customer cannot be merged into itself.",
                errors=[FieldError("merge_id", "is the id of the customer to merge into")],
            )
        survivor = self._customers.get(survivor_id, consistent=True)
        if survivor is None:
            self._refuse_missing(survivor_id, None, "to merge into")
        merged = self._customers.get(merged_id, consistent=True)
        if merged is None:
            self._refuse_missing(merged_id, "merge_id", "to merge")
        for customer_id in (survivor_id, merged_id):
            running = self._merges.running(customer_id)
            if running is not None:
                raise Conflict(
                    f"Customer {customer_id} is being merged (merge {running} is running): a customer "
                    "a running merge involves, on either side, can be merged once it has completed."
                )
        if not force and self._merges.not_duplicates(survivor_id, merged_id):
            raise Conflict(
                "The two customers were recorded as different people (not-duplicate): send "
                '"force": true to merge them anyway.',
                errors=[FieldError("force", "must be true to merge customers recorded as different people")],
            )
        return survivor, merged

    def _refuse_missing(self, customer_id: str, field: str | None, role: str) -> None:
        named = [FieldError(field, "is no customer")] if field else None
        into = self._merges.resolve(customer_id, consistent=True)
        if into is not None:
            raise MergedInto(
                f"Customer {customer_id} was merged into {into}: merge {into} instead.",
                into,
                [FieldError(field, f"was merged into {into}")] if field else None,
            )
        if self._customers.erased_at(customer_id, consistent=True) is not None:
            raise Conflict(
                f"Customer {customer_id} was erased: an erased customer can be merged with no one.",
                errors=[FieldError(field, "was erased")] if field else None,
            )
        if self._customers.was_deleted(customer_id, consistent=True):
            raise NotFound(f"Customer {customer_id} ({role}) was deleted.", errors=named)
        raise NotFound(f"No customer has the id {customer_id!r} ({role}).", errors=named)


def _choices(fields: Mapping[str, Any]) -> dict[str, str]:
    """`fields` of the request, each key a field of CHOOSABLE and each value a side (422)."""
    errors = [
        FieldError(f"fields.{name}", f"is not a field a merge chooses; those are {', '.join(CHOOSABLE)}")
        for name in fields
        if name not in CHOOSABLE
    ]
    errors += [
        FieldError(f"fields.{name}", 'must be "survivor" or "merged"')
        for name, side in fields.items()
        if name in CHOOSABLE and side not in SIDES
    ]
    if errors:
        raise Unprocessable("The merge's `fields` name unknown fields or sides.", errors=errors)
    return dict(fields)


def _survive(
    survivor: Customer, merged: Customer, choices: dict[str, str], at: datetime
) -> tuple[Customer, dict[str, str]]:
    try:
        return survive(survivor, merged, choices, at)
    except SurvivorshipError as error:
        raise Conflict(
            f"The two customers cannot be merged: {error.message}.",
            errors=[FieldError(error.field, error.message)],
        ) from None


def _audit_entry(
    before: Customer, after: Customer, merged: Customer, actor: Actor, at: datetime
) -> AuditEntry:
    """The survivor's `merge` entry: its changed fields, and the id merged into it."""
    fields = {name: getattr(before, name) for name in AUDITED}
    changed = audit.diff(fields, {name: getattr(after, name) for name in AUDITED}, AUDITED)
    return audit.entry(
        "customer",
        before.id,
        "merge",
        actor,
        at,
        (*changed, audit.Change("merged_id", None, merged.id)),
        before.id,
    )
