"""The patterns the OpenAPI document gives for request fields take everything the server
accepts: a client that validates against the document must never refuse a value the API takes.
JSON Schema patterns are unanchored searches, as `re.search`."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chalicelib.api.customer_schemas import E164_PATTERN, PHONE_INPUT_PATTERN
from chalicelib.api.schemas import DECIMAL_INPUT_PATTERN
from chalicelib.domain import money
from chalicelib.domain.contact import ContactError, normalize_phone

PHONE_PARTS = st.sampled_from(
    ["+", "0", "1", "4", "6", "7", "9", " ", "-", ".", "(", ")", "(0)", "( 0 )", "\t", "x"]
)


PHONES = st.tuples(st.sampled_from(["+", " +", "\t+ ", ""]), st.lists(PHONE_PARTS, max_size=24)).map(
    lambda parts: parts[0] + "".join(parts[1])
)


@settings(max_examples=200, deadline=None)
@given(PHONES)
@example("+46701234567")
@example("+46 70-123 45 67")
@example("+44 (0)20 7946 0958")
@example("(0)+46701234567")
@example(" +(0)46.70.123.45.67 ")
def test_every_phone_number_the_server_takes_matches_the_documented_pattern(text):
    try:
        compact = normalize_phone(text)
    except ContactError:
        return
    assert re.search(PHONE_INPUT_PATTERN, text), text
    assert re.search(E164_PATTERN, compact), compact  # what responses carry


@pytest.mark.parametrize("text", ["0701234567", "+0701234567", "46701234567", "+46 70 x", "+", "+ ( ) -"])
def test_numbers_without_a_country_code_match_neither(text):
    with pytest.raises(ContactError):
        normalize_phone(text)
    assert not re.search(PHONE_INPUT_PATTERN, text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789.+- \t١", max_size=12))
@example(" 1.10 ")
@example("+0.5")
@example("-0")
@example("-0.00")
@example("-1")
def test_every_decimal_string_the_server_takes_matches_the_documented_pattern(text):
    # A price is taken if it fits some currency: CLF has the most minor-unit digits (4).
    try:
        money.parse_price(text, "CLF")
    except money.MoneyError:
        return
    assert re.search(DECIMAL_INPUT_PATTERN, text), text


@pytest.mark.parametrize("text", ["-1", "-0.01", " -5 "])
def test_a_negative_price_matches_neither_the_server_nor_the_pattern(text):
    with pytest.raises(money.MoneyError):
        money.parse_price(text, "EUR")
    assert not re.search(DECIMAL_INPUT_PATTERN, text)


@pytest.mark.parametrize(
    "text",
    ["+1" + "(0)" * 3000 + "x", "+" + "( " * 3000, "+1" + "0" * 10000 + "x", "+1" + "( 0 )" * 2000 + "x"],
)
def test_the_phone_pattern_fails_fast_on_long_bad_input(text):
    # A pattern that backtracks exponentially would hang every client validating with it.
    started = time.perf_counter()
    assert not re.search(PHONE_INPUT_PATTERN, text)
    assert time.perf_counter() - started < 0.1
