"""What a merge moves from the merged customer to the survivor, a page at a time
(services/merge_job.py runs the steps).

Every move is conditional on what it read, so a page moved twice (two runs of the job, a
redelivered message) moves once: an interaction's copy is put under the survivor only if
absent and its original deleted only at the version read, in one transaction with the ADD to
the merge's counter; a case is re-pointed only while it names the merged customer. The
merged customer's partition only shrinks as items move, so a step resumes by querying it from
the start again. Nothing here Scans: every read is a Query of the merged customer's keys (or
of an index by customer) or a GetItem."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

from pynamodb.attributes import UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.models import Model

from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.merges import COMPLETED, RUNNING, Merge
from chalicelib.domain.storage import VersionConflict
from chalicelib.store.interactions import interaction_from_item, interaction_item
from chalicelib.store.keys import (
    ALIAS_PREFIX,
    ALIAS_SK,
    AUDIT_PREFIX,
    IDEMPOTENCY_PREFIX,
    IDENTITY_PREFIX,
    MERGE_RUNNING_SK,
    MERGE_SK,
    NOT_DUPLICATE_PREFIX,
    customer_pk,
    merge_pk,
)
from chalicelib.store.merges import merge_of
from chalicelib.store.models import (
    AuditModel,
    CaseModel,
    IdempotencyPointerModel,
    IdentityModel,
    IdentityPointerModel,
    InteractionModel,
)
from chalicelib.store.models.base import TableMeta, settings
from chalicelib.store.models.merges import (
    AliasModel,
    AliasPointerModel,
    MergeModel,
    MergeProgressModel,
    MergeRunningModel,
    NotDuplicateModel,
    PartitionItemModel,
)
from chalicelib.store.models.webhook_sources import WebhookCustomerItemModel
from chalicelib.store.transactions import BATCH_WRITE_ITEMS, error_code, failed_conditions, transaction

# Items moved a transaction: two writes each (the copy and the original's delete) and the
# counter stay well within TransactWriteItems' 100.
PAGE = 25
CONDITION_FAILED = "ConditionalCheckFailedException"
LOOKUP_SK = "IDENTITY"


def _counter(t, merge_id: str, name: str, added: int) -> None:
    attribute = getattr(MergeProgressModel, name)
    t.update(MergeProgressModel(merge_pk(merge_id), MERGE_SK), actions=[attribute.add(added)])


def _cancelled(error: TransactWriteError, merge_id: str) -> None:
    """A failed condition: another run moved (or changed) what was read, VersionConflict (query
    again); anything else is raised as it is."""
    if any(failed_conditions(error)):
        raise VersionConflict(merge_id) from error
    raise error


class MergeMoves:
    def __init__(self, region: str) -> None:
        self._region = region

    # The merge's own item

    def get(self, merge_id: str) -> Merge | None:
        try:
            return merge_of(MergeModel.get(merge_pk(merge_id), MERGE_SK, consistent_read=True))
        except DoesNotExist:
            return None

    def advance(self, merge_id: str, step: str, to: str) -> bool:
        """Move the merge from `step` on to `to`: False if it is not at `step` (another run
        moved it on first)."""
        try:
            MergeProgressModel(merge_pk(merge_id), MERGE_SK).update(
                actions=[MergeProgressModel.step.set(to)],
                condition=(MergeProgressModel.step == step) & (MergeProgressModel.status == RUNNING),
            )
        except UpdateError as error:
            if error_code(error) == CONDITION_FAILED:
                return False
            raise
        return True

    def complete(self, merge: Merge, step: str, at: datetime) -> bool:
        """One transaction: the merge completed and both customers' markers of it gone. False
        if it was completed already (by another run)."""
        try:
            with transaction(self._region) as t:
                t.update(
                    MergeProgressModel(merge_pk(merge.id), MERGE_SK),
                    actions=[
                        MergeProgressModel.status.set(COMPLETED),
                        MergeProgressModel.completed_at.set(to_rfc3339(at)),
                    ],
                    condition=(MergeProgressModel.status == RUNNING) & (MergeProgressModel.step == step),
                )
                for customer_id in (merge.survivor_id, merge.merged_id):
                    t.delete(
                        MergeRunningModel(customer_pk(customer_id), MERGE_RUNNING_SK),
                        condition=MergeRunningModel.merge_id == merge.id,
                    )
        except TransactWriteError as error:
            if any(failed_conditions(error)):
                return False
            raise
        return True

    # 1. interactions (and 8., the sweep)

    def move_interactions(self, merge: Merge) -> int:
        """Move a page of the merged customer's timeline: each interaction put under the
        survivor (same id, times and content, `merged_from`, a new item's version) and its
        original deleted at the version read, with the ADD to the counter. 0: none left."""
        page = list(InteractionModel.query(merge.merged_id, consistent_read=True, limit=PAGE))
        if not page:
            return 0
        try:
            with transaction(self._region) as t:
                for item in page:
                    original = interaction_from_item(item)
                    moved = replace(  # after A into B, B into C: still from A
                        original,
                        customer_id=merge.survivor_id,
                        merged_from=original.merged_from or merge.merged_id,
                        version=0,
                    )
                    t.save(interaction_item(moved), condition=InteractionModel.id.does_not_exist())
                    t.delete(item)  # conditional on the version read (a VersionAttribute)
                _counter(t, merge.id, "interactions", len(page))
        except TransactWriteError as error:
            _cancelled(error, merge.id)
        return len(page)

    # 2. cases

    def move_cases(self, merge: Merge) -> int:
        """Re-point the merged customer's cases to the survivor, one transaction a case (with
        the ADD to the counter), conditional on the case still naming the merged customer at
        the version read. The by_customer index lags: a case it lists that was moved is
        skipped. Returns the cases moved by this call."""
        moved = 0
        for listed in CaseModel.by_customer.query(merge.merged_id):
            item: CaseModel | None = listed
            while item is not None and item.customer_id == merge.merged_id:
                try:
                    with transaction(self._region) as t:
                        t.update(
                            item,
                            actions=[CaseModel.customer_id.set(merge.survivor_id)],
                            condition=CaseModel.customer_id == merge.merged_id,
                        )
                        _counter(t, merge.id, "cases", 1)
                    moved += 1
                    break
                except TransactWriteError as error:
                    if not any(failed_conditions(error)):
                        raise
                    item = _case(listed.id)  # changed meanwhile, or moved by another run
        return moved

    # 3. audit

    def move_audit(self, merge: Merge) -> int:
        """Move a page of the merged customer's audit entries under the survivor (same sk:
        they keep their time order among the survivor's), with the ADD to the counter."""
        page = list(
            AuditModel.query(
                customer_pk(merge.merged_id),
                AuditModel.sk.startswith(AUDIT_PREFIX),
                consistent_read=True,
                limit=PAGE,
            )
        )
        if not page:
            return 0
        try:
            with transaction(self._region) as t:
                for item in page:
                    copy = AuditModel(customer_pk(merge.survivor_id), item.sk, **_values(item, AuditModel))
                    t.save(copy, condition=AuditModel.pk.does_not_exist())
                    t.delete(item, condition=AuditModel.pk.exists())
                _counter(t, merge.id, "audit", len(page))
        except TransactWriteError as error:
            _cancelled(error, merge.id)
        return len(page)

    # 4. what points at the merged customer

    def move_identities(self, merge: Merge) -> int:
        """Each sign-in identity of the merged customer becomes the survivor's: its lookup
        re-pointed (while it still names one of the two) and its pointer moved, together."""
        moved = 0
        for pointer in IdentityPointerModel.query(
            customer_pk(merge.merged_id),
            IdentityPointerModel.sk.startswith(IDENTITY_PREFIX),
            consistent_read=True,
        ):
            names_either = (IdentityModel.customer_id == merge.merged_id) | (
                IdentityModel.customer_id == merge.survivor_id
            )
            try:
                with transaction(self._region) as t:
                    t.update(
                        IdentityModel(pointer.sk, LOOKUP_SK),
                        actions=[IdentityModel.customer_id.set(merge.survivor_id)],
                        condition=names_either,
                    )
                    t.save(
                        IdentityPointerModel(
                            customer_pk(merge.survivor_id),
                            pointer.sk,
                            **_values(pointer, IdentityPointerModel),
                        )
                    )
                    t.delete(pointer)
            except TransactWriteError as error:
                if not any(failed_conditions(error)):
                    raise
                pointer.delete()  # the lookup went to someone else, or away: nothing to move
            moved += 1
        return moved

    def move_idempotency_pointers(self, merge: Merge) -> int:
        """The pointers to stored responses that hold the merged customer's data: the
        survivor's now (an erasure of the survivor deletes those records too)."""
        pointers = list(
            IdempotencyPointerModel.query(
                customer_pk(merge.merged_id),
                IdempotencyPointerModel.sk.startswith(IDEMPOTENCY_PREFIX),
                consistent_read=True,
            )
        )
        with IdempotencyPointerModel.batch_write() as batch:
            for item in pointers:
                batch.save(
                    IdempotencyPointerModel(
                        customer_pk(merge.survivor_id), item.sk, created_at=item.created_at
                    )
                )
        with IdempotencyPointerModel.batch_write() as batch:
            for item in pointers:
                batch.delete(item)  # after every copy: a pointer is never lost
        return len(pointers)

    def move_webhook_items(self, merge: Merge) -> int:
        """Every webhooks-table item that names the merged customer (order, refund and ticket
        claims, deliveries; GSI by_customer) names the survivor, so that a refund sent later
        finds its purchase there."""
        moved = 0
        for listed in WebhookCustomerItemModel.by_customer.query(merge.merged_id):
            _repoint_webhook_item(listed.pk, listed.sk, merge.merged_id, merge.survivor_id)
            moved += 1
        return moved

    def collapse_aliases(self, merge: Merge) -> int:
        """Ids merged into the merged customer before (ALIAS# pointers under it): their alias
        now names the survivor, and their pointer moves under the survivor. A chain A→B, then
        B→C, ends as A→C and B→C."""
        collapsed = 0
        for pointer in AliasPointerModel.query(
            customer_pk(merge.merged_id), AliasPointerModel.sk.startswith(ALIAS_PREFIX), consistent_read=True
        ):
            try:
                with transaction(self._region) as t:
                    t.update(
                        AliasModel(customer_pk(pointer.merged_id), ALIAS_SK),
                        actions=[AliasModel.survivor_id.set(merge.survivor_id)],
                        condition=AliasModel.pk.exists(),
                    )
                    t.save(
                        AliasPointerModel(
                            customer_pk(merge.survivor_id),
                            pointer.sk,
                            merged_id=pointer.merged_id,
                            merge_id=pointer.merge_id,
                            merged_at=pointer.merged_at,
                        )
                    )
                    t.delete(pointer)
            except TransactWriteError as error:
                if not any(failed_conditions(error)):
                    raise
                pointer.delete()  # no alias left to point on (its id was forgotten)
            collapsed += 1
        return collapsed

    # 7. the rest of the merged customer's partition

    def remains(self, customer_id: str) -> Iterator[str]:
        """The sort keys left under the customer (keys only, strongly consistent)."""
        for item in PartitionItemModel.query(
            customer_pk(customer_id), consistent_read=True, attributes_to_get=["pk", "sk"]
        ):
            yield item.sk

    def move_not_duplicate(self, merge: Merge, sk: str) -> None:
        """ "Not the same person as X" holds for the survivor too (under both, as recorded);
        the merged customer's record goes."""
        try:
            item = NotDuplicateModel.get(customer_pk(merge.merged_id), sk, consistent_read=True)
        except DoesNotExist:
            return
        other = item.other_id
        if other not in (merge.survivor_id, merge.merged_id) and _recorded(other, merge.merged_id):
            with NotDuplicateModel.batch_write() as batch:
                batch.save(
                    NotDuplicateModel(
                        customer_pk(merge.survivor_id),
                        f"{NOT_DUPLICATE_PREFIX}{other}",
                        other_id=other,
                        recorded_at=item.recorded_at,
                        recorded_by=item.recorded_by,
                    )
                )
                batch.save(
                    NotDuplicateModel(
                        customer_pk(other),
                        f"{NOT_DUPLICATE_PREFIX}{merge.survivor_id}",
                        other_id=merge.survivor_id,
                        recorded_at=item.recorded_at,
                        recorded_by=item.recorded_by,
                    )
                )
        item.delete()

    def delete_stale_lookups(self, merge_id: str) -> int:
        """The merged profile's lookup items the start's transaction had no room for (named in
        the merge): each is keyed by the merged id, so none can be another customer's."""
        try:
            item = MergeModel.get(merge_pk(merge_id), MERGE_SK, consistent_read=True)
        except DoesNotExist:
            return 0
        keys = [(key.pk, key.sk) for key in item.stale_lookups or ()]
        with PartitionItemModel.batch_write() as batch:
            for pk, sk in keys:
                batch.delete(PartitionItemModel(pk, sk))
        return len(keys)

    def delete_items(self, customer_id: str, sks: list[str]) -> int:
        with PartitionItemModel.batch_write() as batch:
            for sk in sks:
                batch.delete(PartitionItemModel(customer_pk(customer_id), sk))
        return len(sks)

    # Erasure of a survivor: the ids merged into it

    @staticmethod
    def merged_into(customer_id: str) -> list[str]:
        """The ids merged into the customer (its ALIAS# pointers; chains are collapsed onto it)."""
        return [
            pointer.merged_id
            for pointer in AliasPointerModel.query(
                customer_pk(customer_id), AliasPointerModel.sk.startswith(ALIAS_PREFIX), consistent_read=True
            )
        ]

    def forget_merged(self, survivor_id: str, merged_id: str) -> int:
        """Delete every item left under a merged id, its alias last but one and the survivor's
        pointer to it last: afterwards the id is unknown, and a run cut short finds it again."""
        left = [sk for sk in self.remains(merged_id) if sk != ALIAS_SK]
        for start in range(0, len(left), BATCH_WRITE_ITEMS):
            self.delete_items(merged_id, left[start : start + BATCH_WRITE_ITEMS])
        self.delete_items(merged_id, [ALIAS_SK])
        AliasPointerModel(customer_pk(survivor_id), f"{ALIAS_PREFIX}{merged_id}").delete()
        return len(left) + 1

    @staticmethod
    def has_alias(customer_id: str) -> bool:
        try:
            AliasModel.get(customer_pk(customer_id), ALIAS_SK, consistent_read=True)
        except DoesNotExist:
            return False
        return True


