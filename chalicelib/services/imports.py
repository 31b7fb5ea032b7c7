"""Bulk import use cases: request an import (a presigned upload), start it when its file has
arrived, plan its chunks, run each chunk, report, cancel.

The upload's S3 event starts the import (`start`): its status moves to processing once, its
header is read, then `plan` reads the file as a stream and sends a message per chunk of whole
records (byte ranges), in batches of 10, handing on to a new message of its own before the
invocation's time is up. Each chunk (`run_chunk`) reads its byte range, writes each record
(services/import_rows.py) and records each row's outcome once; its totals are added to the
import with the chunk's marker, once. The import completes when planning has ended and every
chunk is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain import ids
from chalicelib.domain.audit import Actor
from chalicelib.domain.clock import Clock, Deadline
from chalicelib.domain.import_formats import (
    HEAD_BYTES,
    MAX_HEAD_BYTES,
    Chunk,
    HeaderError,
    HeaderTooLong,
    Layout,
    parse_chunk,
    plan_chunks,
    read_layout,
)
from chalicelib.domain.imports import (
    AWAITING_UPLOAD,
    CANCELLED,
    FAILED,
    FINISHED,
    IMPORT,
    MAX_OBJECT_BYTES,
    PROCESSING,
    Import,
    Options,
    PlanPosition,
    RowOutcome,
    Totals,
    object_key,
)
from chalicelib.errors import Conflict, NotFound
from chalicelib.store.pagination import CursorCodec, Page, page_of

UPLOAD_URL_LIFETIME = timedelta(hours=1)
# An import, its rows' outcomes and errors are kept this long (the table's TTL), the file 7 days.
IMPORT_LIFETIME = timedelta(days=30)
CHUNK_ROWS = 200  # plan_chunks' max_rows: a chunk is one message, its rows one worker's
SEND_BATCH = 10  # SendMessageBatch's maximum
# Planning hands on to a new message when less than this is left of its invocation.
PLAN_RESERVE_S = 20.0
# A chunk worker looks at the import's status (cancelled?) every this many records.
CANCEL_CHECK_EVERY = 50
# What one response of GET /imports/{id}/results carries at most (Lambda returns 6 MB).
RESULTS_PAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Upload:
    url: str
    method: str
    headers: dict[str, str]
    expires_at: datetime


class ImportService:
    def __init__(
        self,
        imports: Any,
        files: Any,
        queue: Any,
        rows: Callable[[], Any],
        clock: Clock,
        cursors: CursorCodec | None = None,
    ) -> None:
        self._imports = imports
        self._files = files
        self._queue = queue
        self._rows = rows
        self._clock = clock
        self._cursors = cursors

    # --- the HTTP side -----------------------------------------------------------------------------

    def request(self, options: Options, actor: Actor) -> tuple[Import, Upload]:
        """A new import awaiting its file, and the presigned PUT that uploads it."""
        now = self._clock.now()
        import_id = ids.new_id(IMPORT, now)
        imp = Import(
            id=import_id,
            options=options,
            status=AWAITING_UPLOAD,
            requested_by=actor.subject,
            created_at=now,
            expires_at=(now + IMPORT_LIFETIME).replace(microsecond=0),
            object_key=object_key(import_id),
        )
        self._imports.add(imp)
        return imp, self.upload(imp)

    def upload(self, imp: Import) -> Upload:
        lifetime = int(UPLOAD_URL_LIFETIME.total_seconds())
        url = self._files.upload_url(imp.object_key, lifetime)
        return Upload(url, "PUT", {}, self._clock.now() + UPLOAD_URL_LIFETIME)

    def get(self, import_id: str) -> Import:
        imp = self._imports.get(import_id, consistent=True)
        if imp is None:
            raise NotFound(f"No import has the id {import_id!r}.")
        return imp

    def errors(self, import_id: str, limit: int, cursor: str | None) -> Page[RowOutcome]:
        self.get(import_id)
        return page_of(
            self._cursors,
            f"imports:{import_id}:errors",
            cursor,
            lambda start: self._imports.failures(import_id, limit, start),
        )

    def results(
        self, import_id: str, cursor: str | None, max_bytes: int = RESULTS_PAGE_BYTES
    ) -> tuple[Iterator[RowOutcome], Callable[[], str | None]]:
        """The rows' outcomes in row order from `cursor`, and (once they have been read) the
        cursor of the next page: a page stops after `max_bytes` of result lines."""
        imp = self.get(import_id)
        scope = f"imports:{import_id}:results"
        start = self._cursors.decode(scope, cursor) if cursor and self._cursors else None
        state: dict[str, Any] = {"next": None}

        def lines() -> Iterator[RowOutcome]:
            size = 0
            last: dict | None = None
            for key, outcome in self._imports.outcomes(import_id, imp.chunks, start):
                if size >= max_bytes:
                    state["next"] = self._cursors.encode(scope, last) if self._cursors and last else None
                    return
                size += len(str(outcome.result_line())) + 1
                last = key
                yield outcome

        return lines(), lambda: state["next"]

    def cancel(self, import_id: str) -> Import:
        """Stop the chunks not yet run; the rows written stay. Cancelling a cancelled import
        changes nothing; a completed or failed one cannot be."""
        imp = self.get(import_id)
        if imp.status == CANCELLED:
            return imp
        if imp.status in FINISHED or not self._imports.finish(
            import_id, CANCELLED, self._clock.now(), from_=(AWAITING_UPLOAD, PROCESSING)
        ):
            current = self.get(import_id)
            if current.status == CANCELLED:
                return current
            raise Conflict(f"Import {import_id} is {current.status}: only a running one can be cancelled.")
        return self.get(import_id)

    # --- the upload's event, planning ----------------------------------------------------------------

    def start(self, import_id: str, size: int, deadline: Deadline) -> str:
        """The file of the import was uploaded: start it (once). Answers what happened."""
        imp = self._imports.get(import_id, consistent=True)
        if imp is None or imp.status != AWAITING_UPLOAD:
            return "ignored"
        now = self._clock.now()
        if not self._imports.start(import_id, now, size):
            return "ignored"
        if size > MAX_OBJECT_BYTES:
            self._fail(
                import_id,
                f"The file is {size:,} bytes: an import takes at most {MAX_OBJECT_BYTES:,} (1 GiB).",
            )
            return "failed"
        return self.plan(import_id, deadline)

    def _fail(self, import_id: str, reason: str) -> None:
        self._imports.finish(import_id, FAILED, self._clock.now(), reason, from_=(PROCESSING,))

    def _layout(self, imp: Import) -> Layout | None:
        opts = imp.options
        size = imp.size_bytes or 0
        head = self._files.read(imp.object_key, 0, min(size, HEAD_BYTES))
        try:
            try:
                return read_layout(head, opts.kind, opts.format, opts.match_on)
            except HeaderTooLong:
                head = self._files.read(imp.object_key, 0, min(size, MAX_HEAD_BYTES))
                return read_layout(head, opts.kind, opts.format, opts.match_on)
        except HeaderError as error:
            self._fail(imp.id, error.message)
            return None

    def plan(self, import_id: str, deadline: Deadline) -> str:
        """Send the import's chunk messages from where planning stopped."""
        imp = self._imports.get(import_id, consistent=True)
        if imp is None or imp.status != PROCESSING or imp.planned:
            return "ignored"
        if imp.layout is None:
            layout = self._layout(imp)
            if layout is None:
                return "failed"
            if not self._imports.set_layout(import_id, layout.to_dict(), layout.data_start):
                return "ignored"
            position = PlanPosition(layout.data_start, 1, 0)
        else:
            layout = Layout.from_dict(imp.layout)
            position = replace(
                imp.plan, start=imp.plan.start if imp.plan.start is not None else layout.data_start
            )
        size = imp.size_bytes or 0
        batch: list[Chunk] = []
        if position.start < size:
            stream = self._files.stream(imp.object_key, position.start)
            chunks = plan_chunks(
                stream,
                layout,
                start=position.start,
                first_row=position.first_row,
                first_index=position.first_index,
                max_rows=CHUNK_ROWS,
            )
            for chunk in chunks:
                batch.append(chunk)
                if len(batch) < SEND_BATCH:
                    continue
                position = self._send(import_id, batch, last=False)
                batch = []
                if position is None:
                    return "stopped"  # cancelled meanwhile
                if deadline.remaining() < PLAN_RESERVE_S:
                    self._queue.send({"import_id": import_id, "plan": True})
                    return "handed on"
        if self._send(import_id, batch, last=True, position=position) is None:
            return "stopped"
        self._imports.complete_if_done(import_id, self._clock.now())
        return "planned"

    def _send(
        self, import_id: str, batch: list[Chunk], *, last: bool, position: PlanPosition | None = None
    ) -> PlanPosition | None:
        if batch:
            self._queue.send_many(
                {
                    "import_id": import_id,
                    "chunk": {
                        "index": c.index,
                        "start": c.start,
                        "end": c.end,
                        "first_row": c.first_row,
                        "rows": c.rows,
                        "continues_group": c.continues_group,
                    },
                }
                for c in batch
            )
            end = batch[-1]
            position = PlanPosition(end.end, end.first_row + end.rows, end.index + 1)
        assert position is not None
        return position if self._imports.planned_up_to(import_id, position, last=last) else None

    # --- a chunk --------------------------------------------------------------------------------------

    def run_chunk(self, import_id: str, chunk: Chunk, *, retrying: bool = False) -> str:
        """Write the chunk's rows not written yet, then add its totals to the import once.
        `retrying`: its message was received before (an earlier run may have died mid-chunk)."""
        imp = self._imports.get(import_id, consistent=True)
        if imp is None or imp.status != PROCESSING or imp.layout is None:
            return "ignored"
        if self._imports.chunk_done(import_id, chunk.index):
            return "done before"
        written = self._imports.outcomes_of_chunk(import_id, chunk.index)
        data = self._files.read(imp.object_key, chunk.start, chunk.end)
        layout = Layout.from_dict(imp.layout)
        records = parse_chunk(data, layout, chunk.first_row, continues_group=chunk.continues_group)
        rows = self._rows()
        rows.prepare(imp, records)

        def write(record: Any) -> None:
            self._write(imp, chunk.index, rows, record, retrying)

        def write_deferred(record: Any) -> list[Any]:
            with self._imports.deferring() as units:
                write(record)
            return units

        group = _Together(self._imports, rows, rows.together(imp), write, write_deferred)
        outcome = "done"
        for n, record in enumerate(records):
            if n and n % CANCEL_CHECK_EVERY == 0 and self._cancelled(import_id):
                outcome = "cancelled"
                break
            if all(row in written for row in record.rows):
                continue
            if group.size == 0 or rows.alone(imp, record):
                group.send()
                write(record)
                continue
            group.add(record)
        group.send()
        totals = Totals()
        for stored in self._imports.outcomes_of_chunk(import_id, chunk.index).values():
            totals = totals.plus(stored.outcome)
        self._imports.finish_chunk(import_id, chunk.index, totals, imp.expires_at)
        self._imports.complete_if_done(import_id, self._clock.now())
        return outcome

    def _write(self, imp: Import, chunk: int, rows: Any, record: Any, retrying: bool) -> None:
        outcomes = rows.write(imp, record, retrying=retrying)
        self._imports.record_outcomes(imp.id, chunk, outcomes, imp.expires_at)

    def _cancelled(self, import_id: str) -> bool:
        current = self._imports.get(import_id, consistent=True)
        return current is None or current.status != PROCESSING


