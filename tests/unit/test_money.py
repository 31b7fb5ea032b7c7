from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.money import (
    MINOR_UNITS,
    MoneyError,
    format_money,
    is_currency,
    line_total,
    minor_units,
    parse_price,
    quantize,
    sum_amounts,
    to_decimal,
)

currencies = st.sampled_from(sorted(MINOR_UNITS))


def fraction_digits(text: str) -> int:
    return len(text.partition(".")[2])


# --- the currency table ---------------------------------------------------------------


def test_every_currency_code_is_three_upper_case_letters_with_0_to_4_minor_units():
    for code, places in MINOR_UNITS.items():
        assert re.fullmatch(r"[A-Z]{3}", code)
        assert places in (0, 2, 3, 4)


def test_the_table_holds_every_active_iso_4217_code_with_a_minor_unit():
    assert len(MINOR_UNITS) == 165
    for code in ("EUR", "SEK", "NOK", "DKK", "USD", "GBP", "PHP", "CHF", "XCG", "ZWG"):
        assert MINOR_UNITS[code] == 2


def test_exactly_these_currencies_have_no_minor_unit():
    zero = {code for code, places in MINOR_UNITS.items() if places == 0}
    assert " ".join(sorted(zero)) == "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"


def test_exactly_these_currencies_have_three_or_four_minor_units():
    three = {code for code, places in MINOR_UNITS.items() if places == 3}
    four = {code for code, places in MINOR_UNITS.items() if places == 4}
    assert three == {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}
    assert four == {"CLF", "UYW"}


@pytest.mark.parametrize("code", ["BOV", "CHE", "CHW", "CLF", "COU", "MXV", "USN", "UYI", "UYW", "XAD"])
def test_funds_codes_with_a_minor_unit_are_currencies(code):
    assert is_currency(code)


@pytest.mark.parametrize(
    "code",
    ["XAU", "XAG", "XPT", "XPD", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XUA", "XTS", "XXX"],
)
def test_codes_whose_minor_unit_is_not_applicable_are_not_currencies(code):
    assert not is_currency(code)


@pytest.mark.parametrize("code", ["ANG", "BGN", "CUC", "HRK", "SLL", "ZWL", "VEF"])
def test_withdrawn_codes_are_not_currencies(code):
    assert not is_currency(code)


@pytest.mark.parametrize("code", ["eur", "Eur", " EUR", "EURO", "", None, 978])
def test_only_an_exact_upper_case_code_is_a_currency(code):
    assert not is_currency(code)


def test_minor_units_are_looked_up_by_code():
    assert minor_units("EUR") == 2
    assert minor_units("JPY") == 0
    assert minor_units("KWD") == 3
    assert minor_units("CLF") == 4


def test_minor_units_of_an_unknown_code_is_a_money_error():
    with pytest.raises(MoneyError, match="is not an ISO 4217 currency code"):
        minor_units("XAU")


# --- to_decimal -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.10"), Decimal("1.10")),
        (Decimal("1E+2"), Decimal("100")),
        (7, Decimal("7")),
        (-3, Decimal("-3")),
        ("1.10", Decimal("1.10")),
        ("  +0.5\n", Decimal("0.5")),
        ("-12", Decimal("-12")),
        ("007", Decimal("7")),
    ],
)
def test_decimals_ints_and_plain_decimal_strings_are_accepted(value, expected):
    result = to_decimal(value)
    assert isinstance(result, Decimal)
    assert result == expected


def test_a_string_keeps_its_decimal_places():
    assert str(to_decimal("1.10")) == "1.10"


@pytest.mark.parametrize("value", [1.1, 0.1, 1.0, 0.0, float("nan"), float("inf")])
def test_a_binary_float_is_rejected(value):
    with pytest.raises(MoneyError, match="not a binary float"):
        to_decimal(value)


@pytest.mark.parametrize("value", [True, False, None, [1], {"amount": 1}, b"1"])
def test_booleans_none_and_other_types_are_not_numbers(value):
    with pytest.raises(MoneyError, match="must be a decimal number"):
        to_decimal(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "NaN",
        "Infinity",
        "-inf",
        "1e2",
        "1E-2",
        "1,000",
        "1 000",
        "1_000",
        "1.",
        ".5",
        "1.2.3",
        "--1",
        "0x10",
        "٣",
        "１",
        "1.10 EUR",
    ],
)
def test_anything_but_a_plain_decimal_string_is_rejected(value):
    with pytest.raises(MoneyError, match="must be a decimal number"):
        to_decimal(value)


@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_a_nan_or_infinite_decimal_is_rejected(value):
    with pytest.raises(MoneyError, match="finite"):
        to_decimal(Decimal(value))


def test_a_json_number_parsed_as_decimal_keeps_its_exact_value():
    body = json.loads('{"price": 1.10, "big": 1e2}', parse_float=Decimal)
    assert parse_price(body["price"], "EUR") == Decimal("1.10")
    assert format_money(parse_price(body["big"], "EUR"), "EUR") == "100.00"


