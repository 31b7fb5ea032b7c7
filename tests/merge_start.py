"""A merge's start written directly, as POST /customers/{survivor}/merge's transaction writes
it (services/merges.py): until that route lands, the merge job's tests start merges here. The
survivor's profile is left as it is (survivorship is the route's part; the job never reads it).

One transaction: the merge (running, at step "interactions", counters 0), the merged profile
deleted with its name-search entries, its email lookups re-pointed to the survivor, its alias
(`MERGED`), the survivor's pointer to it (`ALIAS#<merged>`) and both customers' markers."""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.domain import ids
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.merges import RUNNING
from chalicelib.store.customer_items import customer_item, token_items
from chalicelib.store.keys import alias_pointer_sk, customer_pk, email_pk, merge_pk
from chalicelib.store.models import CustomerModel, EmailLookupModel
from chalicelib.store.models.merges import AliasModel, AliasPointerModel, MergeModel, MergeRunningModel


def start_merge(survivor_id: str, merged_id: str, at: datetime | None = None) -> str:
    """Start merging `merged_id` into `survivor_id`; returns the merge's id."""
    from chalicelib import wiring
    from chalicelib.store.transactions import transaction

    customers, _ = wiring.repositories()
    merged = customers.get(merged_id, consistent=True)
    assert merged is not None, f"no profile {merged_id}"
    assert customers.get(survivor_id, consistent=True) is not None, f"no profile {survivor_id}"
    at = at or datetime.now(UTC)
    merge_id = ids.new_id(ids.MERGE, at)
    stamp = to_rfc3339(at)
    with transaction(wiring.get_settings().region) as t:
        t.delete(customer_item(merged))  # at the version read
        for token in token_items(merged):
            t.delete(token)
        for key in merged.email_keys:
            t.update(
                EmailLookupModel(email_pk(key)),
                actions=[EmailLookupModel.customer_id.set(survivor_id)],
                condition=EmailLookupModel.customer_id == merged_id,
            )
        t.save(
            MergeModel(
                merge_pk(merge_id),
                id=merge_id,
                survivor_id=survivor_id,
                merged_id=merged_id,
                status=RUNNING,
                step="interactions",
                requested_by_subject="staff-1",
                requested_by_role="staff",
                route="POST /customers/{customer_id}/merge",
                created_at=stamp,
                sources={},
            ),
            condition=MergeModel.pk.does_not_exist(),
        )
        t.save(
            AliasModel(
                customer_pk(merged_id),
                merged_id=merged_id,
                survivor_id=survivor_id,
                merge_id=merge_id,
                merged_at=stamp,
            )
        )
        t.save(
            AliasPointerModel(
                customer_pk(survivor_id),
                alias_pointer_sk(merged_id),
                merged_id=merged_id,
                merge_id=merge_id,
                merged_at=stamp,
            )
        )
        for customer_id in (survivor_id, merged_id):
            t.save(
                MergeRunningModel(customer_pk(customer_id), merge_id=merge_id),
                condition=MergeRunningModel.pk.does_not_exist(),
            )
        t.condition_check(
            CustomerModel, customer_pk(survivor_id), "PROFILE", condition=CustomerModel.pk.exists()
        )
    return merge_id