def _recorded(customer_id: str, other_id: str) -> bool:
    """Whether the customer still holds "not the same person as `other_id`" (still exists)."""
    try:
        NotDuplicateModel.get(
            customer_pk(customer_id), f"{NOT_DUPLICATE_PREFIX}{other_id}", consistent_read=True
        )
    except DoesNotExist:
        return False
    return True


def _case(case_id: str) -> CaseModel | None:
    try:
        return CaseModel.get(case_id, consistent_read=True)
    except DoesNotExist:
        return None


def _values(item, model) -> dict:
    """The item's attributes but its keys, to write it again under other keys."""
    keys = {"pk", "sk"}
    return {name: getattr(item, name) for name in model.get_attributes() if name not in keys}


def _repoint_webhook_item(pk: str, sk: str, merged_id: str, survivor_id: str) -> None:
    """The item's index attributes name the survivor; its `customer_id`, where it has one
    naming the merged customer, too. Conditional on still naming the merged customer."""
    from chalicelib.store.webhook_sources import customer_keys

    keys = customer_keys(survivor_id, pk, sk)
    index = [
        _Named.customer_pk.set(keys["customer_pk"]),
        _Named.customer_sk.set(keys["customer_sk"]),
    ]
    for actions, condition in (
        (
            [*index, _Named.customer_id.set(survivor_id)],
            (_Named.customer_pk == merged_id) & (_Named.customer_id == merged_id),
        ),
        (index, _Named.customer_pk == merged_id),
    ):
        try:
            _Named(pk, sk).update(actions=actions, condition=condition)
            return
        except UpdateError as error:
            if error_code(error) != CONDITION_FAILED:
                raise
    # Neither: it names someone else now, or went away (expired, purged): nothing to move.


class _Named(Model):
    """A webhooks-table item that names a customer, with the `customer_id` most of them carry
    (inbound deliveries, external-id claims, outbound deliveries)."""

    class Meta(TableMeta):
        table_name = settings.webhooks_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    customer_pk = UnicodeAttribute(null=True)
    customer_sk = UnicodeAttribute(null=True)
    customer_id = UnicodeAttribute(null=True)
