"""The customer repository's part for deleted and erased customers: the profile goes with its
lookup entries, and a tombstone (`CUSTOMER#<id>`/`DELETED`, no personal data) stays."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pynamodb.exceptions import DoesNotExist, TransactWriteError

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.customers import Customer
from chalicelib.store.audit import audit_item
from chalicelib.store.customer_items import customer_item, token_items
from chalicelib.store.keys import (
    ANONYMOUS_PREFIX,
    LOYALTY_SK,
    MERGE_RUNNING_SK,
    TOMBSTONE_SK,
    customer_pk,
    email_pk,
)
from chalicelib.store.models import (
    AnonymousAggregatesModel,
    EmailLookupModel,
    LoyaltyModel,
    MergeRunningModel,
    TombstoneModel,
)
from chalicelib.store.models.merges import running_merge
from chalicelib.store.transactions import failed_conditions, transaction, versioned_transaction


class CustomerTombstones:
    """CustomerRepository's methods for deleting and erasing customers."""

    _region: str

    def delete(self, customer: Customer, deleted_at: datetime, audit: AuditEntry | None = None) -> None:
        """Delete the profile at its version while no merge involving it runs (a merge that
        starts first changes the version: VersionConflict, and the caller reads the marker)."""
        item = customer_item(customer)
        with versioned_transaction(self._region, customer.id) as t:
            t.condition_check(
                MergeRunningModel,
                customer_pk(customer.id),
                MERGE_RUNNING_SK,
                condition=MergeRunningModel.pk.does_not_exist(),
            )
            t.delete(item)
            t.save(TombstoneModel(customer_pk(customer.id), TOMBSTONE_SK, deleted_at=to_rfc3339(deleted_at)))
            for key in customer.email_keys:
                t.delete(EmailLookupModel(email_pk(key)))
            for token in token_items(customer):
                t.delete(token)
            if audit is not None:
                t.save(audit_item(audit))

    def mark_erased(self, customer_id: str, erased_at: datetime, audit: AuditEntry) -> None:
        """The erasure of a deleted customer: its tombstone is marked erased, with the audit
        entry, in one transaction; nothing if it is marked already."""
        try:
            with transaction(self._region) as t:
                t.update(
                    TombstoneModel(customer_pk(customer_id), TOMBSTONE_SK),
                    actions=[TombstoneModel.erased_at.set(to_rfc3339(erased_at))],
                    condition=TombstoneModel.pk.exists() & TombstoneModel.erased_at.does_not_exist(),
                )
                t.save(audit_item(audit))
        except TransactWriteError as error:
            if not any(failed_conditions(error)):
                raise

    def erase(
        self,
        customer: Customer,
        erased_at: datetime,
        audit: AuditEntry,
        loyalty_version: int | None,
        anonymous: dict | None,
    ) -> None:
        """One transaction: the profile and its lookup entries go, a tombstone marked erased
        stays, and the loyalty aggregates (still at `loyalty_version`, or still absent) move to
        `ANONYMOUS#<anonymous["id"]>` without anything that names the customer."""
        item = customer_item(customer)
        with versioned_transaction(self._region, customer.id) as t:
            t.delete(item)
            at = to_rfc3339(erased_at)
            t.save(TombstoneModel(customer_pk(customer.id), TOMBSTONE_SK, deleted_at=at, erased_at=at))
            for key in customer.email_keys:
                t.delete(EmailLookupModel(email_pk(key)))
            for token in token_items(customer):
                t.delete(token)
            t.save(audit_item(audit))
            if loyalty_version is None:
                t.condition_check(
                    LoyaltyModel,
                    customer_pk(customer.id),
                    LOYALTY_SK,
                    condition=LoyaltyModel.pk.does_not_exist(),
                )
            else:
                loyalty = LoyaltyModel(customer_pk(customer.id), LOYALTY_SK)
                loyalty.version = loyalty_version  # PynamoDB: delete only at this version
                t.delete(loyalty)
            if anonymous is not None:
                t.save(
                    AnonymousAggregatesModel(
                        f"{ANONYMOUS_PREFIX}{anonymous['id']}",
                        LOYALTY_SK,
                        aggregates=anonymous["aggregates"],
                        score=anonymous.get("score"),
                        last_tier=anonymous.get("tier"),
                        erased_on=erased_at.date().isoformat(),
                    ),
                    condition=AnonymousAggregatesModel.pk.does_not_exist(),
                )

    def erased_at(self, customer_id: str, *, consistent: bool = False) -> str | None:
        """When the customer was erased (GDPR), or None (exists, deleted only, or unknown)."""
        try:
            return TombstoneModel.get(
                customer_pk(customer_id), TOMBSTONE_SK, consistent_read=consistent
            ).erased_at
        except DoesNotExist:
            return None

    def erased_among(self, customer_ids: Iterable[str]) -> set[str]:
        """Which of these customers are erased: one BatchGetItem of their tombstones per 100,
        strongly consistent (a record read just after an erasure committed is told by it)."""
        keys = [(customer_pk(cid), TOMBSTONE_SK) for cid in dict.fromkeys(customer_ids)]
        if not keys:
            return set()
        found = TombstoneModel.batch_get(keys, consistent_read=True)
        return {item.pk.split("#", 1)[1] for item in found if item.erased_at}

    def running_merge(self, customer_id: str) -> str | None:
        """The id of a running merge that involves the customer (either side), if any:
        strongly consistent, for the deletion and erasure that must wait for it."""
        return running_merge(customer_id)

    def was_deleted(self, customer_id: str, *, consistent: bool = False) -> bool:
        try:
            TombstoneModel.get(customer_pk(customer_id), TOMBSTONE_SK, consistent_read=consistent)
        except DoesNotExist:
            return False
        return True
