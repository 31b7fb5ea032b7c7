"""Rows of an import file turned into the API's request bodies: a CSV row by its header's
columns, an NDJSON line as it is. Nothing is validated here beyond reading the row: the API's
own models judge the bodies, so a row's errors name the fields as the API does."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from decimal import Decimal

CUSTOMER_FIELDS = ("name", "preferred_name", "email", "phone", "locale", "marketing_consent", "tags")
# The fields of POST /customers/{id}/interactions (api/interaction_schemas.py), items aside.
INTERACTION_FIELDS = (
    "type",
    "channel",
    "direction",
    "occurred_at",
    "note",
    "currency",
    "purchase_id",
    "severity",
    "subject",
    "text",
)
ITEM_FIELDS = ("sku", "name", "quantity", "unit_price")
BOOLEAN_FIELDS = frozenset({"marketing_consent"})
GROUP_COLUMN = "interaction_ref"
ATTRIBUTE_PREFIX = "attributes."
ITEM_PREFIX = "items."
SOURCE_BYTES = 1024


class HeaderError(Exception):
    """The file cannot be imported at all: `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class HeaderTooLong(HeaderError):
    """The header row does not end within the bytes given: a longer head may hold it."""


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


@dataclass(frozen=True)
class Record:
    rows: tuple[int, ...]
    body: dict | None
    customer_ref: str | None
    problems: tuple[FieldProblem, ...]
    source: str
    blank: bool = False


def customer_column(kind: str, match_on: str) -> str | None:
    """The column (or NDJSON field) that names a row's customer, taken out of the body."""
    if kind == "interactions":
        return "customer_email" if match_on == "email" else "customer_id"
    return "id" if match_on == "id" else None


def allowed_columns(kind: str, match_on: str) -> tuple[str, ...]:
    """The columns a CSV header may name (`attributes.<key>` for any key, for customers)."""
    ref = customer_column(kind, match_on)
    if kind == "customers":
        return (*((ref,) if ref else ()), *CUSTOMER_FIELDS, f"{ATTRIBUTE_PREFIX}<key>")
    return (ref, *INTERACTION_FIELDS, "items", GROUP_COLUMN, *(ITEM_PREFIX + name for name in ITEM_FIELDS))


def check_columns(columns: tuple[str, ...], kind: str, match_on: str) -> None:
    allowed = allowed_columns(kind, match_on)
    seen: set[str] = set()
    for number, column in enumerate(columns, start=1):
        if not column:
            raise HeaderError(f"Column {number} of the header row has no name.")
        if column in seen:
            raise HeaderError(f"The column {column!r} appears twice in the header row.")
        seen.add(column)
        attribute = kind == "customers" and column.startswith(ATTRIBUTE_PREFIX) and column != ATTRIBUTE_PREFIX
        if column not in allowed and not attribute:
            raise HeaderError(
                f"Unknown column {column!r}: the columns of {kind} (match_on {match_on}) are "
                f"{', '.join(allowed)}."
            )
    ref = customer_column(kind, match_on)
    if ref and ref not in seen:
        raise HeaderError(
            f"The header row has no {ref} column: each row names its customer by it (match_on {match_on})."
        )
    item_columns = sorted(c for c in seen if c.startswith(ITEM_PREFIX))
    if "items" in seen and (item_columns or GROUP_COLUMN in seen):
        other = item_columns[0] if item_columns else GROUP_COLUMN
        raise HeaderError(
            f"The columns 'items' (every item as JSON in one cell) and {other!r} (one row per item) "
            "exclude each other."
        )


def split_cells(text: str) -> list[str] | str:
    """The cells of one CSV record (its line break included or not), or what is wrong with it."""
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    if '"' not in text and "\n" not in text and "\r" not in text:
        return text.split(",")
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as error:
        return str(error)
    if len(rows) != 1:
        return "a quote inside a field that does not start with one (write it doubled, in a quoted field)"
    return rows[0]


def cut_source(raw: bytes) -> str:
    """The row as given, at most SOURCE_BYTES of UTF-8, never cut inside a character."""
    if raw.endswith(b"\n"):
        raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
    text = raw[: SOURCE_BYTES + 4].decode("utf-8", "replace")
    return text.encode()[:SOURCE_BYTES].decode("utf-8", "ignore")


def _row_problem(message: str) -> tuple[FieldProblem, ...]:
    return (FieldProblem("row", message),)


def _utf8(raw: bytes) -> str | FieldProblem:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return FieldProblem("row", f"The row is not UTF-8: byte {raw[error.start]:#04x} at {error.start}.")


def load_json(text: str):
    """As the API reads a body: numbers with a fraction as Decimal. ValueError saying what is wrong."""
    try:
        return json.loads(text, parse_float=Decimal)
    except RecursionError:
        raise ValueError("nests JSON too deeply") from None
    except ValueError as error:
        raise ValueError(f"is not valid JSON: {error}") from None


def ndjson_record(raw: bytes, number: int, layout, too_long: bool) -> Record:
    rows, source = (number,), cut_source(raw)
    if too_long:
        return Record(rows, None, None, _row_problem("The line is longer than 1 MB."), source)
    text = _utf8(raw)
    if isinstance(text, FieldProblem):
        return Record(rows, None, None, (text,), source)
    if not text.strip():
        return Record(rows, None, None, (), source, blank=True)
    try:
        body = load_json(text)
    except ValueError as error:
        return Record(rows, None, None, _row_problem(f"The line {error}."), source)
    if not isinstance(body, dict):
        return Record(rows, None, None, _row_problem("The line is not a JSON object."), source)
    column = customer_column(layout.kind, layout.match_on)
    ref = body.pop(column, None) if column else None
    if ref is not None and not isinstance(ref, str):
        return Record(rows, None, None, (FieldProblem(column, "must be a string"),), source)
    return Record(rows, body, ref or None, (), source)


class CsvRows:
    """The CSV rows of one layout: a record from one row, or from an interaction_ref group."""

    def __init__(self, layout) -> None:
        self.width = len(layout.columns)
        self.ref_column = customer_column(layout.kind, layout.match_on)
        self.columns = layout.columns

    def record(self, group: list[tuple[int, bytes, str | None]]) -> Record:
        numbers = tuple(number for number, _, _ in group)
        raw = b"".join(r if r.endswith(b"\n") else r + b"\n" for _, r, _ in group[:-1]) + group[-1][1]
        source = cut_source(raw)
        cells_of_rows = []
        problems: list[FieldProblem] = []
        for number, row_raw, problem in group:
            cells = self._cells(row_raw, problem)
            if isinstance(cells, FieldProblem):
                prefix = f"Row {number}: " if len(group) > 1 else ""
                problems.append(FieldProblem(cells.field, prefix + cells.message))
            else:
                cells_of_rows.append(cells)
        if problems:
            return Record(numbers, None, None, tuple(problems), source)
        if len(group) == 1 and not any(cells_of_rows[0]):
            return Record(numbers, None, None, (), source, blank=True)
        return self._body(numbers, cells_of_rows, source)

    def _cells(self, raw: bytes, problem: str | None) -> list[str] | FieldProblem:
        if problem:
            return FieldProblem("row", problem)
        text = _utf8(raw)
        if isinstance(text, FieldProblem):
            return text
        if not text.strip():
            return [""] * self.width
        cells = split_cells(text)
        if isinstance(cells, str):
            return FieldProblem("row", f"The row is not valid CSV: {cells}.")
        if len(cells) != self.width:
            return FieldProblem("row", f"The row has {len(cells)} cells; the header row has {self.width}.")
        return cells

    def _body(self, numbers: tuple[int, ...], rows: list[list[str]], source: str) -> Record:
        body: dict = {}
        ref: str | None = None
        items: list[dict] = []
        problems: list[FieldProblem] = []
        for n, cells in enumerate(rows):
            item: dict = {}
            for i, (column, cell) in enumerate(zip(self.columns, cells, strict=True)):
                if column.startswith(ITEM_PREFIX):
                    if cell:
                        name = column[len(ITEM_PREFIX) :]
                        item[name] = (
                            int(cell) if name == "quantity" and cell.isascii() and cell.isdigit() else cell
                        )
                    continue
                if n:
                    if cell and cell != rows[0][i]:
                        message = (
                            f"Row {numbers[n]} differs from row {numbers[0]} of its interaction_ref group."
                        )
                        problems.append(FieldProblem(column, message))
                    continue
                if not cell or column == GROUP_COLUMN:
                    continue
                if column == self.ref_column:
                    ref = cell
                elif column == "tags":
                    body["tags"] = [tag for tag in (part.strip() for part in cell.split(";")) if tag]
                elif column.startswith(ATTRIBUTE_PREFIX):
                    body.setdefault("attributes", {})[column[len(ATTRIBUTE_PREFIX) :]] = cell
                elif column == "items":
                    try:
                        body["items"] = load_json(cell)
                    except ValueError as error:
                        problems.append(FieldProblem("items", f"{error}"))
                elif column in BOOLEAN_FIELDS and cell.lower() in ("true", "false"):
                    body[column] = cell.lower() == "true"
                else:
                    body[column] = cell
            if item:
                items.append(item)
        if problems:
            return Record(numbers, None, None, tuple(problems), source)
        if items:
            body["items"] = items
        return Record(numbers, body, ref, (), source)
