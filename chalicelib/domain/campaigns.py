"""Scheduled personalised campaigns: a segment, a schedule, a message per language and an
optional product recommendation, sent to each member who still wants marketing, as often as
the campaign's frequency cap (counted across all campaigns) allows. No storage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from chalicelib.domain.campaign_schedule import Schedule, next_run
from chalicelib.domain.campaign_templates import Template
from chalicelib.domain.clock import require_aware

CAMPAIGN = "cmp"
RUN = "run"

DRAFT, ACTIVE, PAUSED, FINISHED = "draft", "active", "paused", "finished"
STATUSES = (DRAFT, ACTIVE, PAUSED, FINISHED)
DELETABLE = (DRAFT, PAUSED)
RECOMMENDATIONS = ("repurchase", "bought_together", "any", "none")
# In the order they are decided: a customer is skipped for the first that applies.
SKIP_REASONS = ("erased", "no_consent", "no_email", "frequency_cap", "no_recommendation")
SENT, SKIPPED, FAILED = "sent", "skipped", "failed"
OUTCOMES = (SENT, SKIPPED, FAILED)
QUEUED, RUNNING, COMPLETED = "queued", "running", "completed"  # a run's statuses
EDITABLE_FIELDS = ("name", "segment_id", "status", "schedule", "templates", "recommendation", "frequency_cap")

MAX_CAP_MESSAGES = 100
MAX_CAP_DAYS = 30


@dataclass(frozen=True)
class FrequencyCap:
    """At most `max_messages` marketing messages to one customer in any `per_days` days."""

    max_messages: int = 1
    per_days: int = 7

    def __post_init__(self) -> None:
        for value, most in ((self.max_messages, MAX_CAP_MESSAGES), (self.per_days, MAX_CAP_DAYS)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise ValueError(
                    f"a frequency cap is 1-{MAX_CAP_MESSAGES} messages per 1-{MAX_CAP_DAYS} days, "
                    f"got {self.max_messages} per {self.per_days}"
                )

    def to_dict(self) -> dict:
        return {"max_messages": self.max_messages, "per_days": self.per_days}


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    segment_id: str
    status: str
    schedule: Schedule | None
    templates: dict[str, Template]
    recommendation: str
    frequency_cap: FrequencyCap
    version: int
    created_at: datetime
    updated_at: datetime
    # When the scheduler should start the next run: only while active with a schedule.
    next_run_at: datetime | None = None

    def with_changes(self, changes: Mapping, now: datetime) -> Campaign:
        """The campaign with `changes` (any of EDITABLE_FIELDS) applied at `now`, and its next
        run recomputed when its status or schedule changed. The version is the stored one: the
        store bumps it when it writes."""
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        _check(changes.get("status", self.status), changes.get("recommendation", self.recommendation))
        changed = replace(self, **changes, updated_at=now)
        if (changed.status, changed.schedule) == (self.status, self.schedule):
            # The next run is the scheduler's to move on: a change of name or templates while a
            # run is due must not skip it.
            return changed
        return replace(changed, next_run_at=scheduled_next(changed.status, changed.schedule, now))

    @property
    def deletable(self) -> bool:
        return self.status in DELETABLE


def scheduled_next(status: str, schedule: Schedule | None, now: datetime) -> datetime | None:
    """The next run after `now` of a campaign in `status`: only an active one runs."""
    if status != ACTIVE or schedule is None:
        return None
    return next_run(schedule, now)


def _check(status: str, recommendation: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    if recommendation not in RECOMMENDATIONS:
        raise ValueError(f"recommendation must be one of {RECOMMENDATIONS}, got {recommendation!r}")


def new_campaign(
    id: str,
    name: str,
    segment_id: str,
    status: str,
    schedule: Schedule | None,
    templates: dict[str, Template],
    recommendation: str,
    frequency_cap: FrequencyCap,
    now: datetime,
) -> Campaign:
    require_aware(now, "now")
    _check(status, recommendation)
    return Campaign(
        id=id,
        name=name,
        segment_id=segment_id,
        status=status,
        schedule=schedule,
        templates=templates,
        recommendation=recommendation,
        frequency_cap=frequency_cap,
        version=1,
        created_at=now,
        updated_at=now,
        next_run_at=scheduled_next(status, schedule, now),
    )


MAX_KEPT_SENDS = MAX_CAP_MESSAGES
KEPT_FOR = timedelta(days=MAX_CAP_DAYS)  # the longest window a cap can have


@dataclass(frozen=True)
class SendLog:
    """When marketing messages went to one customer, across all campaigns: the newest
    MAX_KEPT_SENDS within KEPT_FOR, which decide every cap (max_messages <= 100, per_days <= 30).
    Bounded, so it fits one small item."""

    times: tuple[datetime, ...] = ()
    version: int = 0

    def over(self, cap: FrequencyCap, now: datetime) -> bool:
        """At least `cap.max_messages` sends in the rolling window since now - per_days: one
        more now would exceed the cap. A send exactly per_days ago has left the window; one
        stamped after `now` counts (another worker's clock, or a rival's send logged while
        this decision was being made: the log holds only sends that were claimed)."""
        start = now - timedelta(days=cap.per_days)
        return sum(1 for at in self.times if start < at) >= cap.max_messages

    def with_send(self, at: datetime) -> SendLog:
        """The log with a send at `at`; sends that no cap can count any more are dropped. The
        version is the stored one: the store bumps it when it writes."""
        require_aware(at, "at")
        kept = sorted(time for time in (*self.times, at) if time > at - KEPT_FOR)
        return replace(self, times=tuple(kept[-MAX_KEPT_SENDS:]))


def skip_reason(
    *,
    profile_found: bool,
    marketing_consent: bool,
    email: str | None,
    over_cap: bool,
    has_product: bool | None,
) -> str | None:
    """Why a segment member gets no message from this run, or None to send: the first of
    SKIP_REASONS that applies. `has_product` None is a campaign that recommends nothing
    (recommendation "none"), which is never skipped for want of a product."""
    if not profile_found:
        return "erased"
    if not marketing_consent:
        return "no_consent"
    if not email or not email.strip():
        return "no_email"
    if over_cap:
        return "frequency_cap"
    if has_product is False:
        return "no_recommendation"
    return None
