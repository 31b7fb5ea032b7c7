"""The one reader of DynamoDB's AttributeValues: stream images become plain values."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chalicelib.store.attribute_values import Unreadable, UnreadableImage, plain_image, size_of


def test_every_type_becomes_a_plain_value():
    image = {
        "s": {"S": "Åsa"},
        "n": {"N": "4.40"},
        "b": {"B": "AAE="},
        "raw": {"B": b"\x00\x01"},
        "yes": {"BOOL": True},
        "none": {"NULL": True},
        "m": {"M": {"inner": {"L": [{"N": "1"}, {"S": "x"}]}}},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "bs": {"BS": ["AAE="]},
    }
    assert plain_image(image) == {
        "s": "Åsa",
        "n": Decimal("4.40"),
        "b": b"\x00\x01",
        "raw": b"\x00\x01",
        "yes": True,
        "none": None,
        "m": {"inner": [Decimal(1), "x"]},
        "ss": {"a", "b"},
        "ns": {Decimal(1), Decimal("2.5")},
        "bs": {b"\x00\x01"},
    }
    assert str(plain_image(image)["n"]) == "4.40"


def test_no_image_is_none_and_an_empty_one_is_empty():
    assert plain_image(None) is None
    assert plain_image({}) == {}


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ({"a": "text"}, "a is not an AttributeValue"),
        ({"a": {}}, "a is not an AttributeValue"),
        ({"a": {"S": "x", "N": "1"}}, "a is not an AttributeValue"),
        ({"a": {"X": "?"}}, "a has the unknown type 'X'"),
        ({"a": {"S": 1}}, "a is not a string"),
        ({"a": {"N": "x"}}, "a is not a number"),
        ({"a": {"N": "NaN"}}, "a is not a number"),
        ({"a": {"N": 1}}, "a is not a number"),
        ({"a": {"B": "not base64!"}}, "a is not base64-encoded binary"),
        ({"a": {"BOOL": "true"}}, "a is not a boolean"),
        ({"a": {"M": []}}, "a is not a map"),
        ({"a": {"L": {}}}, "a is not a list"),
        ({"a": {"SS": ["x", 1]}}, "a.1 is not a string"),
    ],
)
def test_what_is_not_an_attribute_value_is_read_as_unreadable_saying_where_and_why(image, reason):
    assert plain_image(image | {"ok": {"S": "fine"}}) == {"a": Unreadable(reason), "ok": "fine"}


def test_an_unreadable_value_inside_a_map_or_list_spoils_only_itself():
    image = {"a": {"M": {"b": {"L": [{"S": "x"}, {"N": "?"}]}, "c": {"N": "1"}}}}
    assert plain_image(image) == {"a": {"b": ["x", Unreadable("a.b.1 is not a number")], "c": Decimal(1)}}


def test_an_image_that_is_not_a_map_at_all_is_refused():
    with pytest.raises(UnreadableImage, match="not a map of attributes"):
        plain_image([{"S": "x"}])


def test_sizes_are_counted_as_dynamodb_counts_them_numbers_at_their_widest():
    assert size_of({"S": "Å"}) == 2
    assert size_of({"N": "1"}) == 21
    assert size_of({"BOOL": True}) == 1
    assert size_of({"M": {"ab": {"S": "x"}}}) == 3 + 2 + 1 + 1
    assert size_of({"L": [{"S": "x"}, {"N": "1"}]}) == 3 + (1 + 1) + (21 + 1)
