from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.contact import (
    ContactError,
    email_key,
    language_of,
    normalize_email,
    normalize_locale,
    normalize_phone,
)

EMAIL_MESSAGE = "is not a valid email address"
PHONE_MESSAGE = re.escape("must be an E.164 phone number such as +46701234567")
LOCALE_MESSAGE = "must be a BCP 47 language tag such as sv, fi, sl, tl or en-GB"
UNREGISTERED_MESSAGE = re.escape("must use registered subtags (IANA language subtag registry)")
# Valid numbers of the countries the CRM serves (and one of +1), written compact.
VALID_NUMBERS = [
    "+46701234567",
    "+358401234567",
    "+38641123456",
    "+639171234567",
    "+442079460958",
    "+12015550123",
]

# --- email ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("anna@example.com", "anna@example.com"),
        ("  Anna.Berg@Example.SE \n", "Anna.Berg@Example.SE"),
        ("first.last+crm@sub.example.co.uk", "first.last+crm@sub.example.co.uk"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("user@bücher.de", "user@bücher.de"),
        ("user@xn--bcher-kva.de", "user@xn--bcher-kva.de"),
        ("δοκιμή@παράδειγμα.δοκιμή", "δοκιμή@παράδειγμα.δοκιμή"),
        ("किसी@भारत.भारत", "किसी@भारत.भारत"),
        ("a..b@docomo.ne.jp", "a..b@docomo.ne.jp"),
        ("x@a.b", "x@a.b"),
    ],
)
def test_a_plausible_address_is_stripped_and_keeps_its_case(value, expected):
    assert normalize_email(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "anna",
        "anna@",
        "@example.com",
        "anna@@example.com",
        "anna@bo@example.com",
        "anna@example",
        "anna@.example.com",
        "anna@example.com.",
        "anna@example..com",
        "anna@-example.com",
        "anna@example-.com",
        "anna@exa_mple.com",
        "anna@exa mple.com",
        "anna berg@example.com",
        "anna\t@example.com",
        "anna\u200b@example.com",
        "anna\x00@example.com",
        "anna@127.0.0.1",
        "anna@[127.0.0.1]",
        "Anna Berg <anna@example.com>",
    ],
)
def test_an_implausible_address_is_rejected(value):
    with pytest.raises(ContactError, match=EMAIL_MESSAGE):
        normalize_email(value)


@pytest.mark.parametrize("value", [None, 42, b"anna@example.com", ["anna@example.com"]])
def test_an_email_that_is_not_a_string_is_rejected(value):
    with pytest.raises(ContactError, match=EMAIL_MESSAGE):
        normalize_email(value)


def test_a_local_part_may_have_64_characters_but_not_65():
    assert normalize_email("a" * 64 + "@example.com")
    with pytest.raises(ContactError):
        normalize_email("a" * 65 + "@example.com")


def test_a_domain_label_may_have_63_characters_but_not_64():
    assert normalize_email("anna@" + "d" * 63 + ".com")
    with pytest.raises(ContactError):
        normalize_email("anna@" + "d" * 64 + ".com")


def test_an_address_may_have_254_characters_but_not_255():
    local = "a" * 64
    domain = "b" * 63 + "." + "c" * 63 + "." + "d" * 61
    assert len(normalize_email(f"{local}@{domain}")) == 254
    with pytest.raises(ContactError):
        normalize_email(f"{local}@{domain}d")


def test_an_address_typed_with_combining_accents_is_stored_composed():
    decomposed = "rene\u0301@example.com"
    assert normalize_email(decomposed) == "ren\u00e9@example.com"


def test_the_email_key_ignores_case_in_the_whole_address():
    assert email_key("Anna.Berg@Example.SE") == "anna.berg@example.se"
    assert email_key(" ANNA.BERG@EXAMPLE.SE ") == email_key("anna.berg@example.se")


def test_the_email_key_casefolds_rather_than_lowercases():
    assert email_key("STRASSE@example.de") == email_key("straße@example.de")


