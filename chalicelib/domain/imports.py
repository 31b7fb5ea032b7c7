"""Bulk imports: what an import is, the outcome of each of its rows, and the ids its writes get.

An import's rows are written by chunk workers that may run twice (a redelivered message, a
crashed worker's retry): every id a row's write creates is derived from what the row is, so a
second run of the row builds the same id and finds its own earlier write.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from chalicelib.domain import ids

IMPORT = "imp"

AWAITING_UPLOAD = "awaiting_upload"
PROCESSING = "processing"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (AWAITING_UPLOAD, PROCESSING, COMPLETED, FAILED, CANCELLED)
FINISHED = (COMPLETED, FAILED, CANCELLED)

CREATED = "created"
UPDATED = "updated"
SKIPPED = "skipped"
ROW_FAILED = "failed"
OUTCOMES = (CREATED, UPDATED, SKIPPED, ROW_FAILED)

# Reasons of skipped rows.
UNCHANGED = "unchanged"
BLANK = "blank"

KINDS = ("customers", "interactions")
FORMATS = ("csv", "ndjson")
MODES = ("create", "upsert")

MAX_OBJECT_BYTES = 1024**3  # 1 GiB: what the issue allows an upload
SOURCE_BYTES = 1024


@dataclass(frozen=True)
class Options:
    kind: str
    format: str
    mode: str = "create"
    match_on: str = "email"
    on_duplicate: str = "create"
    dry_run: bool = False


@dataclass(frozen=True)
class Totals:
    processed: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0

    def plus(self, outcome: str, rows: int = 1) -> Totals:
        attribute = "failed" if outcome == ROW_FAILED else outcome
        return replace(self, processed=self.processed + rows, **{attribute: getattr(self, attribute) + rows})

    def as_dict(self) -> dict[str, int]:
        return {
            "processed": self.processed,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class PlanPosition:
    """Where planning goes on from: the arguments of the next `plan_chunks` call."""

    start: int | None = None
    first_row: int = 1
    first_index: int = 0


@dataclass(frozen=True)
class Import:
    id: str
    options: Options
    status: str
    requested_by: str
    created_at: datetime
    expires_at: datetime
    object_key: str
    totals: Totals = Totals()
    rows: int = 0
    chunks: int = 0
    chunks_done: int = 0
    planned: bool = False
    plan: PlanPosition = PlanPosition()
    layout: dict | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    reason: str | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class RowOutcome:
    """What became of one row (or of a group of rows that make one interaction: each of its
    rows gets the same outcome)."""

    row: int
    outcome: str
    customer_id: str | None = None
    interaction_id: str | None = None
    reason: str | None = None
    errors: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    source: str | None = None

    def result_line(self) -> dict[str, Any]:
        line: dict[str, Any] = {"row": self.row, "outcome": self.outcome}
        if self.customer_id:
            line["customer_id"] = self.customer_id
        if self.interaction_id:
            line["interaction_id"] = self.interaction_id
        if self.reason:
            line["reason"] = self.reason
        return line


def object_key(import_id: str) -> str:
    return f"imports/{import_id}"


def import_id_of_key(key: str) -> str | None:
    """The import an uploaded object's key names (`imports/<id>`), or None."""
    prefix, _, rest = key.partition("/")
    if prefix != "imports" or not rest.startswith(f"{IMPORT}_") or "/" in rest:
        return None
    return rest


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:10]


def row_customer_id(import_id: str, row: int) -> str:
    """The id a created customer of the row gets: the same on every run of the row. The ULID's
    time is the import's (its id's), so an import's customers sort together."""
    return f"{ids.CUSTOMER}_{ids.ulid_from(ids.time_of(import_id), _digest(import_id, str(row)))}"


def row_interaction_id(import_id: str, row: int, occurred_at: datetime) -> str:
    """A created interaction's id in `create` mode: of its `occurred_at` (the timeline sorts by
    it) and of the row, the same on every run of the row."""
    return f"{ids.INTERACTION}_{ids.ulid_from(occurred_at, _digest(import_id, str(row)))}"


def content_interaction_id(customer_id: str, body: dict, occurred_at: datetime) -> str:
    """An interaction's id in `upsert` mode: of its customer and content, so a re-import of the
    same file (any import) finds the interactions it wrote and writes nothing."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return f"{ids.INTERACTION}_{ids.ulid_from(occurred_at, _digest(customer_id, canonical))}"


def cut_source(text: str, limit: int = SOURCE_BYTES) -> str:
    """`text` cut to `limit` bytes of UTF-8, never in the middle of a character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")
