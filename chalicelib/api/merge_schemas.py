"""Request and response models of merges."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, WithJsonSchema

from chalicelib.api.customer_schemas import CustomerOut
from chalicelib.api.schemas import Out, Strict
from chalicelib.domain.clock import optional_rfc3339, to_rfc3339
from chalicelib.domain.merges import CHOOSABLE, SIDES, SOURCED, Merge

Side = Literal["survivor", "merged"]
FIELDS_SCHEMA = {
    "type": "object",
    "description": "Which customer's value each field keeps, overriding the rule (a field empty on the "
    "survivor takes the merged customer's; otherwise the survivor's stays). Another key or value is 422 "
    "naming `fields.<key>`.",
    "propertyNames": {"enum": list(CHOOSABLE)},
    "additionalProperties": {"enum": list(SIDES)},
    "examples": [{"email": "merged", "name": "survivor"}],
}


def _in_order(sources: dict[str, str]) -> dict[str, str]:
    """The sources in the order of SOURCED (a stored map comes back in any order)."""
    return {name: sources[name] for name in SOURCED if name in sources}


class MergeIn(Strict):
    merge_id: Annotated[
        str, Field(min_length=1, max_length=64, description="the customer to merge into this one")
    ]
    fields: Annotated[dict[str, Any], WithJsonSchema(FIELDS_SCHEMA)] = {}
    dry_run: StrictBool = Field(
        False, description="answer 200 with the profile as it would be; change nothing"
    )
    force: StrictBool = Field(
        False, description="merge customers recorded as different people (not-duplicate)"
    )


class MergeCounts(Out):
    interactions: int
    cases: int
    audit: int


Sources = Annotated[
    dict[str, Side],
    Field(description=f"which customer each field's value came from: {', '.join(SOURCED)}"),
]


class MergeOut(Out):
    id: str
    survivor_id: str
    merged_id: str
    status: Literal["running", "completed"]
    counts: MergeCounts = Field(description="what the merge moved to the survivor so far")
    sources: Sources
    created_at: str
    completed_at: str | None

    @classmethod
    def of(cls, merge: Merge) -> dict:
        return {
            "id": merge.id,
            "survivor_id": merge.survivor_id,
            "merged_id": merge.merged_id,
            "status": merge.status,
            "counts": dict(merge.counts),
            "sources": _in_order(merge.sources),
            "created_at": to_rfc3339(merge.created_at),
            "completed_at": optional_rfc3339(merge.completed_at),
        }


class MergePreviewOut(Out):
    profile: CustomerOut = Field(description="the survivor as the merge would leave it")
    sources: Sources
    counts: MergeCounts = Field(description="what the merge would move from the merged customer")

    @classmethod
    def of(cls, preview) -> dict:
        return {
            "profile": CustomerOut.of(preview.profile),
            "sources": _in_order(preview.sources),
            "counts": dict(preview.counts),
        }
