"""Import files (CSV and NDJSON) read in chunks: the layout a file's head gives, byte ranges of
whole records planned from a stream, and a chunk's bytes turned into the API's request bodies.

A chunk is a byte range [start, end) of whole records, so a worker reads its range alone and
no row is split between two workers. Records end at a line feed; in CSV only outside a quoted
field (RFC 4180: a quoted field may hold commas, line breaks and doubled quotes), which the
parity of the quotes on each line tells without decoding. Consecutive CSV rows with the same
`interaction_ref` are one interaction and stay in one chunk (at most MAX_GROUP_ROWS of them).

A record longer than MAX_RECORD_BYTES fails as a row: in CSV a quote left open ends the record
at the first line break past that size, so one stray quote cannot swallow the rest of a file.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from operator import add
from typing import BinaryIO, Literal

from chalicelib.domain import import_records
from chalicelib.domain.import_records import (
    FieldProblem,
    HeaderError,
    HeaderTooLong,
    Record,
    split_cells,
)

__all__ = [
    "BOM",
    "HEAD_BYTES",
    "MAX_GROUP_ROWS",
    "MAX_HEAD_BYTES",
    "MAX_RECORD_BYTES",
    "Chunk",
    "FieldProblem",
    "Format",
    "HeaderError",
    "HeaderTooLong",
    "Kind",
    "Layout",
    "Record",
    "parse_chunk",
    "plan_chunks",
    "read_layout",
]

Kind = Literal["customers", "interactions"]
Format = Literal["csv", "ndjson"]
MatchOn = Literal["email", "id"]

BOM = b"\xef\xbb\xbf"
# What a caller reads of a file's head for read_layout; if the header row is longer (HeaderTooLong),
# up to MAX_HEAD_BYTES. A head shorter than HEAD_BYTES is taken for the whole file.
HEAD_BYTES = 64 * 1024
MAX_HEAD_BYTES = 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_GROUP_ROWS = 100
READ_BYTES = 1024 * 1024

_KINDS, _FORMATS, _MATCH_ON = ("customers", "interactions"), ("csv", "ndjson"), ("email", "id")
_OK, _UNCLOSED, _TOO_LONG = "ok", "unclosed", "too long"


@dataclass(frozen=True)
class Layout:
    kind: Kind
    format: Format
    match_on: MatchOn
    columns: tuple[str, ...] | None
    data_start: int

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "format": self.format,
            "match_on": self.match_on,
            "columns": list(self.columns) if self.columns is not None else None,
            "data_start": self.data_start,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Layout:
        columns = d.get("columns")
        return cls(
            kind=d["kind"],
            format=d["format"],
            match_on=d["match_on"],
            columns=tuple(columns) if columns is not None else None,
            data_start=int(d["data_start"]),
        )

    @property
    def group_index(self) -> int | None:
        """The CSV column of `interaction_ref`, if the file groups rows into interactions."""
        if self.columns is None or import_records.GROUP_COLUMN not in self.columns:
            return None
        return self.columns.index(import_records.GROUP_COLUMN)


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int
    end: int
    first_row: int
    rows: int
    # It begins with rows of an interaction_ref group that the chunk before cut at
    # MAX_GROUP_ROWS: pass it on to parse_chunk, which fails those rows.
    continues_group: bool = False


def read_layout(head: bytes, kind: Kind, fmt: Format, match_on: MatchOn) -> Layout:
    """The layout of a file from its first bytes (HEAD_BYTES, or the whole file if shorter).
    HeaderError when a CSV file's header cannot be used; HeaderTooLong when the header row does
    not end within `head` (read up to MAX_HEAD_BYTES and call again)."""
    if kind not in _KINDS or fmt not in _FORMATS or match_on not in _MATCH_ON:
        raise ValueError(f"unknown kind, format or match_on: {kind!r}, {fmt!r}, {match_on!r}")
    offset = len(BOM) if head.startswith(BOM) else 0
    if fmt == "ndjson":
        return Layout(kind, fmt, match_on, None, offset)
    records = _records([head[offset : offset + MAX_HEAD_BYTES]], offset, quoted=True, keep=True)
    end, raw, status = next(records, (offset, b"", _OK))
    if not raw.endswith(b"\n") and len(head) >= HEAD_BYTES:
        limit = "1 MB" if len(head) >= MAX_HEAD_BYTES else "64 KB"
        raise HeaderTooLong(f"The header row is longer than {limit}.")
    if status != _OK:
        raise HeaderError("The header row has a quote that is never closed.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HeaderError("The header row is not UTF-8.") from None
    if not text.strip():
        raise HeaderError("The file is empty: its first line must be a header row naming the columns.")
    cells = split_cells(text)
    if isinstance(cells, str):
        raise HeaderError(f"The header row is not valid CSV: {cells}.")
    columns = tuple(cell.strip() for cell in cells)
    import_records.check_columns(columns, kind, match_on)
    return Layout(kind, fmt, match_on, columns, end)


def plan_chunks(
    stream: BinaryIO,
    layout: Layout,
    *,
    start: int | None = None,
    first_row: int = 1,
    first_index: int = 0,
    target_bytes: int = 256 * 1024,
    max_rows: int = 200,
) -> Iterator[Chunk]:
    """Chunks of whole records from `stream`, which is at offset `start` of the file (a seekable
    stream is moved there; one that cannot seek, such as the body of an S3 GetObject with
    `Range: bytes={start}-`, must already be there). Each holds at most `max_rows`
    rows and `target_bytes` bytes, unless one record or one interaction_ref group alone holds
    more. Reads blocks of READ_BYTES: memory stays bounded whatever the file's size."""
    start = layout.data_start if start is None else start
    _move_to(stream, start)
    group_at, quoted = layout.group_index, layout.format == "csv"
    if group_at is None:
        ends = _record_ends(_blocks(stream), start, quoted)
        yield from _chunks_of_records(ends, start, first_row, first_index, target_bytes, max_rows)
        return
    records = _records(_blocks(stream), start, quoted=quoted, keep=True)
    units = _units(records, start, group_at)
    index, row = first_index, first_row
    c_start = c_end = start
    c_rows = 0
    c_continues = False
    for u_start, u_end, u_rows, u_continues in units:
        if c_rows and (c_rows + u_rows > max_rows or u_end - c_start > target_bytes):
            yield Chunk(index, c_start, c_end, row, c_rows, c_continues)
            index, row, c_rows = index + 1, row + c_rows, 0
        if not c_rows:
            c_start, c_continues = u_start, u_continues
        c_end, c_rows = u_end, c_rows + u_rows
        if c_rows >= max_rows or c_end - c_start >= target_bytes:
            yield Chunk(index, c_start, c_end, row, c_rows, c_continues)
            index, row, c_rows = index + 1, row + c_rows, 0
    if c_rows:
        yield Chunk(index, c_start, c_end, row, c_rows, c_continues)


