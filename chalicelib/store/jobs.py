"""Job repository: one item per job in `crm-<stage>-jobs`; a job leaves `running` once, by a
write conditional on it still running, so a redelivered or duplicate run never finishes it twice."""

from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import DoesNotExist, TransactWriteError

from chalicelib.config import get_settings
from chalicelib.domain.audit import Actor
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.jobs import COMPLETED, FAILED, RUNNING, Job
from chalicelib.domain.storage import JobRunning
from chalicelib.store.models import RUNNING_JOB_PREFIX, JobModel, RunningJobModel
from chalicelib.store.transactions import failed_conditions, transaction


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


def _running_key(customer_id: str, kind: str) -> str:
    return f"{RUNNING_JOB_PREFIX}{kind}#{customer_id}"


class JobRepository:
    def add(self, job: Job, replacing: str | None = None) -> None:
        """Write the running job and mark it as the customer's running job of its kind, in one
        transaction conditional on no other being marked (or on the mark naming `replacing`, a
        job found finished, or having expired); else `JobRunning`. Under an Idempotency-Key
        the transaction also carries the attempt's claim (store/transactions.py), so a
        retry after a lost answer knows the job was written."""
        mark = RunningJobModel(
            _running_key(job.customer_id, job.kind), job_id=job.id, expires_at=job.expires_at
        )
        free = RunningJobModel.id.does_not_exist() | (RunningJobModel.expires_at < job.created_at)
        if replacing is not None:
            free = free | (RunningJobModel.job_id == replacing)
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
        try:
            with transaction(get_settings().region) as t:
                t.save(item, condition=JobModel.id.does_not_exist())
                t.save(mark, condition=free)
        except TransactWriteError as error:
            if failed_conditions(error)[1:2] == [True]:
                raise JobRunning(job.customer_id) from error
            raise

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

    def marked_running(self, customer_id: str, kind: str) -> Job | None:
        """The job marked as the customer's running job of `kind` (strongly consistent: two
        GetItems), running or finished since; None if none is marked."""
        try:
            mark = RunningJobModel.get(_running_key(customer_id, kind), consistent_read=True)
        except DoesNotExist:
            return None
        return self.get(mark.job_id, consistent=True)

    def _finish(self, job_id: str, actions: list, *, release: Job | None = None) -> bool:
        """Update the job if it is still running; with `release`, also remove its mark as
        the running job (if the mark still names it) in the same transaction."""
        try:
            with transaction(get_settings().region) as t:
                t.update(JobModel(job_id), actions=actions, condition=JobModel.status == RUNNING)
                if release is not None:
                    t.delete(
                        RunningJobModel(_running_key(release.customer_id, release.kind)),
                        condition=RunningJobModel.id.does_not_exist() | (RunningJobModel.job_id == job_id),
                    )
        except TransactWriteError as error:
            if any(failed_conditions(error)):
                return False  # finished before, or gone (a mark naming another job: see add)
            raise
        return True

    def complete(
        self, job_id: str, at: datetime, document_key: str | None = None, size_bytes: int | None = None
    ) -> bool:
        """Mark the job completed if it is still running; False if it was not."""
        actions = [JobModel.status.set(COMPLETED), JobModel.completed_at.set(to_rfc3339(at))]
        if document_key is not None:
            actions += [JobModel.document_key.set(document_key), JobModel.size_bytes.set(size_bytes)]
        return self._finish(job_id, actions, release=self.get(job_id, consistent=True))

    def fail(self, job_id: str, at: datetime, reason: str) -> bool:
        """Mark the job failed (with the reason) if it is still running; False if it was not."""
        return self._finish(
            job_id,
            [
                JobModel.status.set(FAILED),
                JobModel.failed_at.set(to_rfc3339(at)),
                JobModel.reason.set(reason),
            ],
            release=self.get(job_id, consistent=True),
        )

    def handed_on(self, job_id: str) -> bool:
        """Count one more invocation that ran out of time, if the job is still running."""
        return self._finish(job_id, [JobModel.slices.add(1)])

    def delete_all_of(self, customer_id: str, kind: str) -> int:
        RunningJobModel(_running_key(customer_id, kind)).delete()
        removed = 0
        for item in JobModel.by_customer.query(customer_id, filter_condition=JobModel.kind == kind):
            item.delete()
            removed += 1
        return removed
