"""Chunk planning of import files: whatever the sizes, chunks end on whole records and whole
interaction_ref groups, resume from any boundary, and read a stream in bounded memory."""

from __future__ import annotations

import csv
import io
import tracemalloc
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain import import_formats
from chalicelib.domain.import_formats import HEAD_BYTES, Chunk, Layout, parse_chunk, plan_chunks, read_layout

GROUPED = "customer_email,type,channel,note,interaction_ref,items.sku,items.quantity\n"

cells = st.text(alphabet=st.sampled_from('ab,"\n\r äÅš'), max_size=6)
refs = st.sampled_from(["", "o1", "o2", '"o1"'])


@st.composite
def csv_files(draw) -> bytes:
    terminator = draw(st.sampled_from(["\n", "\r\n"]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=terminator)
    lines = []
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["row", "row", "row", "blank", "junk"]))
        if kind == "row":
            out.seek(0)
            out.truncate()
            ref = draw(refs)
            writer.writerow([draw(cells), "purchase", draw(cells), draw(cells), "", draw(cells), "1"])
            line = out.getvalue()
            lines.append(line.replace(",,", f",{ref},", 1) if ref else line)
        elif kind == "blank":
            lines.append(terminator)
        else:
            lines.append(draw(cells) + terminator)
    text = GROUPED.replace("\n", terminator) + "".join(lines)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")
    return text.encode()


def whole(data: bytes, layout: Layout):
    return parse_chunk(data[layout.data_start :], layout, 1)


def chunked(data: bytes, layout: Layout, chunks: list[Chunk]):
    records = []
    for c in chunks:
        part = data[c.start : c.end]
        records += parse_chunk(part, layout, c.first_row, continues_group=c.continues_group)
    return records


def assert_contiguous(chunks: list[Chunk], layout: Layout, size: int, rows: int) -> None:
    position, row = layout.data_start, 1
    for i, c in enumerate(chunks):
        assert (c.index, c.start, c.first_row) == (i, position, row)
        assert c.rows > 0 and c.end > c.start
        position, row = c.end, row + c.rows
    assert (position if chunks else size) == size
    assert row - 1 == rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=csv_files(), target=st.integers(1, 200), max_rows=st.integers(1, 6), group=st.integers(1, 4))
def test_chunks_of_any_size_hold_whole_records_and_groups_and_parse_as_the_whole_file(
    data, target, max_rows, group
):
    layout = read_layout(data[:HEAD_BYTES], "interactions", "csv", "email")
    with (
        mock.patch.object(import_formats, "MAX_GROUP_ROWS", group),
        mock.patch.object(import_formats, "MAX_RECORD_BYTES", 40),
        mock.patch.object(import_formats, "READ_BYTES", 7),
    ):
        chunks = list(plan_chunks(io.BytesIO(data), layout, target_bytes=target, max_rows=max_rows))
        expected = whole(data, layout)

        assert chunked(data, layout, chunks) == expected
        numbers = [n for record in expected for n in record.rows]
        assert numbers == list(range(1, len(numbers) + 1))
        assert_contiguous(chunks, layout, len(data), len(numbers))
        for k, last in enumerate(chunks[:-1]):
            resumed = plan_chunks(
                io.BytesIO(data),
                layout,
                start=last.end,
                first_row=last.first_row + last.rows,
                first_index=last.index + 1,
                target_bytes=target,
                max_rows=max_rows,
            )
            # a resumed plan cannot see that a group cut at MAX_GROUP_ROWS goes on
            plain = [(c.index, c.start, c.end, c.first_row, c.rows) for c in resumed]
            assert plain == [(c.index, c.start, c.end, c.first_row, c.rows) for c in chunks[k + 1 :]]


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.sampled_from(['{"name": "Åsa"}', "", "  ", "not json", "[1]", '{"a": "x\\ny"}']), max_size=30
    ),
    target=st.integers(1, 100),
    max_rows=st.integers(1, 5),
    final_newline=st.booleans(),
)
def test_ndjson_chunks_of_any_size_parse_as_the_whole_file(lines, target, max_rows, final_newline):
    data = ("\n".join(lines) + ("\n" if final_newline and lines else "")).encode()
    with mock.patch.object(import_formats, "READ_BYTES", 5):
        layout = read_layout(data[:HEAD_BYTES], "customers", "ndjson", "email")
        chunks = list(plan_chunks(io.BytesIO(data), layout, target_bytes=target, max_rows=max_rows))
        expected = whole(data, layout)

        assert chunked(data, layout, chunks) == expected
        assert [r.rows[0] for r in expected] == list(range(1, len(expected) + 1))
        assert_contiguous(chunks, layout, len(data), len(expected))
        assert all(c.rows <= max_rows for c in chunks)
        assert all(c.end - c.start <= target or c.rows == 1 for c in chunks)


def test_a_group_is_never_split_even_when_larger_than_the_target():
    data = (
        GROUPED + "".join(f"a@x.se,purchase,web,,o1,S{i},1\n" for i in range(30)) + "b@x.se,visit,web,,,,\n"
    ).encode()
    layout = read_layout(data, "interactions", "csv", "email")

    chunks = list(plan_chunks(io.BytesIO(data), layout, target_bytes=10, max_rows=5))

    assert [(c.first_row, c.rows) for c in chunks] == [(1, 30), (31, 1)]


def test_rows_of_a_group_beyond_one_hundred_fail_whichever_chunk_holds_them():
    data = (GROUPED + "".join(f"a@x.se,purchase,web,,o1,S{i},1\n" for i in range(130))).encode()
    layout = read_layout(data, "interactions", "csv", "email")

    for max_rows in (100, 200):
        chunks = list(plan_chunks(io.BytesIO(data), layout, max_rows=max_rows))
        records = chunked(data, layout, chunks)

        assert records[0].rows == tuple(range(1, 101))
        assert len(records[0].body["items"]) == 100
        assert [r.rows for r in records[1:]] == [(n,) for n in range(101, 131)]
        assert all("at most 100" in r.problems[0].message for r in records[1:])


class Generated(io.RawIOBase):
    """A stream of `size` bytes of CSV rows made as they are read, never held whole."""

    def __init__(self, size: int, line: bytes) -> None:
        self.left, self.line, self.phase = size, line, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        reps = n // len(self.line) + 2
        buffer[:n] = (self.line * reps)[self.phase : self.phase + n]
        self.phase = (self.phase + n) % len(self.line)
        self.left -= n
        return n


def test_planning_a_50_mb_stream_keeps_memory_to_a_few_mb():
    # long rows: tracemalloc slows every allocation, and planning allocates per line
    line = b'"M\xc3\xa4kel\xc3\xa4, Jyrki",jyrki@example.fi,"' + b"x" * 150 + b"\n" + b"y" * 150 + b'"\n'
    layout = Layout("customers", "csv", "email", ("name", "email", "attributes.note"), 0)
    size = 50 * 1024 * 1024 // len(line) * len(line)

    tracemalloc.start()
    try:
        chunks = sum(1 for _ in plan_chunks(io.BufferedReader(Generated(size, line)), layout))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert chunks == -(-size // len(line) // 200)
    assert peak < 8 * 1024 * 1024