# --- parse_price ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("1.10", "EUR", "1.10"),
        ("1.1", "EUR", "1.10"),
        ("1.100", "EUR", "1.10"),
        ("0", "EUR", "0.00"),
        ("100", "JPY", "100"),
        ("100.0", "JPY", "100"),
        ("1.5", "BHD", "1.500"),
        ("0.001", "KWD", "0.001"),
        ("1.0001", "CLF", "1.0001"),
        (Decimal("1E+2"), "EUR", "100.00"),
        (25, "SEK", "25.00"),
    ],
)
def test_a_price_within_the_currencys_minor_units_is_accepted(value, currency, expected):
    price = parse_price(value, currency)
    assert str(price) == expected


@pytest.mark.parametrize(
    ("value", "currency", "message"),
    [
        ("1.005", "EUR", r"has more decimal places than EUR allows \(2\)"),
        ("100.5", "JPY", r"has more decimal places than JPY allows \(0\)"),
        ("1.0005", "BHD", r"has more decimal places than BHD allows \(3\)"),
        ("0.00001", "CLF", r"has more decimal places than CLF allows \(4\)"),
    ],
)
def test_a_price_with_more_decimal_places_than_the_currency_allows_is_rejected(value, currency, message):
    with pytest.raises(MoneyError, match=message):
        parse_price(value, currency)


def test_significant_digits_beyond_the_default_decimal_precision_are_not_lost():
    with pytest.raises(MoneyError, match="more decimal places"):
        parse_price(Decimal("1.0000000000000000000000000000001"), "EUR")


def test_a_negative_price_is_rejected():
    with pytest.raises(MoneyError, match="must not be negative"):
        parse_price("-0.01", "EUR")


def test_a_negative_zero_price_is_zero_without_a_sign():
    assert str(parse_price("-0.00", "EUR")) == "0.00"


def test_a_binary_float_price_is_rejected():
    with pytest.raises(MoneyError, match="not a binary float"):
        parse_price(1.1, "EUR")


def test_a_price_in_an_unknown_currency_is_rejected():
    with pytest.raises(MoneyError, match="is not an ISO 4217 currency code"):
        parse_price("1.00", "eur")


def test_a_unit_price_above_the_bound_is_rejected_and_the_bound_itself_accepted():
    assert parse_price("1000000000", "EUR") == Decimal("1000000000.00")
    with pytest.raises(MoneyError, match="must be at most 1000000000"):
        parse_price("1000000000.01", "EUR")
    assert parse_price("1000000000.01", "EUR", at_most=None) == Decimal("1000000000.01")


def test_a_price_too_large_to_store_exactly_is_rejected():
    with pytest.raises(MoneyError, match="is too large"):
        parse_price("1" + "0" * 40, "EUR", at_most=None)


# --- quantize and format_money --------------------------------------------------------


def test_quantize_pads_to_the_minor_units_exactly():
    assert str(quantize(Decimal("3.3"), "EUR")) == "3.30"
    assert str(quantize(Decimal("2"), "KWD")) == "2.000"
    assert str(quantize(Decimal("7.000"), "JPY")) == "7"


def test_quantize_never_rounds():
    with pytest.raises(MoneyError, match="more decimal places than JPY allows"):
        quantize(Decimal("1.5"), "JPY")
    with pytest.raises(MoneyError, match="more decimal places than EUR allows"):
        quantize(Decimal("0.125"), "EUR")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("3.3"), "EUR", "3.30"),
        (Decimal("1E+2"), "EUR", "100.00"),
        (Decimal("5"), "JPY", "5"),
        (Decimal("5.00"), "JPY", "5"),
        (Decimal("1E+6"), "JPY", "1000000"),
        (Decimal("1.5"), "BHD", "1.500"),
        (Decimal("1E-2"), "EUR", "0.01"),
        (Decimal("0"), "CLF", "0.0000"),
        (Decimal("-3.3"), "EUR", "-3.30"),
        (Decimal("-0"), "EUR", "0.00"),
        (Decimal("-0.00"), "SEK", "0.00"),
        (12, "PHP", "12.00"),
    ],
)
def test_format_money_writes_exactly_the_minor_unit_digits(amount, currency, expected):
    assert format_money(amount, currency) == expected


def test_format_money_refuses_to_round():
    with pytest.raises(MoneyError, match="more decimal places than EUR allows"):
        format_money(Decimal("1.005"), "EUR")


def test_format_money_refuses_a_float():
    with pytest.raises(MoneyError, match="not a binary float"):
        format_money(3.3, "EUR")


# --- arithmetic -----------------------------------------------------------------------


def test_line_total_is_exact():
    assert line_total(3, Decimal("1.10")) == Decimal("3.30")
    assert str(line_total(3, Decimal("1.10"))) == "3.30"
    assert line_total(0, Decimal("9.99")) == 0


def test_a_refund_line_may_have_a_negative_quantity():
    assert format_money(line_total(-2, Decimal("1.10")), "EUR") == "-2.20"


@pytest.mark.parametrize("quantity", [True, 1.0, "2", Decimal("2"), None])
def test_a_quantity_must_be_a_whole_number(quantity):
    with pytest.raises(MoneyError, match="must be a whole number"):
        line_total(quantity, Decimal("1.00"))


