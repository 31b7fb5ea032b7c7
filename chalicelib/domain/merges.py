"""Merging two profiles of one person: the merge and its state (survivorship rules: H2a)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.domain.audit import Actor

RUNNING = "running"
COMPLETED = "completed"
# What a merge moves, counted as it goes (GET /merges/{id} `counts`).
COUNTED = ("interactions", "cases", "audit")


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
