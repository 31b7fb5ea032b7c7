"""Merge repository: a merge and its start, the aliases merged ids become, the markers of
running merges, and what is asked before a merge (two customers recorded as different people,
how much the merged customer has)."""

from __future__ import annotations

from pynamodb.exceptions import DoesNotExist
from pynamodb.transactions import TransactWrite

from chalicelib.domain.audit import Actor, AuditEntry
from chalicelib.domain.clock import parse_optional_rfc3339, parse_rfc3339, to_rfc3339
from chalicelib.domain.customers import Customer
from chalicelib.domain.merges import COUNTED, Merge
from chalicelib.store.customer_items import customer_item, token_items
from chalicelib.store.customers import CustomerRepository
from chalicelib.store.keys import (
    ALIAS_SK,
    AUDIT_PREFIX,
    MERGE_RUNNING_SK,
    MERGE_SK,
    alias_pointer_sk,
    customer_pk,
    merge_pk,
    not_duplicate_sk,
)
from chalicelib.store.models import (
    AliasModel,
    AliasPointerModel,
    AuditModel,
    CaseModel,
    InteractionModel,
    MergeModel,
    MergeRunningModel,
    NotDuplicateModel,
)
from chalicelib.store.models.merges import LookupKeyAttribute, running_merge

# An alias chain is collapsed by the merge job (A→B→C becomes A→C); until then a lookup follows
# it, at most this many hops (a chain longer than that is a merge of merges of merges...).
MAX_ALIAS_HOPS = 8
# DynamoDB's TransactWriteItems limit, less one for the claim of a keyed request
# (store/transactions.py adds it when the block ends).
TRANSACTION_ITEMS = 100 - 1


def merge_of(item: MergeModel) -> Merge:
    return Merge(
        id=item.id,
        survivor_id=item.survivor_id,
        merged_id=item.merged_id,
        status=item.status,
        step=item.step,
        requested_by=Actor(item.requested_by_subject, item.requested_by_role, item.route),
        created_at=parse_rfc3339(item.created_at),
        completed_at=parse_optional_rfc3339(item.completed_at),
        sources={k: str(v) for k, v in (item.sources.as_dict() if item.sources else {}).items()},
        counts={name: int(getattr(item, name) or 0) for name in COUNTED},
        version=int(item.version or 0),
    )


def _merge_item(merge: Merge) -> MergeModel:
    item = MergeModel(
        merge_pk(merge.id),
        MERGE_SK,
        id=merge.id,
        survivor_id=merge.survivor_id,
        merged_id=merge.merged_id,
        status=merge.status,
        step=merge.step,
        requested_by_subject=merge.requested_by.subject,
        requested_by_role=merge.requested_by.role,
        route=merge.requested_by.route,
        created_at=to_rfc3339(merge.created_at),
        **{name: merge.counts.get(name, 0) for name in COUNTED},
    )
    item.sources = dict(merge.sources)
    return item


def _items_in(t: TransactWrite) -> int:
    # PynamoDB keeps a transaction's items by kind until it commits (store/transactions.py
    # reads them too, for the claim's name).
    return len(t._condition_check_items) + len(t._delete_items) + len(t._put_items) + len(t._update_items)


class MergeRepository:
    def __init__(self, customers: CustomerRepository) -> None:
        self._customers = customers

    def get(self, merge_id: str, *, consistent: bool = False) -> Merge | None:
        try:
            return merge_of(MergeModel.get(merge_pk(merge_id), MERGE_SK, consistent_read=consistent))
        except DoesNotExist:
            return None

    def alias_of(self, customer_id: str, *, consistent: bool = False) -> str | None:
        """The customer this id was merged into (one hop of the chain), or None."""
        try:
            return AliasModel.get(customer_pk(customer_id), ALIAS_SK, consistent_read=consistent).survivor_id
        except DoesNotExist:
            return None

    def resolve(self, customer_id: str, *, consistent: bool = False) -> str | None:
        """The end of the id's alias chain (the customer it now is), or None if it is no alias."""
        seen = {customer_id}
        current = None
        for _ in range(MAX_ALIAS_HOPS):
            following = self.alias_of(current or customer_id, consistent=consistent)
            if following is None or following in seen:
                break
            seen.add(following)
            current = following
        return current

    def running(self, customer_id: str) -> str | None:
        """The id of a running merge that involves the customer (either side), or None."""
        return running_merge(customer_id)

    def not_duplicates(self, customer_id: str, other_id: str) -> bool:
        """Whether staff recorded the two as different people (the item is under both)."""
        try:
            NotDuplicateModel.get(customer_pk(customer_id), not_duplicate_sk(other_id), consistent_read=True)
        except DoesNotExist:
            return False
        return True

    def counts(self, customer_id: str) -> dict[str, int]:
        """What a merge of the customer would move: Queries that count (Select COUNT, paged),
        whose cost grows with this customer's items only."""
        return {
            "interactions": InteractionModel.count(customer_id),
            "cases": CaseModel.by_customer.count(customer_id),
            "audit": AuditModel.count(customer_pk(customer_id), AuditModel.sk.startswith(AUDIT_PREFIX)),
        }

    def start(
        self, merge: Merge, before: Customer, after: Customer, merged: Customer, audit: AuditEntry
    ) -> None:
        """One transaction: the survivor's profile becomes `after` (at `before`'s version) and
        adopts the merged customer's addresses; the merged profile (at its version) and its
        lookup items go; the alias, the survivor's pointer to it, both customers' markers of
        a running merge (none may exist) and the running merge are written, with the audit
        entry. VersionConflict if either profile changed, or a merge of either started.

        Lookup items of the merged profile beyond DynamoDB's 100 items are left, named in
        the merge (`stale_lookups`) for its job to delete: they point at an id whose profile is
        gone, which every lookup already skips."""
        at = to_rfc3339(merge.created_at)

        def also(t: TransactWrite) -> None:
            t.delete(customer_item(merged))
            t.save(
                AliasModel(
                    customer_pk(merged.id),
                    ALIAS_SK,
                    merged_id=merged.id,
                    survivor_id=before.id,
                    merge_id=merge.id,
                    merged_at=at,
                ),
                condition=AliasModel.pk.does_not_exist(),
            )
            t.save(
                AliasPointerModel(
                    customer_pk(before.id),
                    alias_pointer_sk(merged.id),
                    merged_id=merged.id,
                    merge_id=merge.id,
                    merged_at=at,
                )
            )
            for customer_id in (before.id, merged.id):
                t.save(
                    MergeRunningModel(customer_pk(customer_id), MERGE_RUNNING_SK, merge_id=merge.id),
                    condition=MergeRunningModel.pk.does_not_exist(),
                )
            tokens = token_items(merged)
            room = max(0, TRANSACTION_ITEMS - _items_in(t) - 1)  # the merge item below
            item = _merge_item(merge)
            if len(tokens) > room:
                item.stale_lookups = [LookupKeyAttribute(pk=tok.pk, sk=tok.sk) for tok in tokens[room:]]
            for token in tokens[:room]:
                t.delete(token)
            t.save(item, condition=MergeModel.pk.does_not_exist())

        self._customers.update_adopting(before, after, merged, audit, also)