def parse_chunk(
    data: bytes, layout: Layout, first_row: int, *, continues_group: bool = False
) -> list[Record]:
    """The records of a chunk's bytes, rows numbered from `first_row`. A row that cannot be read
    is a Record with problems, never an exception."""
    rows = _records([data], 0, quoted=layout.format == "csv", keep=True)
    if layout.format == "ndjson":
        return [
            import_records.ndjson_record(raw, first_row + n, layout, status == _TOO_LONG)
            for n, (_, raw, status) in enumerate(rows)
        ]
    reader = import_records.CsvRows(layout)
    numbered = [(first_row + n, raw, _problem_of(status)) for n, (_, raw, status) in enumerate(rows)]
    if layout.group_index is None:
        return [reader.record([row]) for row in numbered]
    return [reader.record(group) for group in _groups(numbered, layout, continues_group, reader)]


def _problem_of(status: str) -> str | None:
    if status == _TOO_LONG:
        return f"The row is longer than {MAX_RECORD_BYTES // (1024 * 1024)} MB."
    if status == _UNCLOSED:
        return "The row has a quote that is never closed."
    return None


def _groups(numbered, layout: Layout, continues_group: bool, reader) -> Iterator[list]:
    """Consecutive rows with the same interaction_ref; rows of a group beyond MAX_GROUP_ROWS,
    and those that continue a group the chunk before cut, fail (one group each)."""
    group: list = []
    group_ref: bytes | None = None
    for row in numbered:
        ref = _ref(row[1], layout.group_index) if row[2] is None else None
        if group and ref is not None and ref == group_ref:
            group.append(row)
            continue
        if group:
            yield from _cut(group, continues_group and group[0][0] == numbered[0][0])
        group, group_ref = [row], ref
    if group:
        yield from _cut(group, continues_group and group[0][0] == numbered[0][0])


def _cut(group: list, continued: bool) -> Iterator[list]:
    if continued:
        yield from ([_overflow(row)] for row in group)
        return
    yield group[:MAX_GROUP_ROWS]
    yield from ([_overflow(row)] for row in group[MAX_GROUP_ROWS:])


def _overflow(row):
    number, raw, _ = row
    return (number, raw, f"An interaction_ref groups at most {MAX_GROUP_ROWS} rows; this row is beyond.")


def _ref(raw: bytes, at: int) -> bytes | None:
    """A row's interaction_ref as bytes (planning never decodes), None if it has none or its
    cells cannot be read. A row whose other cells are wrong still groups: its group fails."""
    line = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
    cells = line.split(b",", at + 1)
    if len(cells) <= at:
        return None
    quote = line.find(b'"')
    if quote < 0 or quote > sum(map(len, cells[: at + 1])) + at:
        return cells[at] or None
    text = split_cells(line.decode("utf-8", "surrogateescape"))
    if isinstance(text, str) or len(text) <= at:
        return None
    return text[at].encode("utf-8", "surrogateescape") or None


