"""Jobs: work a request asks for and a consumer does (GDPR erasure and export), and its state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.domain import ids
from chalicelib.domain.audit import Actor

JOB = "job"
ERASURE = "erasure"
EXPORT = "export"
KINDS = (ERASURE, EXPORT)
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
# A job, and an export's document, is kept this long after the job was asked for; the
# exports bucket's lifecycle rule (infra/resources.json) deletes documents after as many days.
RETENTION = timedelta(days=7)


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    customer_id: str
    status: str
    requested_by: Actor
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    reason: str | None = None
    # An export's document: its key in the exports bucket and its size.
    document_key: str | None = None
    size_bytes: int | None = None
    # Invocations that ran out of time and handed the job on (erasure of a large customer).
    slices: int = 0

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def new_job(kind: str, customer_id: str, actor: Actor, now: datetime) -> Job:
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    return Job(
        id=ids.new_id(JOB, now),
        kind=kind,
        customer_id=customer_id,
        status=RUNNING,
        requested_by=actor,
        created_at=now,
        expires_at=(now + RETENTION).replace(microsecond=0),  # stored as whole seconds (TTL)
    )
