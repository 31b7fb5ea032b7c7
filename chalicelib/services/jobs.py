"""Jobs: GDPR erasure and export, asked for by a request and done by a consumer.

A request writes the job (`running`); the jobs table's stream puts it on the jobs queue
(events/jobs.py), whose consumer calls `run`. A job leaves `running` once, by a write
conditional on it still running: a redelivered message of a finished job does nothing, and a
duplicate run of a running one does the same idempotent work again. An erasure that runs out
of the invocation's time hands itself on (`handed_on`, a new message) and the next invocation
goes on where it stopped; an export is written in one invocation, streamed to S3.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from chalicelib.domain import attempts, ids
from chalicelib.domain.audit import Actor
from chalicelib.domain.clock import Clock, Deadline, OutOfTime
from chalicelib.domain.jobs import ERASURE, EXPORT, JOB, RUNNING, Job, new_job
from chalicelib.domain.storage import JobRunning
from chalicelib.errors import NotFound, ServiceBusy
from chalicelib.services.erasure import ErasureService, WaitForMerge
from chalicelib.services.ports import Documents, Jobs, ProfileReader, WorkQueue
from chalicelib.services.versions import retry_lost_races

# An erasure that needs more invocations than this is stopped (failed): it is not making the
# progress every invocation should (each one deletes at least a batch before it hands on).
MAX_SLICES = 100
# An erasure that waits for a merge of its customer to complete looks again this much later
# (SQS's DelaySeconds allows up to 900).
MERGE_WAIT_S = 60

DocumentWriter = Callable[[str, Deadline | None], Iterator[str]]


class JobFailed(Exception):
    """The job cannot succeed, however often it is run (its `str()` is the reason shown)."""


class ExportTooSlow(RuntimeError):
    """The export did not finish within one invocation."""


class JobService:
    def __init__(
        self,
        jobs: Jobs,
        customers: ProfileReader,
        clock: Clock,
        queue: Callable[[], WorkQueue],
        erasure: Callable[[], ErasureService],
        documents: Callable[[], Documents],
        export_document: DocumentWriter,
    ) -> None:
        self._jobs = jobs
        self._customers = customers
        self._clock = clock
        self._queue = queue
        self._erasure = erasure
        self._documents = documents
        self._export_document = export_document

    def request(self, kind: str, customer_id: str, actor: Actor) -> Job:
        """A new running job of `kind` for the customer, or the one already running (NotFound
        for an unknown or erased customer, and for an export of a deleted one: what a deleted
        customer left, their closed cases and audit trail, can still be erased)."""
        if attempts.repeating():
            # A retry after a lost answer: the job its first attempt wrote, even if it has
            # finished since (an erased customer is no longer found below).
            upcoming = ids.next_id(JOB, self._clock.now())
            earlier = self._jobs.get(upcoming, consistent=True) if upcoming else None
            if earlier is not None:
                return earlier

        def attempt() -> Job:
            marked = self._jobs.marked_running(customer_id, kind)
            if marked is not None and marked.status == RUNNING and not marked.expired(self._clock.now()):
                return marked
            if self._customers.get(customer_id, consistent=True) is None and not (
                kind == ERASURE and self._erasure().erasable_remains(customer_id)
            ):
                raise NotFound(f"No customer has the id {customer_id!r}.")
            job = new_job(kind, customer_id, actor, self._clock.now())
            self._jobs.add(job, replacing=marked.id if marked is not None else None)
            return job

        # JobRunning: another request started one just now, and that one is the answer.
        return retry_lost_races(
            attempt,
            ServiceBusy("Other requests for this job kept coming first; nothing was started. Retry."),
            attempts=3,
            lost=JobRunning,
        )

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        # TTL deletes expired items within days, not at once: they are gone already here.
        if job is None or job.expired(self._clock.now()):
            raise NotFound(f"No job has the id {job_id!r}.")
        return job

    def get_of_customer(self, job_id: str, customer_id: str) -> Job:
        job = self.get(job_id)
        if job.customer_id != customer_id:
            # Another customer's job is answered exactly like a job that does not exist.
            raise NotFound(f"No job has the id {job_id!r}.")
        return job

    def download_url(self, job: Job, expires_in: int) -> str | None:
        if job.document_key is None:
            return None
        return self._documents().download_url(job.document_key, expires_in)

    def run(self, job_id: str, deadline: Deadline) -> str:
        """Do the job's work; returns what happened: "skipped" (not running: finished before,
        or gone), "completed", "failed" (it cannot succeed), "handed on" (out of time, a new
        message goes on with it) or "waiting" (an erasure whose customer is being merged: a
        delayed message looks again). Other errors are raised: the message is retried."""
        job = self._jobs.get(job_id, consistent=True)
        if job is None or job.status != RUNNING:
            return "skipped"
        if job.slices >= MAX_SLICES:
            self.fail(job_id, f"The {job.kind} did not finish in {MAX_SLICES} invocations.")
            return "failed"
        try:
            if job.kind == ERASURE:
                self._erasure().erase(job.customer_id, job.requested_by, deadline)
                self._jobs.complete(job_id, self._clock.now())
            elif job.kind == EXPORT:
                self._export(job, deadline)
            else:
                raise JobFailed(f"There is no job of kind {job.kind!r}.")
        except OutOfTime:
            if self._jobs.handed_on(job_id):
                self._queue().send({"job_id": job_id})
            return "handed on"
        except WaitForMerge:
            if self._jobs.handed_on(job_id):
                self._queue().send({"job_id": job_id}, delay_s=MERGE_WAIT_S)
            return "waiting"
        except NotFound as error:  # the customer was deleted before the job ran
            self.fail(job_id, f"{error.detail} (deleted before the {job.kind} ran)")
            return "failed"
        except JobFailed as error:
            self.fail(job_id, str(error))
            return "failed"
        return "completed"

    def fail(self, job_id: str, reason: str, at: datetime | None = None) -> bool:
        return self._jobs.fail(job_id, at or self._clock.now(), reason)

    def _export(self, job: Job, deadline: Deadline) -> None:
        documents = self._documents()
        key = documents.key(job.customer_id, job.id)
        try:
            size = documents.write(
                key, self._export_document(job.customer_id, deadline), filename=f"{job.id}.json"
            )
        except OutOfTime:
            raise ExportTooSlow("The export did not finish within one invocation.") from None
        # Strongly consistent: an erasure writes the tombstone before it deletes the customer's
        # documents, so either it finds this one or this finds its tombstone.
        if self._customers.was_deleted(job.customer_id, consistent=True):
            documents.delete(key)
            raise JobFailed("The customer was deleted or erased while the export ran.")
        finished = self._jobs.complete(job.id, self._clock.now(), key, size)
        if not finished and self._jobs.get(job.id, consistent=True) is None:
            documents.delete(key)  # the job went away meanwhile (erasure): so does its document
