"""Request and response models of complaint cases."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from chalicelib.api.requests import RequestFieldErrors
from chalicelib.api.schemas import NotNull, Out, PageQuery, Strict, Text, Timestamp, integer
from chalicelib.domain import cases
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.interactions import SEVERITIES
from chalicelib.errors import FieldError

CaseStatus = Literal[cases.STATUSES]  # type: ignore[valid-type]
Severity = Literal[SEVERITIES]  # type: ignore[valid-type]


class CaseHistoryOut(Out):
    at: str
    by: str
    # "from"/"to" are Python keywords: the names are set through aliases.
    from_: str | None = Field(None, alias="from")
    to: str | None
    note: str | None

    @classmethod
    def of(cls, h) -> dict:
        return {
            "at": to_rfc3339(h.at),
            "by": h.by,
            "from": h.from_status,
            "to": h.to_status,
            "note": h.note,
        }


class CaseHistoryPage(Out):
    items: list[CaseHistoryOut]
    next_cursor: str | None


class CaseOut(Out):
    id: str
    customer_id: str
    interaction_id: str
    subject: str
    severity: Severity
    status: CaseStatus
    assignee: str | None
    opened_at: str
    first_response_due: str
    resolution_due: str
    escalation_level: int
    contact_status: str | None = Field(
        description="how the customer was told: acknowledged_by_email, no_email_address, customer_deleted"
    )
    acknowledged_at: str | None
    resolution: str | None
    satisfaction: int | None
    closed_reason: Literal["resolved", "customer_deleted"] | None = Field(
        description="why the case is closed: resolved (closed by staff after its resolution) or "
        "customer_deleted (closed when its customer was deleted); null while it is not closed"
    )
    history: list[CaseHistoryOut] = Field(
        description="the latest entries of the history, oldest first: up to 20, fewer when they "
        "are long (32 KB at most); all of them in an export, and in GET /cases/{case_id}/history"
    )
    history_count: int = Field(description="how many entries the whole history has")
    version: int

    @classmethod
    def of(cls, c) -> dict:
        def ts(value):
            return to_rfc3339(value) if value else None

        return {
            "id": c.id,
            "customer_id": c.customer_id,
            "interaction_id": c.interaction_id,
            "subject": c.subject,
            "severity": c.severity,
            "status": c.status,
            "assignee": c.assignee,
            "opened_at": ts(c.opened_at),
            "first_response_due": ts(c.first_response_due),
            "resolution_due": ts(c.resolution_due),
            "escalation_level": c.escalation_level,
            "contact_status": c.contact_status,
            "acknowledged_at": ts(c.acknowledged_at),
            "resolution": c.resolution,
            "satisfaction": c.satisfaction,
            "closed_reason": c.closed_reason,
            "history": [CaseHistoryOut.of(h) for h in c.history],
            "history_count": c.history_count,
            "version": c.version,
        }


class CasePage(Out):
    items: list[CaseOut]
    next_cursor: str | None


class CaseListQuery(PageQuery):
    status: CaseStatus | None = None
    severity: Severity | None = None
    assignee: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    due_before: Timestamp | None = None


class CasePatch(Strict):
    """Assign, change status and/or add a note; at least one field. `null` unassigns."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    status: Annotated[CaseStatus, NotNull] = None  # type: ignore[assignment]
    assignee: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    note: Text | None = None
    resolution: Text | None = None
    satisfaction: integer(ge=1, le=5) | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CasePatch:
        errors = []
        if not self.model_fields_set:
            errors.append(FieldError("body", "names nothing to change (status, assignee, note)"))
        # Before the case is read: the domain checks the same again as it moves the case.
        misfits = cases.misfits(self.status, self.resolution, self.satisfaction)
        errors += [FieldError(field, problem) for field, problem in misfits]
        if errors:
            raise RequestFieldErrors(errors)
        return self

    def changes(self) -> dict:
        return {name: getattr(self, name) for name in self.model_fields_set}
