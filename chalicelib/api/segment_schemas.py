"""Request and response models of segments and their members."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import ConfigDict, Field, StrictBool, model_validator

from chalicelib.api.customer_schemas import Locale, Tag
from chalicelib.api.requests import RequestFieldErrors
from chalicelib.api.schemas import Name, NotNull, Out, Sku, Strict, integer
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.loyalty.config import TIERS
from chalicelib.domain.segments import Rules
from chalicelib.errors import FieldError

if TYPE_CHECKING:
    from chalicelib.domain.segments import Segment
    from chalicelib.services.segments import MemberView

MAX_LISTED = 100

Tier = Annotated[str, Field(json_schema_extra={"enum": list(TIERS)})]
Description = Annotated[str, Field(max_length=1000)]
SegmentName = Annotated[Name, Field(max_length=100)]


def _listed(item):
    return Annotated[list[item], Field(min_length=1, max_length=MAX_LISTED)]


class SegmentRules(Strict):
    """All given conditions must hold (AND); at least one is required."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    tiers: _listed(Tier) | None = None
    min_score: integer(ge=0, le=100) | None = None
    max_score: integer(ge=0, le=100) | None = None
    locales: _listed(Locale) | None = Field(None, description='matched by language: "sv" matches sv-SE')
    tags_any: _listed(Tag) | None = None
    marketing_consent: StrictBool | None = None
    bought_skus_any: _listed(Sku) | None = None
    not_bought_skus: _listed(Sku) | None = None
    repurchase_due_within_days: integer(ge=1, le=365) | None = Field(
        None,
        description="a SKU's next expected purchase is within this many days from now, or "
        "overdue by at most its mean interval",
    )
    inactive_days_at_least: integer(ge=1, le=3650) | None = Field(
        None, description="days since the last purchase (customers who never bought are not inactive)"
    )
    never_purchased: StrictBool | None = None
    open_complaints: StrictBool | None = Field(None, description="true: has an active case; false: has none")

    @model_validator(mode="after")
    def _consistent(self) -> SegmentRules:
        errors = []
        given = {name for name in self.model_fields_set if getattr(self, name) is not None}
        if not given:
            errors.append(FieldError("rules", "must name at least one condition"))
        unknown_tiers = [t for t in self.tiers or () if t not in TIERS]
        if unknown_tiers:
            errors.append(
                FieldError("rules.tiers", f"{unknown_tiers[0]!r} is not a tier: {', '.join(TIERS)}")
            )
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            errors.append(FieldError("rules.max_score", "must not be below min_score"))
        if errors:
            raise RequestFieldErrors(errors)
        return self

    def to_rules(self) -> Rules:
        return Rules.from_dict({name: getattr(self, name) for name in self.model_fields_set})


class SegmentCreate(Strict):
    name: SegmentName
    description: Description | None = None
    rules: SegmentRules


class SegmentPatch(Strict):
    """Only the fields present change (at least one); new rules rebuild the membership."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    name: Annotated[SegmentName, NotNull] = None  # type: ignore[assignment]
    description: Description | None = None
    rules: Annotated[SegmentRules, NotNull] = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _names_something(self) -> SegmentPatch:
        if not self.model_fields_set:
            raise RequestFieldErrors(
                [FieldError("body", "names nothing to change (name, description, rules)")]
            )
        return self

    def changes(self) -> dict:
        changes = {
            name: getattr(self, name) for name in ("name", "description") if name in self.model_fields_set
        }
        if "rules" in self.model_fields_set:
            changes["rules"] = self.rules.to_rules()
        return changes


class SegmentOut(Out):
    id: str
    name: str
    description: str | None
    rules: dict
    status: str = Field(json_schema_extra={"enum": ["building", "ready"]})
    member_count: int
    version: int
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, s: Segment) -> dict:
        return {
            "id": s.id,
            "name": s.name,
            "description": s.description,
            "rules": s.rules.to_dict(),
            "status": s.status,
            "member_count": s.member_count,
            "version": s.version,
            "created_at": to_rfc3339(s.created_at),
            "updated_at": to_rfc3339(s.updated_at),
        }


class SegmentPage(Out):
    items: list[SegmentOut]
    next_cursor: str | None


class MemberOut(Out):
    customer_id: str
    name: str
    preferred_name: str | None
    locale: str
    joined_at: str

    @classmethod
    def of(cls, m: MemberView) -> dict:
        return {
            "customer_id": m.customer.id,
            "name": m.customer.name,
            "preferred_name": m.customer.preferred_name,
            "locale": m.customer.locale,
            "joined_at": to_rfc3339(m.joined_at),
        }


class MemberPage(Out):
    items: list[MemberOut]
    next_cursor: str | None