def test_the_email_key_is_the_same_for_composed_and_decomposed_accents():
    assert email_key("RENE\u0301@example.com") == email_key("ren\u00e9@example.com")


def test_the_email_key_of_an_invalid_address_is_an_error():
    with pytest.raises(ContactError, match=EMAIL_MESSAGE):
        email_key("not an address")


ascii_addresses = st.from_regex(
    r"[A-Za-z0-9._%+'-]{1,20}@[A-Za-z0-9]{1,10}(-[A-Za-z0-9]{1,10})?\.[A-Za-z]{2,6}",
    fullmatch=True,
)


@given(ascii_addresses)
def test_any_casing_of_an_address_has_the_same_key(address):
    assert normalize_email(address) == address
    assert email_key(address) == email_key(address.upper()) == email_key(address.lower())
    assert email_key(address) == address.lower()


@given(ascii_addresses, st.sampled_from(["", " ", "\t", "\n", " \r\n"]))
def test_surrounding_whitespace_never_changes_an_address(address, padding):
    assert normalize_email(padding + address + padding) == address


# --- phone ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+46701234567", "+46701234567"),
        ("+46 70 123 45 67", "+46701234567"),
        ("+46-70-123-45-67", "+46701234567"),
        ("+46.70.123.45.67", "+46701234567"),
        ("+1 (201) 555-0123", "+12015550123"),
        ("  +358 40 1234567  ", "+358401234567"),
        ("+386\u00a041\u00a0123\u00a0456", "+38641123456"),
        ("+63 917 123 4567", "+639171234567"),
        ("+44 (0)20 7946 0958", "+442079460958"),
        ("+46 (0) 70 123 45 67", "+46701234567"),
        ("+49 30 901820", "+4930901820"),
        ("+43 1 23456789012", "+43123456789012"),
    ],
)
def test_a_phone_number_with_a_plus_is_compacted_to_e164(value, expected):
    assert normalize_phone(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "+",
        "+4",
        "0701234567",
        "46701234567",
        "0046701234567",
        "(+46) 70 123 45 67",
        "+0701234567",
        "+1234567890123456",
        "+46 70 CALL ME",
        "+46/70/1234567",
        "+46701234567 ext 12",
        "++46701234567",
        "+46 70 123 45 67 #",
        "+٤٦٧٠١٢٣٤٥٦٧",
        "+４６７０１２３４５６７",
    ],
)
def test_anything_but_an_international_number_is_rejected(value):
    with pytest.raises(ContactError, match=PHONE_MESSAGE):
        normalize_phone(value)


@pytest.mark.parametrize("value", [None, 46701234567, b"+46701234567"])
def test_a_phone_number_that_is_not_a_string_is_rejected(value):
    with pytest.raises(ContactError, match=PHONE_MESSAGE):
        normalize_phone(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+46 70 174 06 05", "+46701740605"),  # Sweden, mobile
        ("+46 8 123 456 78", "+46812345678"),  # Sweden, Stockholm
        ("+358 40 555 0123", "+358405550123"),  # Finland, mobile
        ("+358 9 1234 567", "+35891234567"),  # Finland, Helsinki
        ("+386 41 555 102", "+38641555102"),  # Slovenia, mobile
        ("+386 1 234 56 78", "+38612345678"),  # Slovenia, Ljubljana
        ("+63 917 555 0142", "+639175550142"),  # the Philippines, mobile
        ("+63 2 8123 4567", "+63281234567"),  # the Philippines, Metro Manila
    ],
)
def test_a_valid_number_of_a_served_country_is_normalised_to_e164(value, expected):
    assert normalize_phone(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("+10000000", "is not a valid number for country code +1"),
        ("+1 (555) 010-9999", "is not a valid number for country code +1"),  # no area code 555
        ("+46 70 123", "is not a valid number for country code +46"),  # too short
        ("+46 70 123 45 67 89", "is not a valid number for country code +46"),  # too long
        ("+123456789012345", "is not a valid number for country code +1"),
        ("+63 000 123 4567", "is not a valid number for country code +63"),
        ("+999 123 456", "does not start with a country calling code in use, such as +46"),
    ],
)
def test_a_number_with_the_shape_of_e164_but_no_such_number_is_rejected(value, message):
    with pytest.raises(ContactError, match=f"^{re.escape(message)}$"):
        normalize_phone(value)


