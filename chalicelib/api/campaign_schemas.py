"""Request and response models of campaigns, their runs and their previews."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from chalicelib.api.requests import RequestFieldErrors
from chalicelib.api.schemas import Name, NotNull, Out, PageQuery, Strict, integer
from chalicelib.domain.campaign_schedule import ScheduleError, parse_schedule
from chalicelib.domain.campaign_templates import (
    MAX_LANGUAGES,
    MAX_TEMPLATE_BYTES,
    PLACEHOLDERS,
    normalize_templates,
    template_problems,
)
from chalicelib.domain.campaigns import (
    DRAFT,
    OUTCOMES,
    RECOMMENDATIONS,
    SKIP_REASONS,
    STATUSES,
    FrequencyCap,
)
from chalicelib.domain.clock import to_rfc3339
from chalicelib.errors import FieldError

if TYPE_CHECKING:
    from chalicelib.domain.campaign_runs import Decision, Run
    from chalicelib.domain.campaigns import Campaign
    from chalicelib.services.campaign_messages import Composed

CampaignName = Annotated[Name, Field(max_length=100)]
Status = Literal[STATUSES]  # type: ignore[valid-type]
Recommendation = Literal[RECOMMENDATIONS]  # type: ignore[valid-type]
_PLACEHOLDER_LIST = ", ".join("{{ " + p + " }}" for p in PLACEHOLDERS)

SCHEDULE_SCHEMA = {
    "description": 'null (runs are started by hand only), {"cron", "timezone"} (five cron fields '
    'evaluated on the wall clock of an IANA time zone) or {"at"} (one run, at an RFC 3339 time).',
    "oneOf": [
        {
            "type": "object",
            "required": ["cron", "timezone"],
            "additionalProperties": False,
            "properties": {
                "cron": {"type": "string", "examples": ["0 9 * * MON"]},
                "timezone": {"type": "string", "examples": ["Europe/Stockholm"]},
            },
        },
        {
            "type": "object",
            "required": ["at"],
            "additionalProperties": False,
            "properties": {"at": {"type": "string", "format": "date-time"}},
        },
        {"type": "null"},
    ],
}


class TemplateIn(Strict):
    subject: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(min_length=1, max_length=10_000)]


class FrequencyCapIn(Strict):
    """At most `max_messages` marketing messages per customer in any `per_days` days, counted
    across all campaigns."""

    max_messages: integer(ge=1, le=100) = 1
    per_days: integer(ge=1, le=30) = 7

    def to_cap(self) -> FrequencyCap:
        return FrequencyCap(self.max_messages, self.per_days)


TEMPLATES_DESCRIPTION = (
    f'One template per language or locale ("en" required; at most {MAX_LANGUAGES}, together at most '
    f"{MAX_TEMPLATE_BYTES:,} bytes of UTF-8). A customer gets the template of their exact locale, "
    f"then of its language, then en. Placeholders: {_PLACEHOLDER_LIST}; nothing else."
)


def _checked_fields(model: Any) -> dict:
    """The typed values of the fields given, with the schedule and the templates checked by
    the domain's rules; every problem is a 400 naming its field."""
    errors: list[FieldError] = []
    values: dict = {}
    given = model.model_fields_set
    if "schedule" in given:
        try:
            values["schedule"] = parse_schedule(model.schedule)
        except ScheduleError as error:
            errors.append(FieldError(error.field, error.message))
    if "templates" in given and model.templates is not None:
        raw = {key: {"subject": t.subject, "body": t.body} for key, t in model.templates.items()}
        problems = template_problems(raw)
        errors += [FieldError(field, message) for field, message in problems]
        if not problems:
            values["templates"] = normalize_templates(raw)
    if errors:
        raise RequestFieldErrors(errors)
    for name in ("name", "segment_id", "status", "recommendation"):
        if name in given:
            values[name] = getattr(model, name)
    if "frequency_cap" in given:
        values["frequency_cap"] = model.frequency_cap.to_cap()
    return values


class CampaignCreate(Strict):
    name: CampaignName
    segment_id: Annotated[str, Field(min_length=1, max_length=100)]
    status: Status = DRAFT
    schedule: dict | None = Field(None, json_schema_extra=SCHEDULE_SCHEMA)
    templates: dict[str, TemplateIn] = Field(description=TEMPLATES_DESCRIPTION)
    recommendation: Recommendation = Field(
        "any",
        description="which recommendation fills {{ product.… }}: repurchase, bought_together, any "
        "(repurchase, then bought together, then popular) or none (no product)",
    )
    frequency_cap: FrequencyCapIn = Field(default_factory=FrequencyCapIn)
    _fields: dict = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _rules(self) -> CampaignCreate:
        self._fields = {
            "status": DRAFT,
            "schedule": None,
            "recommendation": "any",
            "frequency_cap": FrequencyCap(),
            **_checked_fields(self),
        }
        for name in ("name", "segment_id", "status", "recommendation"):
            self._fields[name] = getattr(self, name)
        return self

    def fields(self) -> dict:
        return self._fields


