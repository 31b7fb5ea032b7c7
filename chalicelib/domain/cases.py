"""Complaint cases: the status flow, SLA deadlines and escalation rules. Pure: no storage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.interactions import SEVERITIES

STATUSES = ("open", "acknowledged", "in_progress", "resolved", "closed", "reopened")
ACTIVE_STATUSES = ("open", "acknowledged", "in_progress", "reopened")
TRANSITIONS: Mapping[str, tuple[str, ...]] = {
    "open": ("acknowledged",),
    "acknowledged": ("in_progress",),
    "in_progress": ("resolved",),
    "resolved": ("closed", "reopened"),
    "reopened": ("in_progress",),
    "closed": (),
}
FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"
# Why a case is closed: staff closed it after resolving it, or its customer was deleted.
CLOSED_RESOLVED = "resolved"
CLOSED_CUSTOMER_DELETED = "customer_deleted"

DEFAULT_SLA: Mapping[str, tuple[timedelta, timedelta]] = {
    "critical": (timedelta(hours=1), timedelta(hours=8)),
    "high": (timedelta(hours=4), timedelta(hours=24)),
    "medium": (timedelta(hours=24), timedelta(hours=72)),
    "low": (timedelta(hours=48), timedelta(days=7)),
}


class TransitionError(ValueError):
    def __init__(self, current: str, wanted: str) -> None:
        allowed = TRANSITIONS[current]
        options = ", ".join(allowed) if allowed else "none: the case is closed"
        super().__init__(
            f"A case cannot go from {current} to {wanted}; from {current} it can go to: {options}."
        )
        self.current, self.wanted, self.allowed = current, wanted, allowed


class MisfitFields(ValueError):
    """A change of status without a field it needs, or with one it does not take; `problems`
    are (field, problem) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field} {problem}" for field, problem in problems))
        self.problems = problems


class ClosedCase(ValueError):
    """A closed case is final: it takes no more changes from staff."""

    def __init__(self, case: Case) -> None:
        why = " (its customer was deleted)" if case.closed_reason == CLOSED_CUSTOMER_DELETED else ""
        super().__init__(f"Case {case.id} is closed{why}: it takes no more changes.")


def _duration(text: str) -> timedelta:
    text = text.strip().lower()
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) <= 0:
        raise ValueError(f"{text!r} is not a duration such as 30m, 4h or 7d")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


def sla_from_env(env: Mapping[str, str]) -> dict[str, tuple[timedelta, timedelta]]:
    """SLA targets per severity; `CRM_SLA_HIGH="4h,24h"` overrides one severity's first
    response and resolution targets."""
    sla = dict(DEFAULT_SLA)
    for severity in SEVERITIES:
        value = env.get(f"CRM_SLA_{severity.upper()}")
        if value:
            try:
                first, resolution = (_duration(part) for part in value.split(","))
            except ValueError as error:
                raise ValueError(f"CRM_SLA_{severity.upper()}={value!r}: {error}") from None
            if resolution < first:
                raise ValueError(f"CRM_SLA_{severity.upper()}: resolution comes before first response")
            sla[severity] = (first, resolution)
    return sla


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    by: str
    from_status: str | None
    to_status: str | None
    note: str | None = None


@dataclass(frozen=True)
class Case:
    id: str
    customer_id: str
    interaction_id: str
    subject: str
    severity: str
    status: str
    opened_at: datetime
    first_response_due: datetime
    resolution_due: datetime
    assignee: str | None = None
    escalation_level: int = 0
    escalated_for: frozenset[str] = frozenset()
    contact_status: str | None = None
    acknowledged_at: datetime | None = None
    resolution: str | None = None
    satisfaction: int | None = None
    closed_reason: str | None = None
    # The latest entries of the history, oldest first (all of them in an export); the case has
    # `history_count` in all. Changes append to both.
    history: tuple[HistoryEntry, ...] = ()
    history_count: int = 0
    ack_interaction_id: str | None = None
    ack_subject: str | None = None
    ack_text: str | None = None
    ack_claimed_at: datetime | None = None
    version: int = 0

    @property
    def next_deadline(self) -> tuple[str, datetime] | None:
        """The deadline the case must meet next and has not been escalated for."""
        if self.status not in ACTIVE_STATUSES:
            return None
        if self.status == "open" and FIRST_RESPONSE not in self.escalated_for:
            return FIRST_RESPONSE, self.first_response_due
        if RESOLUTION not in self.escalated_for:
            return RESOLUTION, self.resolution_due
        return None


def _with_entry(case: Case, entry: HistoryEntry, **changes) -> Case:
    return replace(case, history=(*case.history, entry), history_count=case.history_count + 1, **changes)


def case_id_for(interaction_id: str) -> str:
    """One case per complaint: the case id is derived from the complaint's id."""
    return "case_" + interaction_id.split("_", 1)[-1]


