"""Import repository (the imports table, models/imports.py): an import's item changes status by
writes conditional on the status it leaves; a row's outcome is written once, conditional on its
absence; a chunk's totals are added to the import in the transaction that writes the chunk's
marker, conditional on the marker's absence. So a redelivered chunk counts nothing twice."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError

from chalicelib.config import get_settings
from chalicelib.domain.clock import parse_optional_rfc3339, parse_rfc3339, to_rfc3339
from chalicelib.domain.imports import (
    AWAITING_UPLOAD,
    COMPLETED,
    PROCESSING,
    ROW_FAILED,
    Import,
    Options,
    PlanPosition,
    RowOutcome,
    Totals,
)
from chalicelib.store.models.imports import ImportChunkModel, ImportModel, ImportRowModel
from chalicelib.store.pagination import Key, query_page
from chalicelib.store.transactions import (
    commit_together,
    deferring,
    error_code,
    failed_conditions,
    fit_together,
    is_deferring,
    transaction,
)

IMPORT_SK = "IMPORT"
DONE_SK = "DONE"
ROW_PREFIX = "ROW#"


def import_pk(import_id: str) -> str:
    return f"IMPORT#{import_id}"


def chunk_pk(import_id: str, chunk: int) -> str:
    return f"IMPORT#{import_id}#{chunk}"


def _row_sk(row: int) -> str:
    return f"{ROW_PREFIX}{row:010d}"


def _to_domain(item: ImportModel) -> Import:
    return Import(
        id=item.id,
        options=Options(
            kind=item.kind,
            format=item.format,
            mode=item.mode,
            match_on=item.match_on,
            on_duplicate=item.on_duplicate,
            dry_run=bool(item.dry_run),
        ),
        status=item.status,
        requested_by=item.requested_by,
        created_at=parse_rfc3339(item.created_at),
        expires_at=item.expires_at,
        object_key=item.object_key,
        totals=Totals(
            processed=int(item.processed or 0),
            created=int(item.created or 0),
            updated=int(item.updated or 0),
            skipped=int(item.skipped or 0),
            failed=int(item.failed or 0),
        ),
        rows=int(item.rows or 0),
        chunks=int(item.chunks or 0),
        chunks_done=int(item.chunks_done or 0),
        planned=bool(item.planned),
        plan=PlanPosition(
            start=int(item.plan_start) if item.plan_start is not None else None,
            first_row=int(item.plan_first_row or 1),
            first_index=int(item.plan_first_index or 0),
        ),
        layout=item.layout,
        started_at=parse_optional_rfc3339(item.started_at),
        completed_at=parse_optional_rfc3339(item.completed_at),
        reason=item.reason,
        size_bytes=int(item.size_bytes) if item.size_bytes is not None else None,
    )


def _outcome(item: ImportRowModel) -> RowOutcome:
    return RowOutcome(
        row=int(item.row),
        outcome=item.outcome,
        customer_id=item.customer_id,
        interaction_id=item.interaction_id,
        reason=item.reason,
        errors=tuple((field, message) for field, message in (item.errors or [])),
        source=item.source,
    )


class ImportRepository:
    def __init__(self, region: str | None = None) -> None:
        self._region = region or get_settings().region

    def add(self, imp: Import) -> None:
        options = imp.options
        ImportModel(
            import_pk(imp.id),
            IMPORT_SK,
            id=imp.id,
            kind=options.kind,
            format=options.format,
            mode=options.mode,
            match_on=options.match_on,
            on_duplicate=options.on_duplicate,
            dry_run=options.dry_run,
            status=imp.status,
            requested_by=imp.requested_by,
            created_at=to_rfc3339(imp.created_at),
            expires_at=imp.expires_at,
            object_key=imp.object_key,
        ).save(condition=ImportModel.pk.does_not_exist())

    def get(self, import_id: str, *, consistent: bool = False) -> Import | None:
        try:
            return _to_domain(ImportModel.get(import_pk(import_id), IMPORT_SK, consistent_read=consistent))
        except DoesNotExist:
            return None

    def _update(self, import_id: str, actions: list, condition) -> bool:
        """Apply `actions` if `condition` holds; False if it did not (or no such import)."""
        item = ImportModel(import_pk(import_id), IMPORT_SK)
        try:
            item.update(actions=actions, condition=ImportModel.pk.exists() & condition)
        except UpdateError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def start(self, import_id: str, at: datetime, size_bytes: int) -> bool:
        """awaiting_upload → processing; False if the import is in another status (an event
        for an upload it has had already, or for one cancelled meanwhile)."""
        return self._update(
            import_id,
            [
                ImportModel.status.set(PROCESSING),
                ImportModel.started_at.set(to_rfc3339(at)),
                ImportModel.size_bytes.set(size_bytes),
            ],
            ImportModel.status == AWAITING_UPLOAD,
        )

    def finish(
        self, import_id: str, status: str, at: datetime, reason: str | None = None, *, from_=()
    ) -> bool:
        """Leave one of the statuses `from_` for `status` (a finished one), once."""
        condition = ImportModel.status.is_in(*from_)
        actions = [ImportModel.status.set(status), ImportModel.completed_at.set(to_rfc3339(at))]
        if reason is not None:
            actions.append(ImportModel.reason.set(reason))
        return self._update(import_id, actions, condition)

    def complete_if_done(self, import_id: str, at: datetime) -> bool:
        """processing → completed once planning has ended and every chunk is done."""
        return self._update(
            import_id,
            [ImportModel.status.set(COMPLETED), ImportModel.completed_at.set(to_rfc3339(at))],
            (ImportModel.status == PROCESSING)
            & (ImportModel.planned == True)  # noqa: E712 (a condition expression)
            & (ImportModel.chunks_done >= ImportModel.chunks),
        )

    def set_layout(self, import_id: str, layout: dict, start: int) -> bool:
        return self._update(
            import_id,
            [ImportModel.layout.set(layout), ImportModel.plan_start.set(start)],
            ImportModel.status == PROCESSING,
        )

    def planned_up_to(self, import_id: str, position: PlanPosition, *, last: bool) -> bool:
        """Planning sent the chunks before `position`: it goes on from there (or has ended).
        Conditional on not going back: a redelivered planning message may repeat a batch."""
        actions = [
            ImportModel.plan_start.set(position.start),
            ImportModel.plan_first_row.set(position.first_row),
            ImportModel.plan_first_index.set(position.first_index),
            ImportModel.chunks.set(position.first_index),
            ImportModel.rows.set(position.first_row - 1),
        ]
        if last:
            actions.append(ImportModel.planned.set(True))
        return self._update(
            import_id,
            actions,
            (ImportModel.status == PROCESSING) & (ImportModel.plan_first_index <= position.first_index),
        )

    def chunk_done(self, import_id: str, chunk: int) -> bool:
        try:
            ImportChunkModel.get(chunk_pk(import_id, chunk), DONE_SK, consistent_read=True)
        except DoesNotExist:
            return False
        return True

    def outcomes_of_chunk(self, import_id: str, chunk: int) -> dict[int, RowOutcome]:
        rows = ImportRowModel.query(
            chunk_pk(import_id, chunk), ImportRowModel.sk.startswith(ROW_PREFIX), consistent_read=True
        )
        return {int(item.row): _outcome(item) for item in rows}

    # Rows written together: the transactions of several rows (each row's writes and its
    # outcome) kept while the rows are written, then sent as one TransactWriteItems.
    @staticmethod
    def deferring() -> AbstractContextManager[list[Any]]:
        return deferring()

    @staticmethod
    def fit_together(units: list[Any]) -> bool:
        return fit_together(units)

    def commit_together(self, units: list[Any]) -> bool:
        return commit_together(self._region, units)

    def record_outcomes(
        self, import_id: str, chunk: int, outcomes: list[RowOutcome], expires_at: datetime
    ) -> bool:
        """Write the outcome of each row (one or a group's rows) once: False if they were
        written already (a run of the chunk before this one)."""
        items = [self._row_item(import_id, chunk, o, expires_at) for o in outcomes]
        try:
            if len(items) == 1 and not is_deferring():
                items[0].save(condition=ImportRowModel.pk.does_not_exist())
                return True
            with transaction(self._region) as t:
                for item in items:
                    t.save(item, condition=ImportRowModel.pk.does_not_exist())
        except PutError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        except TransactWriteError as error:
            if any(failed_conditions(error)):
                return False
            raise
        return True

    @staticmethod
    def _row_item(import_id: str, chunk: int, o: RowOutcome, expires_at: datetime) -> ImportRowModel:
        failed = o.outcome == ROW_FAILED
        return ImportRowModel(
            chunk_pk(import_id, chunk),
            _row_sk(o.row),
            row=o.row,
            outcome=o.outcome,
            customer_id=o.customer_id,
            interaction_id=o.interaction_id,
            reason=o.reason,
            errors=[list(e) for e in o.errors] if failed else None,
            source=o.source if failed else None,
            failed_pk=import_id if failed else None,
            expires_at=expires_at,
        )

    def finish_chunk(self, import_id: str, chunk: int, totals: Totals, expires_at: datetime) -> bool:
        """Write the chunk's marker and add its totals to the import, in one transaction
        conditional on the marker's absence: False if an earlier run of the chunk did."""
        marker = ImportChunkModel(
            chunk_pk(import_id, chunk), DONE_SK, rows=totals.processed, expires_at=expires_at
        )
        try:
            with transaction(self._region) as t:
                t.save(marker, condition=ImportChunkModel.pk.does_not_exist())
                t.update(
                    ImportModel(import_pk(import_id), IMPORT_SK),
                    actions=[
                        ImportModel.chunks_done.add(1),
                        *(getattr(ImportModel, name).add(value) for name, value in totals.as_dict().items()),
                    ],
                    condition=ImportModel.pk.exists(),
                )
        except TransactWriteError as error:
            if failed_conditions(error)[:1] == [True]:
                return False
            raise
        return True

    def failures(self, import_id: str, limit: int, start: Key | None) -> tuple[list[RowOutcome], Key | None]:
        return query_page(
            ImportRowModel.by_failure.query,
            import_id,
            limit=limit,
            start=start,
            key_of=lambda item: {
                "pk": {"S": item.pk},
                "sk": {"S": item.sk},
                "failed_pk": {"S": item.failed_pk},
                "row": {"N": str(int(item.row))},
            },
            to_domain=_outcome,
        )

    def outcomes(
        self, import_id: str, chunks: int, start: Key | None = None
    ) -> Iterator[tuple[Key, RowOutcome]]:
        """Every row's outcome in row order (its chunks' partitions one after the other), from
        `start` (a key this gave), each with the key to go on after it."""
        first_chunk = int(start["chunk"]) if start else 0
        after = start.get("sk") if start else None
        for chunk in range(first_chunk, chunks):
            condition = ImportRowModel.sk.startswith(ROW_PREFIX)
            last_key = None
            if after is not None and chunk == first_chunk:
                last_key = {"pk": {"S": chunk_pk(import_id, chunk)}, "sk": {"S": after}}
            rows: Iterable[ImportRowModel] = ImportRowModel.query(
                chunk_pk(import_id, chunk), condition, last_evaluated_key=last_key
            )
            for item in rows:
                yield {"chunk": chunk, "sk": item.sk}, _outcome(item)
