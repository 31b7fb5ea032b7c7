"""GDPR erasure: remove a person's personal data from every item, keep anonymous aggregates.

What happens to each item of an erased customer:

- **profile, email lookup, name-search entries**: deleted, in one transaction with the rest of
  step 1. A tombstone (`CUSTOMER#<id>`/`DELETED`) stays with `deleted_at` and `erased_at` only:
  staff routes answer 404 (no profile), self-service routes 410 Gone (the tombstone says erased),
  and late stream records of the customer are recognised and skipped.
- **loyalty aggregates**: moved, in that same transaction, to `ANONYMOUS#<anon id>`/`LOYALTY`:
  counts, net spend per currency and first/last purchase times, without the customer id or the
  tier index attributes (`tier`, `tier_sk`, `review_*`), so the item is in no index. The per-SKU
  habits (`HABIT#<sku>` items, any number of them) are copied to `ANONYMOUS#<anon id>`/
  `HABIT#<sku>` just before, page by page, with SKUs and numbers only (no line-item names, no
  interaction ids); the transaction is conditional on the aggregates' version read before the
  copy, and every habit write bumps that version, so the copy is what the moved aggregates
  counted. The anon id is random (`anon_<ULID>`) and stored nowhere next to the customer id:
  nothing links the aggregates back to the person.
- **interactions and cases**: deleted, not kept scrubbed. Their free texts (notes, message
  subjects and texts, complaint subjects, case history notes, resolutions, acknowledgement
  emails) are personal data, and what remains without them (a time, a channel, a severity) is
  what the aggregates already keep; scrubbed cases re-pointed to an anonymous id would also stay
  in the due/escalation indexes and be escalated for nobody. Deleting them sends REMOVE records
  through the stream consumers: the loyalty consumer finds the customer gone and erased
  (tombstone) and skips them; `open_cases` reads INSERTs only; no consumer logs or stores a
  REMOVE image's texts.
- **loyalty guards** (`APPLIED#…`) and habit items (`HABIT#…`): deleted.
- **audit trail**: kept (who changed which field when, and the `erase` entry itself, whose
  actor is the staff member and which carries no changes), with the before/after values of
  every personal field (`PII_FIELDS`) replaced by null.
- **idempotency records** holding the customer's requests or responses: deleted through the
  pointers written under the customer when each response was stored (store/idempotency.py).
- **sign-in links** (`IDENTITY#<iss>#<sub>`, which Cognito user the customer is) and a pending
  change of email address: deleted (store/identities.py; the loyalty purge takes the rest).
- **webhook items** (`crm-<stage>-webhooks`): every item that names the customer, found by GSI
  `by_customer`: the order, refund and ticket ids claimed for their interactions and outbound
  deliveries are deleted; inbound deliveries (those still waiting on the queue too) are
  stripped to their webhook-id, type, status and times, so a resend of one is answered as
  before and re-creates no one (store/webhook_sources.forget_customer).
- **ids merged into the customer** (services/merge_job.py moved their data to the customer,
  so it is erased above): the alias of each (`CUSTOMER#<merged id>`/`MERGED`), whatever is
  left under it, and the customer's `ALIAS#` pointer to it are deleted, so every merged id
  answers 404 like an id that never was. An erasure asked for while a merge involving the
  customer runs waits for it (the job hands itself on, WaitForMerge) and then erases what the
  merge moved too. The merge items (`MERGE#<id>`: two ids, field sources, counts) stay.
- **export documents** in the exports bucket (`exports/<customer id>/…`) and the customer's
  export jobs: deleted. The erasure's own job stays, to show that it completed.

Step 1 (one transaction) makes the erasure visible and final; step 2 (`purge`) deletes and
scrubs the rest with Queries on the customer's keys, never a Scan. Every part of step 2 is
idempotent, and the customers stream's REMOVE of the profile runs the same purge of timeline,
cases, loyalty items and idempotency records again, so an erasure interrupted after step 1
still completes. `erase` runs as a job (services/jobs.py): called again for a customer whose
step 1 is done, it goes on with step 2; given a deadline, step 2 stops with OutOfTime after a
batch once it has passed, and the next call goes on where it stopped (what is deleted is not
found again).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.domain import audit, ids
from chalicelib.domain.audit import PII_FIELDS, Actor
from chalicelib.domain.clock import Clock, Deadline
from chalicelib.domain.jobs import EXPORT
from chalicelib.errors import Conflict, NotFound
from chalicelib.services.merge_ports import MergedIds
from chalicelib.services.ports import (
    AuditTrail,
    CaseRemains,
    CustomerRemains,
    Documents,
    ErasableCustomers,
    ErasableLoyalty,
    Forgetting,
    JobRemains,
)
from chalicelib.services.versions import retry_lost_races

MAX_ATTEMPTS = 3
ANONYMOUS = "anon"


class WaitForMerge(Exception):
    """A merge involving the customer is running: the erasure waits until it completes (its
    job hands itself on), so that it erases what the merge moved as well."""

    def __init__(self, merge_id: str) -> None:
        super().__init__(merge_id)
        self.merge_id = merge_id


@dataclass(frozen=True)
class Purged:
    """What purging a deleted customer did: `erased` (a GDPR erasure's purge ran again), or how
    many timeline entries it removed and cases it closed."""

    erased: bool
    interactions: int = 0
    cases_closed: int = 0


class ErasureService:
    def __init__(
        self,
        customers: ErasableCustomers,
        interactions: CustomerRemains,
        cases: CaseRemains,
        loyalty: ErasableLoyalty,
        audit_trail: AuditTrail,
        idempotency: Forgetting,
        clock: Clock,
        jobs: JobRemains,
        documents: Documents,
        identities: Forgetting | None = None,
        new_anonymous_id: Callable[[], str] = lambda: ids.new_id(ANONYMOUS),
        segments: Forgetting | None = None,
        campaign_sends: Forgetting | None = None,
        webhooks: Forgetting | None = None,
        merges: MergedIds | None = None,
    ) -> None:
        self._merges = merges
        self._webhooks = webhooks
        self._identities = identities
        self._segments = segments
        self._campaign_sends = campaign_sends
        self._customers = customers
        self._interactions = interactions
        self._cases = cases
        self._loyalty = loyalty
        self._audit = audit_trail
        self._idempotency = idempotency
        self._clock = clock
        self._jobs = jobs
        self._documents = documents
        self._new_anonymous_id = new_anonymous_id

    def erase(self, customer_id: str, actor: Actor, deadline: Deadline | None = None) -> None:
        """Erase a customer: step 1 once, then step 2. NotFound if there is no profile and the
        customer was never erased (unknown, or deleted); an erased customer's step 2 runs again.
        With a `deadline`, OutOfTime means: call again to go on."""
        anonymous_id = self._new_anonymous_id()
        copied: set[str] = set()  # SKUs whose habits are copied under the anonymous id

        def step_1() -> None:
            nonlocal copied
            # Strongly consistent: the erasure's transaction is conditional on what is read.
            customer = self._customers.get(customer_id, consistent=True)
            if customer is None:
                if self._customers.erased_at(customer_id, consistent=True):
                    return  # step 1 is done: resume with step 2
                if self._customers.was_deleted(customer_id, consistent=True):
                    # Deleted before: the profile and loyalty are gone, the closed cases and
                    # the audit trail remain. Step 1 marks the tombstone erased.
                    now = self._clock.now()
                    record = audit.entry("customer", customer_id, "erase", actor, now, (), customer_id)
                    self._customers.mark_erased(customer_id, now, record)
                    return
                self._loyalty.forget_anonymous_habits(anonymous_id, copied)
                raise NotFound(f"No customer has the id {customer_id!r}.")
            merge_id = self._customers.running_merge(customer_id)
            if merge_id is not None:
                # The merge's start changes the profile's version: one that starts after this
                # read fails this erasure's transaction, which reads again and finds it.
                self._loyalty.forget_anonymous_habits(anonymous_id, copied)
                raise WaitForMerge(merge_id)
            stored = self._loyalty.get(customer_id, consistent=True)
            now = self._clock.now()
            anonymous = None
            if stored is not None:
                # SKUs and numbers only: line-item names are free text staff typed (and may
                # hold a person's name); purchase ids lead back to the timeline.
                aggregates = _skus_and_numbers(stored.aggregates.to_dict())
                anonymous = {
                    "id": anonymous_id,
                    "aggregates": json.dumps(aggregates, sort_keys=True),
                    "score": stored.score,
                    "tier": stored.tier,
                }
                # After reading the aggregates' version, which the erasure's transaction checks.
                copied = self._loyalty.copy_habits_anonymously(
                    customer_id, anonymous_id, _skus_and_numbers, copied
                )
            record = audit.entry("customer", customer_id, "erase", actor, now, (), customer_id)
            self._customers.erase(customer, now, record, stored.version if stored else None, anonymous)

        def give_up() -> None:
            self._loyalty.forget_anonymous_habits(anonymous_id, copied)
            raise Conflict("The customer is being changed by other requests right now: retry.")

        # Read again after a lost race: the profile or the aggregates changed meanwhile.
        retry_lost_races(step_1, give_up, attempts=MAX_ATTEMPTS)
        self.purge(customer_id, deadline)

    def purge(self, customer_id: str, deadline: Deadline | None = None) -> None:
        """Step 2: delete and scrub what the erased customer left (idempotent; with a
        `deadline`, OutOfTime may stop it between batches: calling again goes on)."""
        self._forget_merged(customer_id, deadline)
        if self._identities is not None:
            # First: the loyalty purge below removes every item under the customer, the
            # pointers that find the sign-in links included.
            self._identities.forget(customer_id)
        self._leave_segments(customer_id)
        self._idempotency.forget(customer_id)
        self._forget_webhooks(customer_id)
        self._interactions.delete_all_of(customer_id, deadline)
        self._cases.delete_all_of(customer_id)
        self._loyalty.delete_all_of(customer_id, deadline)
        self._audit.scrub(customer_id, PII_FIELDS, deadline)
        self._documents.delete_all_of(customer_id)
        self._jobs.delete_all_of(customer_id, EXPORT)

    def after_deletion(self, customer_id: str, close_cases: Callable[[str], int]) -> Purged:
        """What goes with a deleted profile (run from the customers stream; idempotent): the
        timeline, loyalty, sign-in links, stored responses and exports go, and `close_cases`
        closes the customer's cases, which stay for the record. An erased customer's purge
        runs again instead, in case the erasure was cut short."""
        # Strongly consistent: read just after an erasure, a stale tombstone would close the
        # erased customer's cases instead of deleting them.
        if self._customers.erased_at(customer_id, consistent=True):
            self.purge(customer_id)
            return Purged(erased=True)
        if self._identities is not None:
            self._identities.forget(customer_id)  # before the loyalty purge takes its pointers
        self._leave_segments(customer_id)
        self._idempotency.forget(customer_id)
        self._forget_webhooks(customer_id)
        removed = self._interactions.delete_all_of(customer_id)
        self._loyalty.delete_all_of(customer_id)
        closed = close_cases(customer_id)
        self._documents.delete_all_of(customer_id)
        self._jobs.delete_all_of(customer_id, EXPORT)
        return Purged(erased=False, interactions=removed, cases_closed=closed)

    def _forget_merged(self, customer_id: str, deadline: Deadline | None) -> None:
        """Every id merged into the erased customer goes too: what a merge moved is erased
        with the survivor's data; whatever is left under the merged id (and in the stores that
        name it) is deleted, then its alias and the survivor's pointer to it, last. The id then
        answers 404 like any unknown id."""
        if self._merges is None:
            return
        for merged_id in self._merges.merged_into(customer_id):
            if self._identities is not None:
                self._identities.forget(merged_id)
            self._leave_segments(merged_id)
            self._idempotency.forget(merged_id)
            self._forget_webhooks(merged_id)
            self._interactions.delete_all_of(merged_id, deadline)
            self._cases.delete_all_of(merged_id)
            self._documents.delete_all_of(merged_id)
            self._jobs.delete_all_of(merged_id, EXPORT)
            self._merges.forget_merged(customer_id, merged_id)
            if deadline is not None:
                deadline.check()

    def _leave_segments(self, customer_id: str) -> None:
        # Before the loyalty purge takes the memberships: leaving counts each one down.
        if self._segments is not None:
            self._segments.forget(customer_id)
        if self._campaign_sends is not None:
            self._campaign_sends.forget(customer_id)  # the log of marketing messages they got

    def _forget_webhooks(self, customer_id: str) -> None:
        # The webhook deliveries that named the customer (stripped, their webhook-ids kept), and
        # the order, refund and ticket ids claimed for their interactions (which go with the
        # timeline): such an order sent under a new webhook-id is a new customer's, as any data
        # sent after an erasure.
        if self._webhooks is not None:
            self._webhooks.forget(customer_id)

    def erasable_remains(self, customer_id: str) -> bool:
        """A deleted customer not yet erased: their cases and audit trail can be erased."""
        return self._customers.was_deleted(customer_id, consistent=True) and not self._customers.erased_at(
            customer_id, consistent=True
        )

    def was_erased(self, customer_id: str) -> bool:
        return self._customers.erased_at(customer_id) is not None


def _skus_and_numbers(value: Any) -> Any:
    """A copy of the aggregates without the free-text `name` and the purchase id of any line or
    habit (a dict with a `sku`), at any depth; keys that are SKUs are kept, whatever they spell."""
    if isinstance(value, dict):
        dropped = ("name", "last_purchase_id") if "sku" in value else ()
        return {k: _skus_and_numbers(v) for k, v in value.items() if k not in dropped}
    if isinstance(value, list):
        return [_skus_and_numbers(v) for v in value]
    return value
