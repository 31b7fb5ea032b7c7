"""Merging two profiles of one person: the merge and its state, and field survivorship (which
value the surviving profile keeps)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from chalicelib.domain.audit import Actor
from chalicelib.domain.contact import email_key
from chalicelib.domain.customers import MAX_SECONDARY, Customer

RUNNING = "running"
COMPLETED = "completed"
# What a merge moves, counted as it goes (GET /merges/{id} `counts`).
COUNTED = ("interactions", "cases", "audit")

SURVIVOR = "survivor"
MERGED = "merged"
SIDES = (SURVIVOR, MERGED)
# The fields a merge request may choose a side for (`fields`).
CHOOSABLE = ("name", "preferred_name", "email", "phone", "locale")
# The fields whose side a merge reports (`sources`).
SOURCED = (*CHOOSABLE, "marketing_consent")
# The create/patch limits of a profile (api/customer_schemas.py: Tags, Attributes): a merged
# profile is held to them too.
MAX_TAGS = 20
MAX_ATTRIBUTES = 50


@dataclass(frozen=True)
class Merge:
    id: str
    survivor_id: str
    merged_id: str
    status: str
    step: str
    requested_by: Actor
    created_at: datetime
    completed_at: datetime | None = None
    sources: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    version: int = 0


class SurvivorshipError(ValueError):
    """The two profiles cannot make one within a profile's limits: `field` names the one."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


def survive(
    survivor: Customer, merged: Customer, fields: Mapping[str, str] | None = None, at: datetime | None = None
) -> tuple[Customer, dict[str, str]]:
    """The survivor's profile after the merge, and which side each of SOURCED came from.

    A field empty on the survivor takes the merged customer's value, else keeps the
    survivor's; `fields` picks a side per field of CHOOSABLE instead (an empty value never
    wins over a present one, so a choice never empties a field). The address and number not
    kept as primary become secondary ones; tags are united (the survivor's first), attributes
    merged with the survivor winning per key; marketing consent holds only if both gave it.
    SurvivorshipError when the result passes a profile's limits."""
    chosen = dict(fields or {})
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for name in CHOOSABLE:
        mine, theirs = getattr(survivor, name), getattr(merged, name)
        side = chosen.get(name, SURVIVOR)
        if side == MERGED and theirs is None:
            side = SURVIVOR
        if side == SURVIVOR and mine is None and theirs is not None:
            side = MERGED
        values[name] = theirs if side == MERGED else mine
        sources[name] = side
    consent = survivor.marketing_consent and merged.marketing_consent
    # The most restrictive side: the one that said no (the survivor's when both agree).
    sources["marketing_consent"] = MERGED if survivor.marketing_consent and not consent else SURVIVOR
    secondary_emails = _secondaries(
        values["email"],
        [*survivor.secondary_emails, *merged.secondary_emails, survivor.email, merged.email],
        email_key,
        "secondary_emails",
        "email addresses",
    )
    secondary_phones = _secondaries(
        values["phone"],
        [*survivor.secondary_phones, *merged.secondary_phones, survivor.phone, merged.phone],
        lambda phone: phone,
        "secondary_phones",
        "phone numbers",
    )
    tags = tuple(dict.fromkeys((*survivor.tags, *merged.tags)))
    if len(tags) > MAX_TAGS:
        raise SurvivorshipError(
            "tags",
            f"the two customers have {len(tags)} different tags together; a profile has at most {MAX_TAGS}",
        )
    attributes = {**merged.attributes, **survivor.attributes}
    if len(attributes) > MAX_ATTRIBUTES:
        raise SurvivorshipError(
            "attributes",
            f"the two customers have {len(attributes)} different attributes together; a profile has at "
            f"most {MAX_ATTRIBUTES}",
        )
    profile = replace(
        survivor,
        **values,
        marketing_consent=consent,
        tags=tags,
        attributes=attributes,
        secondary_emails=secondary_emails,
        secondary_phones=secondary_phones,
        updated_at=at or survivor.updated_at,
    )
    return profile, sources


def _secondaries(primary, candidates, key, field_name: str, what: str) -> tuple[str, ...]:
    """Every one of `candidates` but the primary, once each (by `key`), in order."""
    kept: dict[str, str] = {}
    taken = key(primary) if primary else None
    for value in candidates:
        if value and key(value) != taken:
            kept.setdefault(key(value), value)
    if len(kept) > MAX_SECONDARY:
        raise SurvivorshipError(
            field_name,
            f"the merged profile would keep {len(kept)} secondary {what}; a profile keeps at most "
            f"{MAX_SECONDARY}: remove some first",
        )
    return tuple(kept.values())
