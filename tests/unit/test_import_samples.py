"""The sample import files the README points to (docs/samples/<language>/) are valid as they
are: every row reads into a body that the API's own models accept."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chalicelib.api.import_schemas import RowValidators
from chalicelib.domain.import_formats import parse_chunk, plan_chunks, read_layout

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "docs" / "samples").glob("*/*"))


def test_there_is_a_sample_of_each_kind_in_every_language_of_the_seed_articles():
    kinds = {"customers.csv", "customers.ndjson", "interactions.csv", "interaction-lines.csv"}
    by_language = {}
    for path in SAMPLES:
        by_language.setdefault(path.parent.name, set()).add(path.name)
    assert by_language == {language: kinds for language in ("en", "fi", "sl", "sv", "tl")}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_row_of_a_sample_is_a_valid_request_body(path):
    data = path.read_bytes()
    kind = "customers" if path.name.startswith("customers") else "interactions"
    layout = read_layout(data, kind, "ndjson" if path.suffix == ".ndjson" else "csv", "email")
    validators, rows = RowValidators(), 0
    for chunk in plan_chunks(io.BytesIO(data), layout):
        part = data[chunk.start : chunk.end]
        for record in parse_chunk(part, layout, chunk.first_row, continues_group=chunk.continues_group):
            assert record.body is not None and not record.problems, record
            if kind == "customers":
                validators.customer_create(dict(record.body))
            else:
                assert record.customer_ref
                validators.interaction(dict(record.body), datetime.now(UTC))
            rows += len(record.rows)
    assert rows >= 2
