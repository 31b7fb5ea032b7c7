"""A campaign's runs: what a run is, how its counts add up over its shards, and the decision it
records once per customer. No storage.

A run is split in RUN_SHARDS shards by customer, the same split as the segment's member index
(domain/segments.MEMBER_SHARDS), so the walk of one member shard feeds exactly one run shard:
its counters, its walk guards and its decisions share a partition, and the writes of a large
run spread over RUN_SHARDS partitions instead of one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.domain.campaigns import COMPLETED, FAILED, SENT, SKIP_REASONS, SKIPPED
from chalicelib.domain.segments import MEMBER_SHARDS, shard_of

RUN_SHARDS = MEMBER_SHARDS
SENDING = "sending"  # a recipient's claim while the message is being sent
MANUAL, SCHEDULED = "manual", "schedule"


DECISION_COUNTERS = 4  # counter items per run shard that decisions add to


def run_shard(customer_id: str) -> int:
    return shard_of(customer_id, RUN_SHARDS)


def decision_counter(customer_id: str) -> int:
    """Which of its shard's decision counters a customer's decision adds to (independent of
    the shard: crc32 of another string)."""
    return shard_of(f"counter:{customer_id}", DECISION_COUNTERS)


@dataclass(frozen=True)
class PagePlan:
    """A walked page, as it was read once: the customers it targets and where the next page
    starts (None: the shard's last page)."""

    customer_ids: tuple[str, ...]
    next_key: dict | None
    queued: bool = False


@dataclass(frozen=True)
class Counts:
    targeted: int = 0
    sent: int = 0
    failed: int = 0
    skipped: Mapping[str, int] = field(default_factory=dict)
    walked: int = 0  # shards whose walk has ended

    @property
    def decided(self) -> int:
        return self.sent + self.failed + sum(self.skipped.values())

    def to_dict(self) -> dict:
        return {
            "targeted": self.targeted,
            "sent": self.sent,
            "skipped": {reason: int(self.skipped.get(reason, 0)) for reason in SKIP_REASONS},
            "failed": self.failed,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Counts:
        return cls(
            targeted=int(data.get("targeted", 0)),
            sent=int(data.get("sent", 0)),
            failed=int(data.get("failed", 0)),
            skipped={reason: int((data.get("skipped") or {}).get(reason, 0)) for reason in SKIP_REASONS},
            walked=RUN_SHARDS,
        )


def total(shards: Iterable[Counts]) -> Counts:
    shards = list(shards)
    return Counts(
        targeted=sum(s.targeted for s in shards),
        sent=sum(s.sent for s in shards),
        failed=sum(s.failed for s in shards),
        skipped={r: sum(int(s.skipped.get(r, 0)) for s in shards) for r in SKIP_REASONS},
        walked=sum(s.walked for s in shards),
    )


def complete(shards: Mapping[int, Counts]) -> bool:
    """Every shard walked to its end, and every customer it queued decided."""
    return len(shards) == RUN_SHARDS and all(s.walked and s.decided >= s.targeted for s in shards.values())


@dataclass(frozen=True)
class Run:
    id: str
    campaign_id: str
    segment_id: str
    status: str  # queued | running | completed
    trigger: str  # manual | schedule
    created_at: datetime
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    counts: Counts = field(default_factory=Counts)

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED


@dataclass(frozen=True)
class Decision:
    """What a run did for one customer. `outcome` is SENDING while the message is being sent
    (a claim), then SENT; SKIPPED carries the reason, FAILED the error's kind."""

    customer_id: str
    outcome: str
    at: datetime
    reason: str | None = None
    locale: str | None = None
    sku: str | None = None
    message_id: str | None = None

    @property
    def final(self) -> bool:
        return self.outcome in (SENT, SKIPPED, FAILED)
