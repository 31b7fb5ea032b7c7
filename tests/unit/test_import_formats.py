"""Import files read in chunks: the header's layout, chunk boundaries on whole records, and rows
turned into the API's request bodies."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from chalicelib.domain.import_formats import (
    BOM,
    HEAD_BYTES,
    MAX_HEAD_BYTES,
    Chunk,
    FieldProblem,
    HeaderError,
    HeaderTooLong,
    Layout,
    Record,
    parse_chunk,
    plan_chunks,
    read_layout,
)


def layout_of(data: bytes, kind="customers", fmt="csv", match_on="email") -> Layout:
    return read_layout(data[:HEAD_BYTES], kind, fmt, match_on)


def chunks_of(data: bytes, layout: Layout, **options) -> list[Chunk]:
    return list(plan_chunks(io.BytesIO(data), layout, **options))


def records_of(data: bytes, layout: Layout, **options) -> list[Record]:
    records = []
    for chunk in chunks_of(data, layout, **options):
        records += parse_chunk(
            data[chunk.start : chunk.end], layout, chunk.first_row, continues_group=chunk.continues_group
        )
    return records


def read(text: str | bytes, kind="customers", fmt="csv", match_on="email", **options) -> list[Record]:
    data = text.encode() if isinstance(text, str) else text
    return records_of(data, layout_of(data, kind, fmt, match_on), **options)


def bodies(records: list[Record]) -> list[dict | None]:
    return [record.body for record in records]


def test_a_csv_of_customers_gives_the_api_bodies_of_its_rows_numbered_from_one():
    records = read("name,email\nJyrki Mäkelä,jyrki@example.fi\nÅsa Öberg,asa@example.se\n")

    assert [(r.rows, r.body, r.problems) for r in records] == [
        ((1,), {"name": "Jyrki Mäkelä", "email": "jyrki@example.fi"}, ()),
        ((2,), {"name": "Åsa Öberg", "email": "asa@example.se"}, ()),
    ]


def test_quoted_commas_newlines_and_doubled_quotes_stay_inside_their_field():
    text = (
        'name,preferred_name,attributes.note\r\n"Kovačič, Saša","Saša ""Sash""","line one\r\nline two"\r\n'
        '"Dela Cruz, Maria",Maria,"a\nb"\n'
    )

    assert bodies(read(text, target_bytes=1)) == [
        {
            "name": "Kovačič, Saša",
            "preferred_name": 'Saša "Sash"',
            "attributes": {"note": "line one\r\nline two"},
        },
        {"name": "Dela Cruz, Maria", "preferred_name": "Maria", "attributes": {"note": "a\nb"}},
    ]


def test_a_bom_is_skipped_and_a_final_row_without_a_newline_is_a_row():
    data = BOM + "name\nÅsa Öberg\nJyrki Mäkelä".encode()

    layout = layout_of(data)

    assert layout.columns == ("name",)
    assert layout.data_start == len(BOM) + len(b"name\n")
    assert bodies(records_of(data, layout)) == [{"name": "Åsa Öberg"}, {"name": "Jyrki Mäkelä"}]


def test_a_header_only_file_has_no_chunks():
    assert chunks_of(b"name,email\n", layout_of(b"name,email\n")) == []
    assert chunks_of(b"name,email", layout_of(b"name,email")) == []


@pytest.mark.parametrize("data", [b"", BOM, b"\n", b"\r\n"])
def test_an_empty_csv_file_fails_the_import(data):
    with pytest.raises(HeaderError, match="empty"):
        layout_of(data)


def test_an_unknown_column_fails_the_import_naming_it_and_the_allowed_ones():
    with pytest.raises(HeaderError) as raised:
        layout_of(b"name,emial\nx,y\n")

    assert "'emial'" in raised.value.message
    assert "preferred_name" in raised.value.message


def test_a_header_that_is_not_utf8_fails_the_import():
    with pytest.raises(HeaderError, match="not UTF-8"):
        layout_of("name,Färg\n".encode("latin-1"))


def test_tags_attributes_booleans_and_empty_cells():
    text = (
        "name,tags,attributes.city,attributes.Shoe size,marketing_consent\n"
        "A, vip ;;  nordic ;,Oulu,,TRUE\nB,,,42,false\nC,,,,ja\n"
    )

    assert bodies(read(text)) == [
        {"name": "A", "tags": ["vip", "nordic"], "attributes": {"city": "Oulu"}, "marketing_consent": True},
        {"name": "B", "attributes": {"Shoe size": "42"}, "marketing_consent": False},
        {"name": "C", "marketing_consent": "ja"},
    ]