class CampaignPatch(Strict):
    """Only the fields present change (at least one)."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    name: Annotated[CampaignName, NotNull] = None  # type: ignore[assignment]
    segment_id: Annotated[str, Field(min_length=1, max_length=100), NotNull] = None  # type: ignore[assignment]
    status: Annotated[Status, NotNull] = None  # type: ignore[assignment]
    schedule: dict | None = Field(None, json_schema_extra=SCHEDULE_SCHEMA)
    templates: Annotated[dict[str, TemplateIn], NotNull] = Field(None, description=TEMPLATES_DESCRIPTION)  # type: ignore[assignment]
    recommendation: Annotated[Recommendation, NotNull] = None  # type: ignore[assignment]
    frequency_cap: Annotated[FrequencyCapIn, NotNull] = None  # type: ignore[assignment]
    _changes: dict = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _rules(self) -> CampaignPatch:
        if not self.model_fields_set:
            raise RequestFieldErrors([FieldError("body", "names nothing to change")])
        self._changes = _checked_fields(self)
        return self

    def changes(self) -> dict:
        return self._changes


class CampaignOut(Out):
    id: str
    name: str
    segment_id: str
    status: Status
    schedule: dict | None = Field(json_schema_extra=SCHEDULE_SCHEMA)
    next_run_at: str | None = Field(description="UTC; while the campaign is active with a schedule")
    templates: dict[str, dict]
    recommendation: Recommendation
    frequency_cap: dict
    version: int
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, c: Campaign) -> dict:
        return {
            "id": c.id,
            "name": c.name,
            "segment_id": c.segment_id,
            "status": c.status,
            "schedule": c.schedule.to_dict() if c.schedule else None,
            "next_run_at": to_rfc3339(c.next_run_at) if c.next_run_at else None,
            "templates": {
                lang: {"subject": t.subject, "body": t.body} for lang, t in sorted(c.templates.items())
            },
            "recommendation": c.recommendation,
            "frequency_cap": c.frequency_cap.to_dict(),
            "version": c.version,
            "created_at": to_rfc3339(c.created_at),
            "updated_at": to_rfc3339(c.updated_at),
        }


class CampaignPage(Out):
    items: list[CampaignOut]
    next_cursor: str | None


class PreviewIn(Strict):
    customer_id: Annotated[str, Field(min_length=1, max_length=100)]


SkipReason = Literal[SKIP_REASONS]  # type: ignore[valid-type]


class OfferOut(Out):
    sku: str
    name: str
    price: str
    currency: str


class PreviewOut(Out):
    subject: str | None
    body: str | None
    locale: str | None = Field(description="the template language the message is in")
    product: OfferOut | None
    skip_reason: SkipReason | None

    @classmethod
    def of(cls, composed: Composed) -> dict:
        message = composed.message
        return {
            "subject": message.subject if message else None,
            "body": message.body if message else None,
            "locale": composed.locale,
            "product": composed.offer.to_dict() if composed.offer else None,
            "skip_reason": composed.skip_reason,
        }


class RunIn(Strict):
    """Empty: a run takes its campaign's segment and templates as they are when it starts."""


class SkippedOut(Out):
    model_config = ConfigDict(json_schema_extra={"required": list(SKIP_REASONS)})

    erased: int
    no_consent: int
    no_email: int
    frequency_cap: int
    no_recommendation: int


class RunOut(Out):
    id: str
    campaign_id: str
    segment_id: str
    status: Literal["queued", "running", "completed"]
    trigger: Literal["manual", "schedule"]
    scheduled_for: str | None
    created_at: str
    started_at: str | None
    completed_at: str | None
    targeted: int
    sent: int
    skipped: SkippedOut
    failed: int

    @classmethod
    def of(cls, r: Run) -> dict:
        counts = r.counts.to_dict()
        return {
            "id": r.id,
            "campaign_id": r.campaign_id,
            "segment_id": r.segment_id,
            "status": r.status,
            "trigger": r.trigger,
            "scheduled_for": to_rfc3339(r.scheduled_for) if r.scheduled_for else None,
            "created_at": to_rfc3339(r.created_at),
            "started_at": to_rfc3339(r.started_at) if r.started_at else None,
            "completed_at": to_rfc3339(r.completed_at) if r.completed_at else None,
            **counts,
        }


class RunPage(Out):
    items: list[RunOut]
    next_cursor: str | None


class RecipientQuery(PageQuery):
    outcome: Literal[OUTCOMES] | None = None  # type: ignore[valid-type]


class RecipientOut(Out):
    customer_id: str
    outcome: Literal[OUTCOMES]  # type: ignore[valid-type]
    reason: str | None = Field(description="null when sent; a skip reason, or why it failed")
    locale: str | None
    sku: str | None
    at: str

    @classmethod
    def of(cls, d: Decision) -> dict:
        return {
            "customer_id": d.customer_id,
            "outcome": d.outcome,
            "reason": d.reason,
            "locale": d.locale,
            "sku": d.sku,
            "at": to_rfc3339(d.at),
        }


class RecipientPage(Out):
    items: list[RecipientOut]
    next_cursor: str | None
