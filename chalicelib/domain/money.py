"""Money as exact decimals in ISO 4217 currencies.

Amounts are `Decimal`s, never floats: the API parses JSON with `parse_float=Decimal`, so
a JSON number 1.10 arrives as Decimal('1.10'), and every operation here is exact or fails
with a `MoneyError` whose message can be shown to the API user.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import (
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

# ISO 4217 List One as published by SIX on 2026-01-01, funds codes included: every code
# whose minor unit is a number. Codes whose minor unit is "N.A." (XAU, XAG, XPT, XPD,
# XBA-XBD, XDR, XSU, XUA, XTS, XXX) are not money a customer pays in. Withdrawn codes are
# absent: ANG (replaced by XCG, 2025), BGN (Bulgaria adopted the euro on 2026-01-01), CUC,
# HRK, SLL, ZWL.
MINOR_UNITS: dict[str, int] = {
    "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2,
    "AZN": 2, "BAM": 2, "BBD": 2, "BDT": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2,
    "BOB": 2, "BOV": 2, "BRL": 2, "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2,
    "CAD": 2, "CDF": 2, "CHE": 2, "CHF": 2, "CHW": 2, "CLF": 4, "CLP": 0, "CNY": 2,
    "COP": 2, "COU": 2, "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2, "DJF": 0, "DKK": 2,
    "DOP": 2, "DZD": 2, "EGP": 2, "ERN": 2, "ETB": 2, "EUR": 2, "FJD": 2, "FKP": 2,
    "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2, "GNF": 0, "GTQ": 2, "GYD": 2,
    "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "IQD": 3,
    "IRR": 2, "ISK": 0, "JMD": 2, "JOD": 3, "JPY": 0, "KES": 2, "KGS": 2, "KHR": 2,
    "KMF": 0, "KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2, "LAK": 2, "LBP": 2,
    "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3, "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2,
    "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2, "MVR": 2, "MWK": 2, "MXN": 2,
    "MXV": 2, "MYR": 2, "MZN": 2, "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2,
    "NZD": 2, "OMR": 3, "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2,
    "PYG": 0, "QAR": 2, "RON": 2, "RSD": 2, "RUB": 2, "RWF": 0, "SAR": 2, "SBD": 2,
    "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2,
    "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2, "THB": 2, "TJS": 2, "TMT": 2,
    "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2, "UAH": 2, "UGX": 0,
    "USD": 2, "USN": 2, "UYI": 0, "UYU": 2, "UYW": 4, "UZS": 2, "VED": 2, "VES": 2,
    "VND": 0, "VUV": 0, "WST": 2, "XAD": 2, "XAF": 0, "XCD": 2, "XCG": 2, "XOF": 0,
    "XPF": 0, "YER": 2, "ZAR": 2, "ZMW": 2, "ZWG": 2,
}  # fmt: skip

# DynamoDB keeps 38 significant digits. Calculating in that precision with inexact
# results trapped means a result is either exact and storable, or a MoneyError.
_EXACT = Context(prec=38, traps=[InvalidOperation, Inexact, Overflow, DivisionByZero])

# ASCII digits only: `\d` would also accept other scripts' digits, which Decimal parses.
_PLAIN_DECIMAL = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_TOO_LARGE = "is too large to calculate exactly"


class MoneyError(ValueError):
    """An amount or currency the API user must correct; the message completes "<field> ..."."""


# The largest price of one unit: with at most 1,000,000 units a line and 100 lines a purchase,
# every total stays far inside the 38 digits DynamoDB and the calculations keep.
MAX_PRICE = Decimal("1000000000")


# The shape of a code, which clients can check; whether it names a currency, they cannot.
CURRENCY_PATTERN = r"^[A-Z]{3}$"


def is_currency(code: object) -> bool:
    return isinstance(code, str) and code in MINOR_UNITS


def check_currency(code: str) -> str:
    """`code` if it is a currency of MINOR_UNITS, else a MoneyError."""
    if not is_currency(code):
        raise MoneyError("is not an ISO 4217 currency code")
    return code


def minor_units(currency: str) -> int:
    return MINOR_UNITS[check_currency(currency)]


def to_decimal(value: object) -> Decimal:
    if isinstance(value, float):
        raise MoneyError("must be a decimal number given as a string or JSON number, not a binary float")
    if isinstance(value, bool):
        raise MoneyError("must be a decimal number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise MoneyError("must be a finite decimal number")
        return value
    if isinstance(value, str):
        text = value.strip()
        if _PLAIN_DECIMAL.fullmatch(text):
            return Decimal(text)
    raise MoneyError("must be a decimal number")


def quantize(amount: Decimal, currency: str) -> Decimal:
    """`amount` with exactly the currency's minor-unit digits; never rounds."""
    places = minor_units(currency)
    value = to_decimal(amount)
    try:
        return value.quantize(Decimal((0, (1,), -places)), context=_EXACT)
    except Inexact:
        raise MoneyError(f"has more decimal places than {currency} allows ({places})") from None
    except DecimalException:
        raise MoneyError("is too large") from None


def parse_price(value: object, currency: str, *, at_most: Decimal | None = MAX_PRICE) -> Decimal:
    """A non-negative price (of one unit: at most `at_most`; None for a total), returned with
    exactly the currency's minor-unit digits.

    Trailing zeros do not count as decimal places: "1.100" EUR is the same number as
    "1.10" and is accepted (clients and JSON serializers pad freely), whereas "1.005" EUR
    is rejected because storing it would need rounding. Returns Decimal('1.10') for both
    "1.1" and "1.100".
    """
    amount = to_decimal(value)
    if amount < 0:
        raise MoneyError("must not be negative")
    if at_most is not None and amount > at_most:
        raise MoneyError(f"must be at most {at_most:f}")
    return quantize(amount, currency).copy_abs()  # copy_abs turns -0 into 0


def price_problems(currency: str, prices: Mapping[str, object]) -> list[tuple[str, str]]:
    """(name, problem) for each of the named `prices` that is not a price of one unit in
    `currency` (see parse_price), in their order."""
    problems = []
    for name, price in prices.items():
        try:
            parse_price(price, currency)
        except MoneyError as error:
            problems.append((name, str(error)))
    return problems


def format_money(amount: Decimal, currency: str) -> str:
    """Plain decimal notation with exactly the currency's minor-unit digits: '3.30', '5'."""
    exact = quantize(amount, currency)
    if exact.is_zero():
        exact = exact.copy_abs()
    return f"{exact:f}"


def line_total(quantity: int, unit_price: Decimal) -> Decimal:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise MoneyError("must be a whole number")
    price = to_decimal(unit_price)
    try:
        return _EXACT.multiply(Decimal(quantity), price)
    except DecimalException:
        raise MoneyError(_TOO_LARGE) from None


def sum_amounts(amounts: Iterable[Decimal]) -> Decimal:
    total = Decimal(0)
    try:
        for amount in amounts:
            total = _EXACT.add(total, to_decimal(amount))
    except DecimalException:
        raise MoneyError(_TOO_LARGE) from None
    return total