def test_a_row_that_is_not_utf8_fails_that_row_only():
    data = b"name\nAsa\n" + "Åsa Öberg\n".encode("latin-1") + b"Maria\n"

    records = read(data)

    assert bodies(records) == [{"name": "Asa"}, None, {"name": "Maria"}]
    assert records[1].problems[0].field == "row"
    assert "UTF-8" in records[1].problems[0].message


def test_ndjson_lines_that_are_not_json_or_not_objects_fail_at_their_row_numbers():
    data = b'{"name": "A"}\nnot json\n{"name": "B", "tags": ["x"]}\n[1, 2]\n\n{"name": 1.5}\n{"name"\n'

    records = read(data, fmt="ndjson")

    assert [r.rows[0] for r in records] == [1, 2, 3, 4, 5, 6, 7]
    assert [r.rows[0] for r in records if r.problems] == [2, 4, 7]
    assert all(p.field == "row" for r in records for p in r.problems)
    assert records[4].blank and records[4].body is None
    assert records[5].body == {"name": Decimal("1.5")}


def test_an_interaction_row_names_its_customer_out_of_the_body():
    csv_records = read(
        "customer_email,type,channel,severity,subject\nasa@example.se,complaint,email,high,Trasig\n",
        kind="interactions",
    )
    ndjson_records = read(
        b'{"customer_id": "cus_1", "type": "visit", "channel": "store"}\n',
        kind="interactions",
        fmt="ndjson",
        match_on="id",
    )

    assert (csv_records[0].customer_ref, csv_records[0].body) == (
        "asa@example.se",
        {"type": "complaint", "channel": "email", "severity": "high", "subject": "Trasig"},
    )
    assert (ndjson_records[0].customer_ref, ndjson_records[0].body) == (
        "cus_1",
        {"type": "visit", "channel": "store"},
    )


def test_items_as_json_in_one_column():
    text = (
        "customer_email,type,channel,currency,items\n"
        'a@x.se,purchase,web,SEK,"[{""sku"": ""S1"", ""name"": ""Bok"", '
        '""quantity"": 2, ""unit_price"": 10.50}]"\n'
    )

    (record,) = read(text, kind="interactions")

    assert record.body["items"] == [
        {"sku": "S1", "name": "Bok", "quantity": 2, "unit_price": Decimal("10.50")}
    ]


def test_rows_sharing_an_interaction_ref_are_one_interaction_with_their_items():
    text = (
        "customer_email,type,channel,currency,interaction_ref,items.sku,items.name,items.quantity,items.unit_price\n"
        "a@x.se,purchase,web,SEK,o1,S1,Bok,2,10.50\n"
        ",,,,o1,S2,Penna,1,5\n"
        "b@x.se,complaint,email,,,,,,\n"
    )

    records = read(text, kind="interactions", target_bytes=1)

    assert [r.rows for r in records] == [(1, 2), (3,)]
    assert records[0].customer_ref == "a@x.se"
    assert records[0].body == {
        "type": "purchase",
        "channel": "web",
        "currency": "SEK",
        "items": [
            {"sku": "S1", "name": "Bok", "quantity": 2, "unit_price": "10.50"},
            {"sku": "S2", "name": "Penna", "quantity": 1, "unit_price": "5"},
        ],
    }


def test_a_layout_survives_json():
    layout = layout_of(BOM + b"name,email\n")

    assert Layout.from_dict(layout.to_dict()) == layout
    assert FieldProblem("row", "x") == FieldProblem("row", "x")


def test_source_is_cut_to_1_kb_of_utf8_at_a_character_boundary():
    name = "ä" * 700  # 1,400 bytes
    (record,) = read(f"name\n{name}\n")

    assert record.source == "ä" * 512
    assert len(record.source.encode()) == 1024
    (odd,) = read(f"name\nx{name}\n")
    assert odd.source == "x" + "ä" * 511


def test_the_interaction_columns_are_the_fields_of_the_interaction_models():
    from chalicelib.api import interaction_schemas as schemas
    from chalicelib.domain.import_records import INTERACTION_FIELDS, ITEM_FIELDS

    fields = set().union(
        *(
            getattr(schemas, model).model_fields
            for model in ("PurchaseIn", "ReturnIn", "ComplaintIn", "OtherInteractionIn", "MessageIn")
        )
    )
    assert fields - {"items"} == set(INTERACTION_FIELDS)
    assert tuple(schemas.LineItemIn.model_fields) == ITEM_FIELDS


