"""What the merge tests share: asking for a merge, and the end of a merge's job, written
directly (the job, services/merge_job.py, is another part of the merge issue)."""

from __future__ import annotations

from chalicelib.store.keys import MERGE_RUNNING_SK, MERGE_SK, customer_pk, merge_pk, not_duplicate_sk
from chalicelib.store.models import MergeModel, MergeRunningModel, NotDuplicateModel


def merge(api, survivor_id: str, merged_id: str, **options):
    return api.post(f"/customers/{survivor_id}/merge", {"merge_id": merged_id, **options})


def finish(merge_id: str) -> None:
    """The job's last step: the merge completed, neither customer marked any longer."""
    item = MergeModel.get(merge_pk(merge_id), MERGE_SK)
    item.update(actions=[MergeModel.status.set("completed"), MergeModel.completed_at.set(item.created_at)])
    for customer_id in (item.survivor_id, item.merged_id):
        MergeRunningModel(customer_pk(customer_id), MERGE_RUNNING_SK).delete()


def record_not_duplicates(a: str, b: str) -> None:
    """What POST /customers/{id}/not-duplicate writes (the detection part of the issue)."""
    for one, other in ((a, b), (b, a)):
        NotDuplicateModel(
            customer_pk(one),
            not_duplicate_sk(other),
            other_id=other,
            recorded_at="2026-06-01T12:00:00.000Z",
            recorded_by="staff-1",
        ).save()
