"""Case repository: complaint cases and the indexes that list them due first."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from pynamodb.exceptions import DoesNotExist, TransactWriteError

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.cases import ACTIVE_STATUSES, Case, HistoryEntry
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.interactions import Interaction
from chalicelib.store.audit import audit_item
from chalicelib.store.interactions import _to_model as interaction_item
from chalicelib.store.models import (
    ACTIVE_QUEUE,
    ITEM_LIMIT,
    PROFILE_SK,
    CaseModel,
    CustomerModel,
    customer_pk,
    failed_conditions,
    transaction,
)
from chalicelib.store.pagination import Key, collect

# Sorts after every real due time: "cases due before X" never includes a case without a deadline.
_NO_DEADLINE = "9999-12-31T23:59:59.999Z"


class CaseChanged(Exception):
    """The case changed since it was read."""


def _time(value: str | None) -> datetime | None:
    return parse_rfc3339(value) if value else None


def _history(entries: tuple[HistoryEntry, ...]) -> str:
    return json.dumps(
        [
            {"at": to_rfc3339(e.at), "by": e.by, "from": e.from_status, "to": e.to_status, "note": e.note}
            for e in entries
        ],
        ensure_ascii=False,
    )


def _to_domain(item: CaseModel) -> Case:
    return Case(
        id=item.id,
        customer_id=item.customer_id,
        interaction_id=item.interaction_id,
        subject=item.subject,
        severity=item.severity,
        status=item.status,
        opened_at=parse_rfc3339(item.opened_at),
        first_response_due=parse_rfc3339(item.first_response_due),
        resolution_due=parse_rfc3339(item.resolution_due),
        assignee=item.assignee,
        escalation_level=int(item.escalation_level or 0),
        escalated_for=frozenset(item.escalated_for or ()),
        contact_status=item.contact_status,
        acknowledged_at=_time(item.acknowledged_at),
        resolution=item.resolution,
        satisfaction=int(item.satisfaction) if item.satisfaction is not None else None,
        history=tuple(
            HistoryEntry(parse_rfc3339(e["at"]), e["by"], e["from"], e["to"], e["note"])
            for e in json.loads(item.history)
        ),
        ack_interaction_id=item.ack_interaction_id,
        ack_subject=item.ack_subject,
        ack_text=item.ack_text,
        ack_claimed_at=_time(item.ack_claimed_at),
        version=int(item.version or 0),
    )


def _to_model(case: Case) -> CaseModel:
    deadline = case.next_deadline
    due = deadline[1] if deadline else case.resolution_due
    item = CaseModel(
        case.id,
        customer_id=case.customer_id,
        opened_sk=f"{to_rfc3339(case.opened_at)}#{case.id}",
        queue=ACTIVE_QUEUE if deadline and case.status in ACTIVE_STATUSES else None,
        due_sk=f"{to_rfc3339(due) if deadline else _NO_DEADLINE}#{case.id}",
        status=case.status,
        assignee=case.assignee,
        interaction_id=case.interaction_id,
        subject=case.subject,
        severity=case.severity,
        opened_at=to_rfc3339(case.opened_at),
        first_response_due=to_rfc3339(case.first_response_due),
        resolution_due=to_rfc3339(case.resolution_due),
        escalation_level=case.escalation_level,
        escalated_for=sorted(case.escalated_for),
        contact_status=case.contact_status,
        acknowledged_at=to_rfc3339(case.acknowledged_at) if case.acknowledged_at else None,
        resolution=case.resolution,
        satisfaction=case.satisfaction,
        ack_interaction_id=case.ack_interaction_id,
        ack_subject=case.ack_subject,
        ack_text=case.ack_text,
        ack_claimed_at=to_rfc3339(case.ack_claimed_at) if case.ack_claimed_at else None,
        history=_history(case.history),
    )
    if case.version:
        item.version = case.version
    return item


def _key(item: CaseModel, index: str | None) -> Key:
    key = {"id": {"S": item.id}}
    if index == "by_customer":
        key |= {"customer_id": {"S": item.customer_id}, "opened_sk": {"S": item.opened_sk}}
    elif index is not None:
        key["due_sk"] = {"S": item.due_sk}
        partition = {"by_due": "queue", "by_status": "status", "by_assignee": "assignee"}[index]
        key[partition] = {"S": getattr(item, partition)}
    return key


class CaseRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    def create(self, case: Case, audit: AuditEntry | None = None) -> str:
        """Store a new case while its customer exists: "created", "exists" (a case with its id
        is there already) or "no_customer" (deleted or erased meanwhile: no case is opened)."""
        try:
            with transaction(self._region) as t:
                t.condition_check(
                    CustomerModel,
                    customer_pk(case.customer_id),
                    PROFILE_SK,
                    condition=CustomerModel.pk.exists(),
                )
                t.save(_to_model(case), condition=CaseModel.id.does_not_exist())
                if audit is not None:
                    t.save(audit_item(audit))
        except TransactWriteError as error:
            failed = failed_conditions(error)
            if failed[:1] == [True]:
                return "no_customer"
            if failed[1:2] == [True]:
                return "exists"
            raise
        return "created"

    def get(self, case_id: str, *, consistent: bool = False) -> Case | None:
        """`consistent`: a strongly consistent read, for a read a conditional write relies on."""
        try:
            return _to_domain(CaseModel.get(case_id, consistent_read=consistent))
        except DoesNotExist:
            return None

    def update(
        self,
        before: Case,
        after: Case,
        timeline_entry: Interaction | None = None,
        audit: AuditEntry | None = None,
    ) -> Case:
        """Write `after` if the case is still at `before`'s version; with a timeline entry in
        the same transaction (an acknowledgement and the case it moves on)."""
        item = _to_model(after)
        item.version = before.version
        # The history is one attribute of the case: a case whose history is full takes no change.
        too_large = f"Case {before.id} is full: with this change its history would be over {ITEM_LIMIT}."
        try:
            with transaction(self._region, too_large) as t:
                t.save(item)
                if timeline_entry is not None:
                    t.save(interaction_item(timeline_entry))
                if audit is not None:
                    t.save(audit_item(audit))
        except TransactWriteError as error:
            if not any(failed_conditions(error)):
                raise  # not a lost race: no condition failed
            raise CaseChanged(before.id) from error
        return _to_domain(item)

    def list(
        self,
        *,
        status: str | None,
        severity: str | None,
        assignee: str | None,
        due_before: datetime | None,
        limit: int,
        start: Key | None,
    ) -> tuple[list[Case], Key | None]:
        """Cases due first. The index is chosen by the most selective filter given (assignee,
        then status, else the active cases); the other filters apply to that index's items."""
        range_condition = CaseModel.due_sk < to_rfc3339(due_before) if due_before else None
        filters = []
        if assignee is not None:
            index, partition = CaseModel.by_assignee, assignee
            if status is not None:
                filters.append(CaseModel.status == status)
        elif status is not None:
            index, partition = CaseModel.by_status, status
        else:
            index, partition = CaseModel.by_due, ACTIVE_QUEUE
        if severity is not None:
            filters.append(CaseModel.severity == severity)
        condition = None
        for f in filters:
            condition = f if condition is None else condition & f
        rows = index.query(
            partition,
            range_condition,
            filter_condition=condition,
            last_evaluated_key=start,
            page_size=min(limit + 1, 100),
        )
        items, next_key = collect(rows, limit, lambda i: _key(i, index.Meta.index_name))
        return [_to_domain(i) for i in items], next_key

    def of_customer(self, customer_id: str, limit: int, start: Key | None) -> tuple[list[Case], Key | None]:
        rows = CaseModel.by_customer.query(
            customer_id, scan_index_forward=False, limit=limit + 1, last_evaluated_key=start
        )
        items, next_key = collect(rows, limit, lambda i: _key(i, "by_customer"))
        return [_to_domain(i) for i in items], next_key

    def overdue(self, now: datetime) -> Iterable[str]:
        """Ids of active cases whose next deadline has passed."""
        for item in CaseModel.by_due.query(ACTIVE_QUEUE, CaseModel.due_sk <= f"{to_rfc3339(now)}#~"):
            yield item.id

    def delete_all_of(self, customer_id: str) -> int:
        removed = 0
        with CaseModel.batch_write() as batch:
            for item in CaseModel.by_customer.query(customer_id):
                batch.delete(item)
                removed += 1
        return removed