class _Together:
    """Records written together: each record's transactions (its writes and its outcome), kept
    while it was written, wait here until `size` records have come or the next would not fit
    in one TransactWriteItems, and are then sent as one. If DynamoDB does not take them (a
    failed condition: an email another customer has, an id an earlier run took; two actions on
    one item), nothing of them was written: each record is written again on its own, as
    without this, and its own conditions decide its outcome.

    What `rows` remembers of the records written so far (the customers created, which later
    rows are scored against as possible duplicates) follows what committed: a refused group's
    records are forgotten (`rows.undo`) before they are written again, and a record written
    while that group was pending, which did not fit in it, is set aside meanwhile and written
    again after it, so that no row is scored against one that was not written, or one after it."""

    def __init__(
        self,
        imports: Any,
        rows: Any,
        size: int,
        write: Callable[[Any], None],
        write_deferred: Callable[[Any], list[Any]],
    ) -> None:
        self._imports = imports
        self._rows = rows
        self.size = size
        self._write = write
        self._write_deferred = write_deferred
        self._records: list[Any] = []
        self._units: list[Any] = []

    def add(self, record: Any) -> None:
        units = self._write_deferred(record)
        if self._records and not self._imports.fit_together(self._units + units):
            aside = self._rows.undo([record])
            if self.send():
                self._rows.restore(aside)  # it was written against what has now committed
            else:
                units = self._write_deferred(record)
        self._records.append(record)
        self._units += units
        if len(self._records) >= self.size:
            self.send()

    def send(self) -> bool:
        """Send the records kept: True if they committed as one, False if they were written
        one by one instead."""
        records, units = self._records, self._units
        self._records, self._units = [], []
        if not records or self._imports.commit_together(units):
            return True
        self._rows.undo(records)
        for record in records:
            self._write(record)
        return False
