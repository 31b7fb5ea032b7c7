"""Request and response models of bulk imports, and the API's own request models as the
functions an import validates each row with (one definition of a valid customer or interaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, StrictBool, model_validator

from chalicelib.api.customer_schemas import CustomerCreate, CustomerPatch
from chalicelib.api.interaction_schemas import InteractionCreate
from chalicelib.api.requests import RequestFieldErrors, validate
from chalicelib.api.schemas import Out, PageQuery, Strict
from chalicelib.domain.clock import optional_rfc3339, to_rfc3339
from chalicelib.domain.imports import Import, Options, RowOutcome
from chalicelib.errors import FieldError


class ImportCreate(Strict):
    kind: Literal["customers", "interactions"]
    format: Literal["csv", "ndjson"]
    mode: Literal["create", "upsert"] = "create"
    match_on: Literal["email", "id"] | None = Field(
        None,
        description="How a row names its customer: customers in upsert mode (default email), "
        "interactions (default email: a `customer_email` column or field; id: `customer_id`). "
        "Customers in create mode take none: `id` is refused there (a new customer's id is ours).",
    )
    on_duplicate: Literal["create", "skip"] = Field(
        "create",
        description="customers: a row whose best duplicate candidate reaches CRM_DUPLICATE_THRESHOLD "
        "is created anyway (create) or skipped, naming that customer (skip)",
    )
    dry_run: StrictBool = False

    @model_validator(mode="after")
    def _combination(self) -> ImportCreate:
        errors = []
        if self.kind == "customers" and self.mode == "create" and self.match_on == "id":
            errors.append(
                FieldError("match_on", "cannot be id when creating customers: their ids are made here")
            )
        if self.kind == "interactions" and self.on_duplicate != "create":
            errors.append(FieldError("on_duplicate", "applies to customers only"))
        if errors:
            raise RequestFieldErrors(errors)
        return self

    def options(self) -> Options:
        return Options(
            kind=self.kind,
            format=self.format,
            mode=self.mode,
            match_on=self.match_on or "email",
            on_duplicate=self.on_duplicate,
            dry_run=self.dry_run,
        )


class UploadOut(Out):
    url: str = Field(description='A presigned S3 PUT of the file, valid one hour: `curl -T file "<url>"`')
    method: Literal["PUT"]
    headers: dict[str, str] = Field(description="Headers the PUT must send (none: {})")
    expires_at: str


class ImportOut(Out):
    id: str
    kind: Literal["customers", "interactions"]
    format: Literal["csv", "ndjson"]
    mode: Literal["create", "upsert"]
    match_on: Literal["email", "id"]
    on_duplicate: Literal["create", "skip"]
    dry_run: bool
    status: Literal["awaiting_upload", "processing", "completed", "failed", "cancelled"]
    rows: int = Field(description="rows found so far (all of them once planning has read the whole file)")
    processed: int
    created: int
    updated: int
    skipped: int
    failed: int
    created_at: str
    started_at: str | None
    completed_at: str | None
    reason: str | None = Field(description="why the import failed (null unless it did)")
    expires_at: str = Field(description="when the import and its results are deleted")

    @classmethod
    def of(cls, imp: Import) -> dict:
        o = imp.options
        return {
            "id": imp.id,
            "kind": o.kind,
            "format": o.format,
            "mode": o.mode,
            "match_on": o.match_on,
            "on_duplicate": o.on_duplicate,
            "dry_run": o.dry_run,
            "status": imp.status,
            "rows": imp.rows,
            **imp.totals.as_dict(),
            "created_at": to_rfc3339(imp.created_at),
            "started_at": optional_rfc3339(imp.started_at),
            "completed_at": optional_rfc3339(imp.completed_at),
            "reason": imp.reason,
            "expires_at": to_rfc3339(imp.expires_at),
        }


class ImportCreated(ImportOut):
    upload: UploadOut


class RowErrorField(Out):
    field: str
    message: str


class RowErrorOut(Out):
    row: int = Field(description="1-based, the CSV header not counted")
    errors: list[RowErrorField]
    source: str = Field(description="the row as given, cut to 1 KB")

    @classmethod
    def of(cls, outcome: RowOutcome) -> dict:
        return {
            "row": outcome.row,
            "errors": [{"field": f, "message": m} for f, m in outcome.errors],
            "source": outcome.source or "",
        }


class RowErrorPage(Out):
    items: list[RowErrorOut]
    next_cursor: str | None


class ResultsQuery(Strict):
    cursor: str | None = Field(None, max_length=2048)


class ErrorsQuery(PageQuery):
    pass


NDJSON = "application/x-ndjson"
RESULT_LINE_SCHEMA = {
    "type": "string",
    "description": "one JSON object a line, in row order: "
    '{"row", "outcome": "created"|"updated"|"skipped"|"failed", '
    '"customer_id"?, "interaction_id"?, "reason"?}',
}


class RowValidators:
    """The API's request models as functions (services/import_rows.py): a row is valid exactly
    when the same body would be valid in a request, with the same field names and messages."""

    def customer_create(self, body: dict) -> dict:
        return validate(CustomerCreate, body).fields()

    def customer_patch(self, body: dict) -> dict:
        return validate(CustomerPatch, body).changes()

    def interaction(self, body: dict, now: datetime) -> dict:
        return validate(InteractionCreate, body, {"now": now}).fields()
