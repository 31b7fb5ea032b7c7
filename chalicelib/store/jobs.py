"""Job repository: one item per job in `crm-<stage>-jobs`; a job leaves `running` once, by a
write conditional on it still running, so a redelivered or duplicate run never finishes it twice."""

from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.config import get_settings
from chalicelib.domain.audit import Actor
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.jobs import COMPLETED, FAILED, RUNNING, Job
from chalicelib.store.models import JobModel, transaction


def _to_domain(item: JobModel) -> Job:
    return Job(
        id=item.id,
        kind=item.kind,
        customer_id=item.customer_id,
        status=item.status,
        requested_by=Actor(item.requested_by_subject, item.requested_by_role, item.route),
        created_at=parse_rfc3339(item.created_at),
        expires_at=item.expires_at,
        completed_at=parse_rfc3339(item.completed_at) if item.completed_at else None,
        failed_at=parse_rfc3339(item.failed_at) if item.failed_at else None,
        reason=item.reason,
        document_key=item.document_key,
        size_bytes=int(item.size_bytes) if item.size_bytes is not None else None,
        slices=int(item.slices or 0),
    )


def _condition_failed(error: UpdateError) -> bool:
    return error.cause_response_code == "ConditionalCheckFailedException"


class JobRepository:
    def add(self, job: Job) -> None:
        """A transaction of one item, not a PutItem: under an Idempotency-Key it then carries
        the attempt's claim (store/models.transaction), so a retry after a lost answer knows
        the job was written and writes no second one."""
        item = JobModel(
            job.id,
            kind=job.kind,
            customer_id=job.customer_id,
            status=job.status,
            requested_by_subject=job.requested_by.subject,
            requested_by_role=job.requested_by.role,
            route=job.requested_by.route,
            created_at=to_rfc3339(job.created_at),
            expires_at=job.expires_at,
            slices=job.slices,
        )
        with transaction(get_settings().region) as t:
            t.save(item, condition=JobModel.id.does_not_exist())

    def get(self, job_id: str, *, consistent: bool = False) -> Job | None:
        try:
            return _to_domain(JobModel.get(job_id, consistent_read=consistent))
        except DoesNotExist:
            return None

    def of_customer(self, customer_id: str) -> list[Job]:
        """The customer's jobs, newest first (a Query of GSI by_customer)."""
        return [
            _to_domain(item) for item in JobModel.by_customer.query(customer_id, scan_index_forward=False)
        ]

    def running_of(self, customer_id: str, kind: str) -> Job | None:
        """The newest job of `kind` still running for the customer (GSI by_customer)."""
        rows = JobModel.by_customer.query(
            customer_id,
            scan_index_forward=False,
            filter_condition=(JobModel.status == RUNNING) & (JobModel.kind == kind),
        )
        return next((_to_domain(item) for item in rows), None)

    def _finish(self, job_id: str, actions: list) -> bool:
        try:
            JobModel(job_id).update(actions=actions, condition=JobModel.status == RUNNING)
        except UpdateError as error:
            if _condition_failed(error):
                return False  # finished before, or gone
            raise
        return True

    def complete(
        self, job_id: str, at: datetime, document_key: str | None = None, size_bytes: int | None = None
    ) -> bool:
        """Mark the job completed if it is still running; False if it was not."""
        actions = [JobModel.status.set(COMPLETED), JobModel.completed_at.set(to_rfc3339(at))]
        if document_key is not None:
            actions += [JobModel.document_key.set(document_key), JobModel.size_bytes.set(size_bytes)]
        return self._finish(job_id, actions)

    def fail(self, job_id: str, at: datetime, reason: str) -> bool:
        """Mark the job failed (with the reason) if it is still running; False if it was not."""
        return self._finish(
            job_id,
            [
                JobModel.status.set(FAILED),
                JobModel.failed_at.set(to_rfc3339(at)),
                JobModel.reason.set(reason),
            ],
        )

    def handed_on(self, job_id: str) -> bool:
        """Count one more invocation that ran out of time, if the job is still running."""
        return self._finish(job_id, [JobModel.slices.add(1)])

    def delete_all_of(self, customer_id: str, kind: str) -> int:
        removed = 0
        for item in JobModel.by_customer.query(customer_id, filter_condition=JobModel.kind == kind):
            item.delete()
            removed += 1
        return removed
