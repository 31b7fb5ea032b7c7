"""The cases table: complaint cases and the indexes that list them due first."""

from __future__ import annotations

from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.store.models.base import TableMeta, settings


class _CaseIndex(GlobalSecondaryIndex["CaseModel"]):
    class Meta:
        projection = AllProjection()


class CasesByCustomerIndex(_CaseIndex):
    class Meta(_CaseIndex.Meta):
        index_name = "by_customer"

    customer_id = UnicodeAttribute(hash_key=True)
    opened_sk = UnicodeAttribute(range_key=True)


class CasesByDueIndex(_CaseIndex):
    class Meta(_CaseIndex.Meta):
        index_name = "by_due"

    queue = UnicodeAttribute(hash_key=True)
    due_sk = UnicodeAttribute(range_key=True)


class CasesByStatusIndex(_CaseIndex):
    class Meta(_CaseIndex.Meta):
        index_name = "by_status"

    status = UnicodeAttribute(hash_key=True)
    due_sk = UnicodeAttribute(range_key=True)


class CasesByAssigneeIndex(_CaseIndex):
    class Meta(_CaseIndex.Meta):
        index_name = "by_assignee"

    assignee = UnicodeAttribute(hash_key=True)
    due_sk = UnicodeAttribute(range_key=True)


class CaseModel(Model):
    """A complaint case. `due_sk` is "<next deadline>#<id>", so every index lists cases due
    first; `queue` ("active") is set only while the case has a deadline to meet. The history
    lives in CaseHistoryModel items; the case keeps a bounded copy of its latest entries."""

    class Meta(TableMeta):
        table_name = settings.cases_table

    id = UnicodeAttribute(hash_key=True)
    customer_id = UnicodeAttribute()
    opened_sk = UnicodeAttribute()
    queue = UnicodeAttribute(null=True)
    due_sk = UnicodeAttribute()
    status = UnicodeAttribute()
    assignee = UnicodeAttribute(null=True)
    interaction_id = UnicodeAttribute()
    subject = UnicodeAttribute()
    severity = UnicodeAttribute()
    opened_at = UnicodeAttribute()
    first_response_due = UnicodeAttribute()
    resolution_due = UnicodeAttribute()
    escalation_level = NumberAttribute(default=0)
    escalated_for = ListAttribute(of=UnicodeAttribute, default=list)
    contact_status = UnicodeAttribute(null=True)
    acknowledged_at = UnicodeAttribute(null=True)
    resolution = UnicodeAttribute(null=True)
    satisfaction = NumberAttribute(null=True)
    # The acknowledgement, once claimed for sending: the timeline entry's id and the message.
    ack_interaction_id = UnicodeAttribute(null=True)
    ack_subject = UnicodeAttribute(null=True)
    ack_text = UnicodeAttribute(null=True)
    ack_claimed_at = UnicodeAttribute(null=True)
    closed_reason = UnicodeAttribute(null=True)
    # The latest history entries (JSON list of {at, by, from, to, note}), bounded in number and
    # size; `history_count` entries in all, one CaseHistoryModel item each.
    history = UnicodeAttribute()
    history_count = NumberAttribute()
    version = VersionAttribute()

    by_customer = CasesByCustomerIndex()
    by_due = CasesByDueIndex()
    by_status = CasesByStatusIndex()
    by_assignee = CasesByAssigneeIndex()