def test_line_total_refuses_a_float_price():
    with pytest.raises(MoneyError, match="not a binary float"):
        line_total(2, 1.1)


def test_the_sum_of_1_10_and_2_20_is_exactly_3_30():
    total = sum_amounts([Decimal("1.10"), Decimal("2.20")])
    assert total == Decimal("3.30")
    assert format_money(total, "EUR") == "3.30"


def test_the_sum_of_nothing_is_zero():
    assert sum_amounts([]) == 0
    assert format_money(sum_amounts([]), "EUR") == "0.00"


def test_net_spend_can_be_negative():
    assert format_money(sum_amounts([Decimal("1.10"), Decimal("-4.40")]), "EUR") == "-3.30"


def test_sum_amounts_accepts_any_iterable():
    assert sum_amounts(Decimal(n) for n in range(5)) == 10


def test_sum_amounts_refuses_a_float():
    with pytest.raises(MoneyError, match="not a binary float"):
        sum_amounts([Decimal("1.10"), 2.2])


def test_arithmetic_that_cannot_be_exact_is_a_money_error_not_a_rounded_result():
    with pytest.raises(MoneyError, match="too large to calculate exactly"):
        sum_amounts([Decimal("1E+40"), Decimal("0.01")])
    with pytest.raises(MoneyError, match="too large to calculate exactly"):
        line_total(10**40 + 1, Decimal("1.01"))


# --- properties -----------------------------------------------------------------------


@given(currency=currencies, units=st.integers(min_value=0, max_value=10**18), data=st.data())
def test_any_price_within_the_minor_units_round_trips_through_format_money(currency, units, data):
    places = MINOR_UNITS[currency]
    written_places = data.draw(st.integers(min_value=0, max_value=places))
    amount = Decimal(units).scaleb(-written_places)

    formatted = format_money(parse_price(str(amount), currency, at_most=None), currency)

    assert Decimal(formatted) == amount
    assert fraction_digits(formatted) == places
    assert re.fullmatch(r"[0-9]+(\.[0-9]+)?", formatted)


@given(currency=currencies, units=st.integers(min_value=0, max_value=10**18))
def test_a_decimal_price_parses_like_its_string(currency, units):
    amount = Decimal(units).scaleb(-MINOR_UNITS[currency])
    assert parse_price(amount, currency, at_most=None) == parse_price(str(amount), currency, at_most=None)


@given(currency=currencies, units=st.integers(min_value=0, max_value=10**18))
def test_a_price_with_one_significant_decimal_place_too_many_is_rejected(currency, units):
    places = MINOR_UNITS[currency]
    amount = Decimal(units * 10 + 1).scaleb(-(places + 1))
    with pytest.raises(MoneyError, match="more decimal places"):
        parse_price(str(amount), currency, at_most=None)


@given(
    currency=currencies,
    lines=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=1000),
            st.integers(min_value=0, max_value=10**12),
        ),
        max_size=20,
    ),
)
def test_the_formatted_sum_of_line_totals_equals_the_exact_sum_in_minor_units(currency, lines):
    places = MINOR_UNITS[currency]
    totals = [
        line_total(quantity, parse_price(str(Decimal(units).scaleb(-places)), currency, at_most=None))
        for quantity, units in lines
    ]

    expected_units = sum(quantity * units for quantity, units in lines)
    whole, fraction = divmod(expected_units, 10**places)
    expected = f"{whole}.{fraction:0{places}d}" if places else str(whole)
    assert format_money(sum_amounts(totals), currency) == expected


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_no_float_is_ever_accepted_as_money(value):
    with pytest.raises(MoneyError, match="not a binary float"):
        to_decimal(value)


@given(
    currency=currencies,
    units=st.integers(min_value=-(10**18), max_value=10**18),
    exponent=st.integers(min_value=0, max_value=12),
)
def test_format_money_never_writes_exponent_notation(currency, units, exponent):
    places = MINOR_UNITS[currency]
    # The same kind of value a DynamoDB read or a JSON `1e2` produces: any exponent.
    amount = Decimal(units).scaleb(exponent - places)

    formatted = format_money(amount, currency)

    assert re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", formatted)
    assert fraction_digits(formatted) == places
    assert Decimal(formatted) == amount


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_every_int_converts_exactly(value):
    assert to_decimal(value) == value


def test_check_currency_returns_a_known_code_and_refuses_others():
    from chalicelib.domain.money import check_currency

    assert check_currency("SEK") == "SEK"
    for code in ("sek", "XAU", "BGN", 978):
        with pytest.raises(MoneyError, match="is not an ISO 4217 currency code"):
            check_currency(code)


def test_price_problems_names_each_price_that_does_not_fit_its_currency():
    from chalicelib.domain.money import price_problems

    prices = {"a": "1.10", "b": "1.005", "c": "-1", "d": Decimal("1000000001")}
    assert price_problems("EUR", prices) == [
        ("b", "has more decimal places than EUR allows (2)"),
        ("c", "must not be negative"),
        ("d", "must be at most 1000000000"),
    ]
    assert price_problems("JPY", {"price": "5"}) == []
