"""Request and response models of duplicate detection."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from chalicelib.api.customer_schemas import PhoneOut
from chalicelib.api.schemas import Out, Strict
from chalicelib.domain.duplicates import Match

SCORING = (
    "Candidates share a phone number (E.164), a mailbox (the address case-folded; at gmail.com "
    "and googlemail.com without dots and +tags, at outlook.com, hotmail.com, live.com, icloud.com, "
    "me.com, mac.com, fastmail.com, protonmail.com and proton.me without +tags) or words of the "
    "name (case and accents folded, in any order). Evidence weighs: email exact 0.9, normalised "
    "0.85; phone 0.8; name: its similarity s from 0 to 1 (rapidfuzz token_sort_ratio and "
    "token_set_ratio, averaged; nothing below 0.75). score = 1 - (1 - contact)(1 - 0.7 s) with "
    "contact = 1 - (1 - email)(1 - phone): a name alone scores at most 0.7, below any contact "
    "detail. Best first; customers recorded with POST /customers/{customer_id}/not-duplicate are "
    "never listed. At most 25 candidates are scored."
)


class DuplicateReason(Out):
    field: Literal["email", "phone", "name"]
    kind: Literal["exact", "normalised", "similar"]
    detail: str


class DuplicateOut(Out):
    customer_id: str
    name: str
    email: str | None
    phone: PhoneOut | None
    score: Annotated[float, Field(ge=0, le=1)]
    reasons: list[DuplicateReason]

    @classmethod
    def of(cls, match: Match) -> dict:
        candidate = match.candidate
        return {
            "customer_id": match.customer_id,
            "name": candidate.name,
            "email": candidate.email,
            "phone": candidate.phone,
            "score": match.score,
            "reasons": [{"field": r.field, "kind": r.kind, "detail": r.detail} for r in match.reasons],
        }


class DuplicatePage(Out):
    items: list[DuplicateOut]
    next_cursor: str | None


class NotDuplicateIn(Strict):
    customer_id: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="the other customer: the two are different people"
    )