def open_case(
    *,
    customer_id: str,
    interaction_id: str,
    subject: str,
    severity: str,
    opened_at: datetime,
    sla: Mapping[str, tuple[timedelta, timedelta]],
) -> Case:
    first, resolution = sla[severity]
    return Case(
        id=case_id_for(interaction_id),
        customer_id=customer_id,
        interaction_id=interaction_id,
        subject=subject,
        severity=severity,
        status="open",
        opened_at=opened_at,
        first_response_due=opened_at + first,
        resolution_due=opened_at + resolution,
        history=(HistoryEntry(opened_at, "system", None, "open", "Opened from a complaint."),),
        history_count=1,
    )


IMPORTED_PAST_DUE = "imported_past_due"


def opened_from_import(case: Case, now: datetime) -> Case:
    """A case opened from an imported complaint, its deadlines counted from when the complaint
    was made: every deadline it has already missed is escalated for at once, in one step (level
    1), so an import of old complaints raises each case once, never a storm of escalations from
    the next sweeps; a deadline still ahead escalates as any other. A case past its first
    response is not acknowledged to the customer (`contact_status` says why): that moment has
    passed, and a mail about a complaint made long ago would confuse more than it helps."""
    missed = frozenset(
        which
        for which, due in ((FIRST_RESPONSE, case.first_response_due), (RESOLUTION, case.resolution_due))
        if due <= now
    )
    if not missed:
        return case
    labels = " and ".join("first response" if m == FIRST_RESPONSE else "resolution" for m in sorted(missed))
    note = (
        f"Imported past its {labels} deadline: escalated to level 1 on opening; no acknowledgement is sent."
    )
    return _with_entry(
        case,
        HistoryEntry(now, "system", None, None, note),
        escalation_level=1,
        escalated_for=missed,
        contact_status=IMPORTED_PAST_DUE if FIRST_RESPONSE in missed else None,
    )


def misfits(to: str | None, resolution: str | None, satisfaction: int | None) -> list[tuple[str, str]]:
    """(field, problem) for the fields a change to status `to` (None: no change) needs and
    lacks, or has and does not take: resolving takes a resolution, and only resolving does; a
    satisfaction is only given with closing."""
    problems = []
    if to == "resolved" and not resolution:
        problems.append(("resolution", "is required to resolve a case"))
    if resolution is not None and to != "resolved":
        problems.append(("resolution", "is only given with status resolved"))
    if satisfaction is not None and to != "closed":
        problems.append(("satisfaction", "is only given with status closed"))
    return problems


def transition(
    case: Case,
    to: str,
    *,
    by: str,
    at: datetime,
    note: str | None = None,
    resolution: str | None = None,
    satisfaction: int | None = None,
) -> Case:
    """The case moved to status `to`, with the fields that move takes (see `misfits`)."""
    problems = misfits(to, resolution, satisfaction)
    if problems:
        raise MisfitFields(problems)
    if to not in TRANSITIONS[case.status]:
        raise TransitionError(case.status, to)
    updates: dict = {}
    if to == "acknowledged" and case.acknowledged_at is None:
        updates["acknowledged_at"] = at
    if to == "resolved":
        updates["resolution"] = resolution
    if to == "reopened":
        updates["resolution"] = None
    if to == "closed":
        updates["closed_reason"] = CLOSED_RESOLVED
        if satisfaction is not None:
            updates["satisfaction"] = satisfaction
    return _with_entry(case, HistoryEntry(at, by, case.status, to, note), status=to, **updates)


def check_changeable(case: Case) -> None:
    """Staff may change any case but a closed one."""
    if case.status == "closed":
        raise ClosedCase(case)


def close_for_deleted_customer(case: Case, *, at: datetime, contact_status: str) -> Case | None:
    """Close the case of a customer who was deleted, from whatever status it is in; None if it
    is closed already. A customer not yet told about the case never will be (`contact_status`)."""
    if case.status == "closed":
        return None
    return _with_entry(
        case,
        HistoryEntry(at, "system", case.status, "closed", "Closed: the customer was deleted."),
        status="closed",
        closed_reason=CLOSED_CUSTOMER_DELETED,
        contact_status=case.contact_status or contact_status,
    )


def add_note(case: Case, note: str, *, by: str, at: datetime) -> Case:
    return _with_entry(case, HistoryEntry(at, by, None, None, note))


def assign(case: Case, assignee: str | None, *, by: str, at: datetime) -> Case:
    note = f"Assigned to {assignee}." if assignee else "Unassigned."
    return _with_entry(case, HistoryEntry(at, by, None, None, note), assignee=assignee)


def escalate(case: Case, now: datetime) -> Case | None:
    """Escalate for the deadline the case has missed, once per deadline; None if none is missed."""
    deadline = case.next_deadline
    if deadline is None or deadline[1] > now:
        return None
    which, due = deadline
    label = "first response" if which == FIRST_RESPONSE else "resolution"
    note = f"Escalated to level {case.escalation_level + 1}: the {label} was due {to_rfc3339(due)}."
    return _with_entry(
        case,
        HistoryEntry(now, "system", None, None, note),
        escalation_level=case.escalation_level + 1,
        escalated_for=case.escalated_for | {which},
    )