def test_a_trunk_zero_written_after_the_country_code_is_dropped():
    assert normalize_phone("+46 070-123 45 67") == normalize_phone("+46 70-123 45 67") == "+46701234567"


@given(number=st.sampled_from(VALID_NUMBERS), data=st.data())
def test_separators_anywhere_after_the_plus_never_change_the_number(number, data):
    separators = st.text(alphabet=" -.\u00a0", max_size=2)
    written = "+" + "".join(data.draw(separators) + digit for digit in number[1:])
    assert normalize_phone(written) == number


# --- locale ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sv", "sv"),
        ("fi", "fi"),
        ("sl", "sl"),
        ("tl", "tl"),
        ("en-GB", "en-GB"),
        ("SV-se", "sv-SE"),
        ("sv-se", "sv-SE"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("ZH-HANT-TW", "zh-Hant-TW"),
        ("fil-PH", "fil-PH"),
        ("FIL-ph", "fil-PH"),
        (" en-gb ", "en-GB"),
        ("es-419", "es-419"),
        ("sr-latn-rs", "sr-Latn-RS"),
        ("zh-yue-hk", "zh-yue-HK"),
        ("zh-min-nan", "zh-min-nan"),
        ("sl-ROZAJ-biske", "sl-rozaj-biske"),
        ("de-DE-1996", "de-DE-1996"),
        ("hy-latn-it-arevela", "hy-Latn-IT-arevela"),
        ("en-US-u-ca-gregory", "en-US-u-ca-gregory"),
        ("de-CH-x-Phonebk", "de-CH-x-phonebk"),
        ("en-a-BBB-x-A-CCC", "en-a-bbb-x-a-ccc"),
        ("az-Arab-x-AZE-derbend", "az-Arab-x-aze-derbend"),
        ("tlh", "tlh"),
        ("art-lojban", "art-lojban"),
        ("iw", "iw"),  # deprecated for "he", but registered: kept as written
    ],
)
def test_a_language_tag_gets_its_canonical_casing(value, expected):
    assert normalize_locale(value) == expected


@pytest.mark.parametrize("value", ["sv-SE", "fil-PH", "tl", "fi", "sl", "en-GB"])
def test_the_languages_the_crm_serves_are_registered(value):
    assert normalize_locale(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "xx-YY",  # no language xx
        "xx",
        "abcde",
        "sv-Abcd",  # no script Abcd
        "en-UK",  # no region UK: Britain is GB
        "en-000",
        "sl-rozajx",  # no variant rozajx
        "zh-xyz-HK",  # no extended language xyz
        "zh-yue-cmn",  # two extended languages
        "de-1901-1901",  # a variant twice
        "en-a-bbb-a-ccc",  # an extension twice
    ],
)
def test_a_well_formed_tag_with_an_unregistered_subtag_is_rejected(value):
    with pytest.raises(ContactError, match=UNREGISTERED_MESSAGE):
        normalize_locale(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "s",
        "sv_SE",
        "sv-",
        "-sv",
        "sv--SE",
        "sv SE",
        "sv-SE-",
        "abcdefghi",
        "12",
        "en-GB-oed",
        "i-klingon",
        "x-private",
        "en-x",
        "en-a",
        "en-a-b",
        "en-a-x-foo",
        "en-aaa-bbb-ccc-ddd",
        "de-419-DE",
        "en-Latn-Latn",
        "en-GB-abcdefghi",
        "\u212ao",
        "sv\u00a0",
        "sv.SE",
        "sv-SE.UTF-8",
    ],
)
def test_a_malformed_language_tag_is_rejected(value):
    with pytest.raises(ContactError, match=LOCALE_MESSAGE):
        normalize_locale(value)