def _chunks_of_records(
    blocks_of_ends: Iterator[list[int]], start: int, row: int, index: int, target: int, max_rows: int
) -> Iterator[Chunk]:
    """The chunks of records that are each a unit (no interaction_ref), found by bisection on
    their end offsets: the same chunks as plan_chunks' loop over units would make."""
    c_start = c_end = start
    c_rows = 0
    for ends in blocks_of_ends:
        k, n = 0, len(ends)
        while k < n:
            fits = bisect_right(ends, c_start + target, lo=k) - 1
            j = min(k + max_rows - c_rows - 1, fits)
            if j < k and c_rows:
                yield Chunk(index, c_start, c_end, row, c_rows)
                index, row, c_start, c_rows = index + 1, row + c_rows, c_end, 0
                continue
            j = max(j, k)
            c_rows, c_end, k = c_rows + j - k + 1, ends[j], j + 1
            if c_rows >= max_rows or c_end - c_start >= target or (k < n and ends[k] - c_start > target):
                yield Chunk(index, c_start, c_end, row, c_rows)
                index, row, c_start, c_rows = index + 1, row + c_rows, c_end, 0
    if c_rows:
        yield Chunk(index, c_start, c_end, row, c_rows)


def _record_ends(blocks: Iterable[bytes], offset: int, quoted: bool) -> Iterator[list[int]]:
    """The end offsets of the records of each block, as _records finds them, faster: the lines
    of a block without quotes are its records."""
    rec_start, in_quotes = offset, False
    for block in blocks:
        lines = block.split(b"\n")
        tail = lines.pop()
        if not quoted or (not in_quotes and b'"' not in block):
            ends = list(map(add, accumulate(map(len, lines)), range(offset + 1, offset + 1 + len(lines))))
        else:
            ends, pos = [], offset
            for line in lines:
                pos += len(line) + 1
                if line.count(b'"') & 1:
                    in_quotes = not in_quotes
                if in_quotes and pos - rec_start <= MAX_RECORD_BYTES:
                    continue
                in_quotes = False
                ends.append(pos)
                rec_start = pos
            in_quotes ^= bool(tail.count(b'"') & 1)
        if ends:
            rec_start = ends[-1]
        offset += len(block)
        yield ends
    if offset > rec_start:
        yield [offset]


def _units(records, start: int, at: int) -> Iterator[tuple[int, int, int, bool]]:
    """(start, end, rows, continues a cut group) of each interaction_ref group (a row without
    one is a group of its own): the same groups as parse_chunk's."""
    u_start, u_end, u_rows, u_ref, u_continues = start, start, 0, None, False
    for end, raw, status in records:
        ref = _ref(raw, at) if status == _OK and raw is not None else None
        if u_rows and ref is not None and ref == u_ref and u_rows < MAX_GROUP_ROWS:
            u_end, u_rows = end, u_rows + 1
            continue
        continues = u_rows == MAX_GROUP_ROWS and ref is not None and ref == u_ref
        if u_rows:
            yield u_start, u_end, u_rows, u_continues
        u_start, u_end, u_rows, u_ref, u_continues = u_end, end, 1, ref, continues
    if u_rows:
        yield u_start, u_end, u_rows, u_continues


def _records(
    blocks: Iterable[bytes], offset: int, *, quoted: bool, keep: bool
) -> Iterator[tuple[int, bytes | None, str]]:
    """(end offset, bytes, status) of each record: the bytes (with the line break) when `keep`,
    cut at MAX_RECORD_BYTES. Per line: a line with an odd number of quotes opens or closes a
    quoted field, so a line feed ends a record only with no field left open."""
    parts: list[bytes] = []
    length = 0
    in_quotes = False
    for block in blocks:
        pos, size = 0, len(block)
        while pos < size:
            nl = block.find(b"\n", pos)
            stop = size if nl < 0 else nl + 1
            if quoted and block.count(b'"', pos, stop) & 1:
                in_quotes = not in_quotes
            if keep and length < MAX_RECORD_BYTES:
                parts.append(block[pos:stop])
            length += stop - pos
            offset += stop - pos
            pos = stop
            if nl < 0 or (in_quotes and length <= MAX_RECORD_BYTES):
                continue
            status = _TOO_LONG if length > MAX_RECORD_BYTES else _OK
            yield offset, _joined(parts, keep), status
            parts, length, in_quotes = [], 0, False
    if length:
        status = _TOO_LONG if length > MAX_RECORD_BYTES else _UNCLOSED if in_quotes else _OK
        yield offset, _joined(parts, keep), status


def _joined(parts: list[bytes], keep: bool) -> bytes | None:
    if not keep:
        return None
    raw = parts[0] if len(parts) == 1 else b"".join(parts)
    return raw[:MAX_RECORD_BYTES]


def _blocks(stream: BinaryIO) -> Iterator[bytes]:
    while block := stream.read(READ_BYTES):
        yield block


def _move_to(stream: BinaryIO, start: int) -> None:
    # A stream that cannot seek (an S3 body of a ranged GetObject) is where its caller put it.
    seekable = getattr(stream, "seekable", None)
    if seekable is not None and seekable():
        stream.seek(start)
