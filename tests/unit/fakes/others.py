"""Sign-in links, jobs, export documents, the audit trail, idempotency records, mail and queues."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from chalicelib.domain import storage
from chalicelib.domain.audit import AuditEntry, Change
from chalicelib.domain.clock import Deadline
from chalicelib.domain.identities import Identity
from chalicelib.domain.jobs import COMPLETED, FAILED, RUNNING, Job
from chalicelib.domain.storage import MailRefused
from tests.unit.fakes.base import FakeTransaction, Rivals
from tests.unit.fakes.customers import FakeCustomers


class FakeIdentities:
    def __init__(self, customers: FakeCustomers, audit: list[AuditEntry]) -> None:
        self.links: dict[tuple[str, str], Identity] = {}
        self.customers = customers
        self.audit = audit
        self.rivals = Rivals()

    def customer_for(self, issuer: str, subject: str, *, consistent: bool = False) -> str | None:
        identity = self.links.get((issuer, subject))
        return identity.customer_id if identity else None

    def add_link(self, t: FakeTransaction, identity: Identity, audit: AuditEntry | None = None) -> None:
        key = (identity.issuer, identity.subject)
        t.check(lambda: key not in self.links)
        t.write(lambda: self._store(identity, audit))

    def link(self, identity: Identity, audit: AuditEntry | None = None) -> bool:
        self.rivals.run()
        if self.customers.get(identity.customer_id) is None:
            raise storage.NotFound(identity.customer_id)
        owner = self.customer_for(identity.issuer, identity.subject)
        if owner == identity.customer_id:
            return False
        if owner is not None:
            raise storage.IdentityTaken(owner)
        self._store(identity, audit)
        return True

    def _store(self, identity: Identity, audit: AuditEntry | None) -> None:
        self.links[(identity.issuer, identity.subject)] = identity
        if audit is not None:
            self.audit.append(audit)

    def unlink(self, customer_id: str, issuer: str, subject: str, audit: AuditEntry | None = None) -> bool:
        if self.customer_for(issuer, subject) != customer_id:
            return False
        del self.links[(issuer, subject)]
        if audit is not None:
            self.audit.append(audit)
        return True

    def of_customer(self, customer_id: str, *, consistent: bool = False) -> list[Identity]:
        return [i for i in self.links.values() if i.customer_id == customer_id]

    def forget(self, customer_id: str) -> int:
        mine = [key for key, i in self.links.items() if i.customer_id == customer_id]
        for key in mine:
            del self.links[key]
        return len(mine)


class FakeJobs:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.marks: dict[tuple[str, str], str] = {}  # (customer id, kind) -> the running job's id
        self.rivals = Rivals()

    def add(self, job: Job, replacing: str | None = None) -> None:
        self.rivals.run()
        if job.id in self.jobs:
            raise storage.AlreadyExists(job.id)
        marked = self.jobs.get(self.marks.get((job.customer_id, job.kind), ""))
        free = marked is None or marked.expires_at < job.created_at or marked.id == replacing
        if not free:
            raise storage.JobRunning(job.customer_id)
        self.jobs[job.id] = job
        self.marks[(job.customer_id, job.kind)] = job.id

    def get(self, job_id: str, *, consistent: bool = False) -> Job | None:
        return self.jobs.get(job_id)

    def marked_running(self, customer_id: str, kind: str) -> Job | None:
        return self.jobs.get(self.marks.get((customer_id, kind), ""))

    def _finish(self, job_id: str, release: bool, **changes) -> bool:
        job = self.jobs.get(job_id)
        if job is None or job.status != RUNNING:
            return False
        self.jobs[job_id] = replace(job, **changes)
        if release and self.marks.get((job.customer_id, job.kind)) == job_id:
            del self.marks[(job.customer_id, job.kind)]
        return True

    def complete(
        self, job_id: str, at: datetime, document_key: str | None = None, size_bytes: int | None = None
    ) -> bool:
        extra = {"document_key": document_key, "size_bytes": size_bytes} if document_key is not None else {}
        return self._finish(job_id, True, status=COMPLETED, completed_at=at, **extra)

    def fail(self, job_id: str, at: datetime, reason: str) -> bool:
        return self._finish(job_id, True, status=FAILED, failed_at=at, reason=reason)

    def handed_on(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        return self._finish(job_id, False, slices=job.slices + 1) if job else False

    def delete_all_of(self, customer_id: str, kind: str) -> int:
        self.marks.pop((customer_id, kind), None)
        mine = [i for i, job in self.jobs.items() if job.customer_id == customer_id and job.kind == kind]
        for job_id in mine:
            del self.jobs[job_id]
        return len(mine)


class FakeDocuments:
    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}

    @staticmethod
    def key(customer_id: str, job_id: str) -> str:
        return f"exports/{customer_id}/{job_id}.json"

    def write(self, key: str, chunks: Iterable[str], filename: str) -> int:
        body = "".join(chunks).encode()
        self.documents[key] = body
        return len(body)

    def download_url(self, key: str, expires_in: int) -> str:
        return f"https://exports.example/{key}?expires_in={expires_in}"

    def delete(self, key: str) -> None:
        self.documents.pop(key, None)

    def delete_all_of(self, customer_id: str) -> int:
        mine = [key for key in self.documents if key.startswith(f"exports/{customer_id}/")]
        for key in mine:
            del self.documents[key]
        return len(mine)


class FakeAuditTrail:
    def __init__(self, entries: list[AuditEntry]) -> None:
        self.entries = entries

    def scrub(self, customer_id: str, fields: Iterable[str], deadline: Deadline | None = None) -> int:
        fields = set(fields)
        changed = 0
        for n, entry in enumerate(self.entries):
            if entry.customer_id != customer_id:
                continue
            scrubbed = tuple(Change(c.field, None, None) if c.field in fields else c for c in entry.changes)
            if scrubbed != entry.changes:
                self.entries[n] = replace(entry, changes=scrubbed)
                changed += 1
        return changed


class FakeIdempotencyRecords:
    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}  # customer id -> record ids

    def forget(self, customer_id: str) -> int:
        return len(self.records.pop(customer_id, []))


class FakeMailer:
    """Sends by appending to `sent`; `refuse_next()` makes the next send fail as SES's refusal."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self._refusals = 0

    def refuse_next(self) -> None:
        self._refusals += 1

    def send(self, to: str, subject: str, text: str) -> str:
        if self._refusals:
            self._refusals -= 1
            raise MailRefused("refused by the fake")
        self.sent.append((to, subject, text))
        return f"msg-{len(self.sent)}"


class FakeQueue:
    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.delays: list[int] = []

    def send(self, body: dict, delay_s: int = 0) -> None:
        self.messages.append(body)
        self.delays.append(delay_s)

    def send_many(self, bodies) -> None:
        self.messages.extend(bodies)