def test_the_customer_columns_are_the_fields_of_the_customer_model():
    from chalicelib.api.customer_schemas import CustomerCreate
    from chalicelib.domain.import_records import CUSTOMER_FIELDS

    assert set(CustomerCreate.model_fields) == {*CUSTOMER_FIELDS, "attributes"}


@pytest.mark.parametrize(
    ("header", "kind", "match_on", "says"),
    [
        ("name,name\n", "customers", "email", "twice"),
        ("name,,email\n", "customers", "email", "Column 2"),
        ("name,email\n", "customers", "id", "no id column"),
        ("type,channel\n", "interactions", "email", "no customer_email column"),
        ("customer_email,type,customer_id\n", "interactions", "email", "'customer_id'"),
        ("customer_id,type,items,items.sku\n", "interactions", "id", "exclude each other"),
        ('name,"email\n', "customers", "email", "never closed"),
    ],
)
def test_a_header_that_cannot_be_used_fails_the_import_saying_why(header, kind, match_on, says):
    with pytest.raises(HeaderError, match=says):
        read_layout(header.encode(), kind, "csv", match_on)


def test_a_header_row_not_ending_within_the_head_asks_for_a_longer_head():
    data = b"name," + b",".join(b"attributes.k%d" % i for i in range(20_000)) + b"\nx\n"

    with pytest.raises(HeaderTooLong, match="64 KB"):
        read_layout(data[:HEAD_BYTES], "customers", "csv", "email")
    assert len(read_layout(data[:MAX_HEAD_BYTES], "customers", "csv", "email").columns) == 20_001


def test_rows_that_cannot_be_read_fail_naming_what_is_wrong():
    text = 'name,email\nA,a@x.se,extra\nB\n"C,c@x.se\n'

    records = read(text)

    assert [r.rows for r in records] == [(1,), (2,), (3,)]
    assert [r.problems[0].message for r in records] == [
        "The row has 3 cells; the header row has 2.",
        "The row has 1 cells; the header row has 2.",
        "The row has a quote that is never closed.",
    ]


def test_a_quote_left_open_ends_its_row_past_1_mb_and_the_rows_after_it_are_read():
    data = b'name,email\n"A,a@x.se\n' + b"filler line\n" * 100_000 + b"B,b@x.se\nC,c@x.se\n"

    records = read(data)

    assert "longer than 1 MB" in records[0].problems[0].message
    assert bodies(records)[-2:] == [{"name": "B", "email": "b@x.se"}, {"name": "C", "email": "c@x.se"}]


def test_a_group_whose_later_rows_disagree_fails_as_one_record():
    text = (
        "customer_email,type,channel,currency,interaction_ref,items.sku,items.quantity\n"
        "a@x.se,purchase,web,SEK,o1,S1,2\n"
        "b@x.se,,,,o1,S2,1\n"
    )

    (record,) = read(text, kind="interactions")

    assert record.rows == (1, 2) and record.body is None
    assert record.problems == (
        FieldProblem("customer_email", "Row 2 differs from row 1 of its interaction_ref group."),
    )


def test_bad_json_in_the_items_column_fails_the_row_naming_items():
    (record,) = read("customer_email,type,items\na@x.se,purchase,[{\n", kind="interactions")

    assert record.problems[0].field == "items"
    assert "not valid JSON" in record.problems[0].message


def test_an_ndjson_customer_reference_that_is_not_a_string_fails_the_row():
    (record,) = read(
        b'{"customer_id": 7, "type": "visit"}\n', kind="interactions", fmt="ndjson", match_on="id"
    )

    assert record.problems == (FieldProblem("customer_id", "must be a string"),)


def test_names_in_finnish_slovenian_tagalog_and_swedish_come_through_unchanged():
    names = ["Jyrki Mäkelä", "Saša Kovačič", "Maria Dela Cruz", "Åsa Öberg", "Ñino Bañez"]
    data = BOM + ("name,preferred_name\n" + "".join(f'"{n}",{n.split()[0]}\r\n' for n in names)).encode()

    assert bodies(read(data, target_bytes=1)) == [{"name": n, "preferred_name": n.split()[0]} for n in names]
