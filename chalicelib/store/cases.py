"""Case repository: complaint cases, the indexes that list them due first, and their history.

A case's history has no bound, so it is not kept in the case item (DynamoDB's 400 KB): each
entry is an item of its own, `CASE#<case id>`/`HISTORY#<seq>` in the customers table, written in
the same transaction as the case change it records. The change's condition on the case's
version also makes the entry numbers (`history_count + 1`, ...) unique. The case item keeps a
copy of its latest entries, bounded in number and bytes, so a case reads (and lists) with its
recent history in one request."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from pynamodb.exceptions import DeleteError, DoesNotExist, TransactWriteError

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.cases import ACTIVE_STATUSES, Case, HistoryEntry
from chalicelib.domain.clock import parse_optional_rfc3339, parse_rfc3339, to_rfc3339
from chalicelib.domain.interactions import Interaction
from chalicelib.domain.storage import VersionConflict
from chalicelib.store.audit import audit_item
from chalicelib.store.customer_items import check_profile_exists
from chalicelib.store.interactions import interaction_item
from chalicelib.store.keys import ACTIVE_QUEUE, HISTORY_PREFIX, case_pk, history_sk
from chalicelib.store.models import CaseHistoryModel, CaseModel
from chalicelib.store.pagination import Key, newest_under, query_page
from chalicelib.store.transactions import ITEM_LIMIT, failed_conditions, transaction, versioned_transaction

# Sorts after every real due time: "cases due before X" never includes a case without a deadline.
_NO_DEADLINE = "9999-12-31T23:59:59.999Z"
# The case item's copy of its latest history entries: at most this many, of at most this many
# bytes of JSON in all (a staff note is at most 4,000 characters, 16 KB of UTF-8).
RECENT_ENTRIES = 20
RECENT_BYTES = 32 * 1024
MAX_ATTEMPTS = 3


def _entry_json(e: HistoryEntry) -> str:
    return json.dumps(
        {"at": to_rfc3339(e.at), "by": e.by, "from": e.from_status, "to": e.to_status, "note": e.note},
        ensure_ascii=False,
    )


def _recent(entries: tuple[HistoryEntry, ...]) -> str:
    """The latest entries that fit RECENT_ENTRIES and RECENT_BYTES, as a JSON list: an unbroken
    run up to the newest, so what the case holds is always the tail of its history."""
    kept: list[str] = []
    size = 2
    for entry in reversed(entries[-RECENT_ENTRIES:]):
        text = _entry_json(entry)
        size += len(text.encode()) + 1
        if size > RECENT_BYTES:
            break
        kept.append(text)
    return "[" + ",".join(reversed(kept)) + "]"


def _entry(value: dict) -> HistoryEntry:
    return HistoryEntry(parse_rfc3339(value["at"]), value["by"], value["from"], value["to"], value["note"])


def _history_item(case_id: str, seq: int, e: HistoryEntry) -> CaseHistoryModel:
    return CaseHistoryModel(
        case_pk(case_id),
        history_sk(seq),
        at=to_rfc3339(e.at),
        by=e.by,
        from_status=e.from_status,
        to_status=e.to_status,
        note=e.note,
    )


def _history_domain(item: CaseHistoryModel) -> HistoryEntry:
    return HistoryEntry(parse_rfc3339(item.at), item.by, item.from_status, item.to_status, item.note)


def _new_entries(before: Case | None, after: Case) -> list[tuple[int, HistoryEntry]]:
    """The entries `after` added to `before`'s history, with their numbers."""
    known = before.history_count if before else 0
    added = after.history_count - known
    return [(known + 1 + i, e) for i, e in enumerate(after.history[len(after.history) - added :])]


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
        acknowledged_at=parse_optional_rfc3339(item.acknowledged_at),
        resolution=item.resolution,
        satisfaction=int(item.satisfaction) if item.satisfaction is not None else None,
        closed_reason=item.closed_reason,
        history=tuple(_entry(e) for e in json.loads(item.history)),
        history_count=int(item.history_count),
        ack_interaction_id=item.ack_interaction_id,
        ack_subject=item.ack_subject,
        ack_text=item.ack_text,
        ack_claimed_at=parse_optional_rfc3339(item.ack_claimed_at),
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
        closed_reason=case.closed_reason,
        history=_recent(case.history),
        history_count=case.history_count,
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
                check_profile_exists(t, case.customer_id)
                t.save(_to_model(case), condition=CaseModel.id.does_not_exist())
                for seq, entry in _new_entries(None, case):
                    t.save(_history_item(case.id, seq, entry))
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
        """Write `after` if the case is still at `before`'s version, with the history entries it
        added, and a timeline entry in the same transaction (an acknowledgement and the case it
        moves on)."""
        item = _to_model(after)
        item.version = before.version
        # The case item is bounded (its copy of the history is): only an entry can be too big.
        too_large = f"A history entry of case {before.id} would be larger than {ITEM_LIMIT}."
        with versioned_transaction(self._region, before.id, too_large) as t:
            t.save(item)
            for seq, entry in _new_entries(before, after):
                t.save(_history_item(after.id, seq, entry))
            if timeline_entry is not None:
                t.save(interaction_item(timeline_entry))
            if audit is not None:
                t.save(audit_item(audit))
        return _to_domain(item)

    def history(self, case_id: str, limit: int, start: Key | None) -> tuple[list[HistoryEntry], Key | None]:
        """A page of the case's history, newest first."""
        return newest_under(
            CaseHistoryModel,
            case_pk(case_id),
            HISTORY_PREFIX,
            limit=limit,
            start=start,
            to_domain=_history_domain,
        )

    def whole_history(self, case_id: str) -> tuple[HistoryEntry, ...]:
        """Every entry of the case's history, oldest first (read a page at a time)."""
        rows = CaseHistoryModel.query(case_pk(case_id), CaseHistoryModel.sk.startswith(HISTORY_PREFIX))
        return tuple(_history_domain(i) for i in rows)

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
        return query_page(
            index.query,
            partition,
            range_condition,
            limit=limit,
            start=start,
            key_of=lambda i: _key(i, index.Meta.index_name),
            to_domain=_to_domain,
            page_size=min(limit + 1, 100),
            filter_condition=condition,
        )

    def of_customer(self, customer_id: str, limit: int, start: Key | None) -> tuple[list[Case], Key | None]:
        return query_page(
            CaseModel.by_customer.query,
            customer_id,
            limit=limit,
            start=start,
            key_of=lambda i: _key(i, "by_customer"),
            to_domain=_to_domain,
            scan_index_forward=False,
        )

    def overdue(self, now: datetime) -> Iterable[str]:
        """Ids of active cases whose next deadline has passed."""
        for item in CaseModel.by_due.query(ACTIVE_QUEUE, CaseModel.due_sk <= f"{to_rfc3339(now)}#~"):
            yield item.id

    def delete_all_of(self, customer_id: str) -> int:
        """Delete the customer's cases with their history (erasure). Each case's entries go
        first, then the case, conditional on the version its entries were read at: a change
        that added an entry meanwhile fails it, and the entries are walked again. Cut short, a
        later run finds the case (and whatever is left of its history) again."""
        removed = 0
        for listed in CaseModel.by_customer.query(customer_id, attributes_to_get=["id", "version"]):
            item: CaseModel | None = listed
            for _ in range(MAX_ATTEMPTS):
                if item is None:
                    break
                self._delete_history(item.id)
                try:
                    item.delete()  # conditional on the version read (a VersionAttribute)
                    removed += 1
                    break
                except DeleteError as error:
                    if error.cause_response_code != "ConditionalCheckFailedException":
                        raise
                    item = self._current(item.id)
            else:
                raise VersionConflict(listed.id)
        return removed

    def _current(self, case_id: str) -> CaseModel | None:
        try:
            return CaseModel.get(case_id, consistent_read=True, attributes_to_get=["id", "version"])
        except DoesNotExist:
            return None

    def _delete_history(self, case_id: str) -> None:
        with CaseHistoryModel.batch_write() as batch:
            for item in CaseHistoryModel.query(case_pk(case_id), attributes_to_get=["pk", "sk"]):
                batch.delete(item)