@pytest.mark.parametrize("value", [None, 46, b"sv"])
def test_a_locale_that_is_not_a_string_is_rejected(value):
    with pytest.raises(ContactError, match=LOCALE_MESSAGE):
        normalize_locale(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("sv-SE", "sv"), ("SV", "sv"), ("FIL-ph", "fil"), ("zh-Hant-TW", "zh"), ("tl", "tl")],
)
def test_the_language_of_a_locale_is_its_lower_case_primary_subtag(value, expected):
    assert language_of(value) == expected


def test_the_language_of_a_malformed_locale_is_an_error():
    with pytest.raises(ContactError, match=LOCALE_MESSAGE):
        language_of("sv_SE")


def _random_case(draw, text):
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c for c, flip in zip(text, flips, strict=True))


def _extensions(draw, parts):
    for singleton in draw(st.lists(st.sampled_from("abu0"), max_size=2, unique=True)):
        parts.append(singleton)
        parts += draw(st.lists(st.from_regex(r"[a-z0-9]{2,8}", fullmatch=True), min_size=1, max_size=2))
    if draw(st.booleans()):
        parts.append("x")
        parts += draw(st.lists(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), min_size=1, max_size=2))
    return _random_case(draw, "-".join(parts))


@st.composite
def language_tags(draw):
    """Well-formed tags, with subtags mostly not registered."""
    parts = [draw(st.from_regex(r"[a-z]{2,3}|[a-z]{5,8}", fullmatch=True))]
    if len(parts[0]) <= 3:
        parts += draw(st.lists(st.from_regex(r"[a-z]{3}", fullmatch=True), max_size=3))
    parts += draw(st.lists(st.from_regex(r"[a-z]{4}", fullmatch=True), max_size=1))
    parts += draw(st.lists(st.from_regex(r"[a-z]{2}|[0-9]{3}", fullmatch=True), max_size=1))
    parts += draw(st.lists(st.from_regex(r"[a-z0-9]{5,8}|[0-9][a-z0-9]{3}", fullmatch=True), max_size=2))
    return _extensions(draw, parts)


def _some(draw, subtags, most=1):
    return draw(st.lists(st.sampled_from(subtags), max_size=most, unique=True))


@st.composite
def registered_tags(draw):
    """Valid tags: every language, extended language, script, region and variant registered."""
    languages = ["sv", "fi", "sl", "tl", "fil", "en", "zh", "sr", "de", "hy", "es", "yue"]
    parts = [draw(st.sampled_from(languages))]
    if parts[0] == "zh":
        parts += _some(draw, ["yue", "cmn", "nan"])
    parts += _some(draw, ["latn", "hant", "cyrl", "arab"])
    parts += _some(draw, ["se", "fi", "si", "ph", "gb", "tw", "419", "001"])
    parts += _some(draw, ["rozaj", "biske", "1996", "1901", "arevela", "valencia", "hepburn"], most=2)
    return _extensions(draw, parts)


@given(registered_tags())
@settings(deadline=None)  # the registry's first lookups are slow on a loaded machine
def test_any_registered_tag_is_accepted_whatever_its_casing(tag):
    canonical = normalize_locale(tag)
    assert canonical.lower() == tag.lower()
    assert normalize_locale(tag.upper()) == canonical
    assert normalize_locale(tag.lower()) == canonical
    assert normalize_locale(canonical) == canonical


@given(language_tags())
def test_any_well_formed_tag_is_kept_or_refused_as_unregistered_never_as_malformed(tag):
    try:
        canonical = normalize_locale(tag)
    except ContactError as error:
        assert re.match(UNREGISTERED_MESSAGE, str(error))
        return
    assert canonical.lower() == tag.lower()
    assert normalize_locale(tag.upper()) == canonical


@given(language_tags())
def test_the_language_of_any_tag_is_its_first_subtag_in_lower_case(tag):
    assert language_of(tag) == tag.split("-")[0].lower()


@given(language_tags())
def test_an_underscore_instead_of_a_hyphen_is_never_accepted(tag):
    if "-" in tag:
        with pytest.raises(ContactError):
            normalize_locale(tag.replace("-", "_", 1))
