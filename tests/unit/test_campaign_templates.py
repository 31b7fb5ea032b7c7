from __future__ import annotations

from decimal import Decimal

import pytest

from chalicelib.domain.campaign_templates import (
    MAX_LANGUAGES,
    MAX_TEMPLATE_BYTES,
    PLACEHOLDERS,
    Rendered,
    Template,
    format_price,
    greeting_name,
    normalize_templates,
    pick_language,
    product_name,
    render,
    template_problems,
    uses_product,
)

VALUES = {
    "name": "Anna Berg",
    "preferred_name": "Annie",
    "product.name": "Ceramic mug",
    "product.price": "249,00 SEK",
    "unsubscribe_url": "https://crm.example/unsubscribe?token=abc.def",
}


def templates(**bodies: str) -> dict[str, dict[str, str]]:
    """{"en": ...} plus one template per keyword (underscores become hyphens)."""
    result = {"en": {"subject": "Hello {{ name }}", "body": "Hi {{ preferred_name }}"}}
    for key, body in bodies.items():
        result[key.replace("_", "-")] = {"subject": f"Subject {key}", "body": body}
    return result


def one(subject: str = "Hello", body: str = "Body") -> dict[str, dict[str, str]]:
    return {"en": {"subject": subject, "body": body}}


def saved(raw: dict[str, dict[str, str]]) -> dict[str, Template]:
    assert template_problems(raw) == []
    return normalize_templates(raw)


# --- problems ---------------------------------------------------------------------------


def test_templates_using_every_placeholder_have_no_problems():
    body = " ".join("{{ " + name + " }}" for name in PLACEHOLDERS)
    compact = " ".join("{{" + name + "}}" for name in PLACEHOLDERS)
    assert template_problems(one(subject="{{name}}, for you: {{ product.name }}", body=body + compact)) == []


def test_single_braces_are_text():
    assert template_problems(one(subject="{Sale} {", body="} {x} { {name} }")) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Hi {{ foo }}", "uses {{ foo }}, which is not a placeholder"),
        ("Hi {{ product.sku }}", "uses {{ product.sku }}, which is not a placeholder"),
        ("Hi {{ name|upper }}", "'{{ name|upper }}', which is not a placeholder: there are no filters"),
        ("Hi {{ name.__class__ }}", "uses {{ name.__class__ }}, which is not a placeholder"),
        ("Hi {{ 7*7 }}", "which is not a placeholder"),
        ("Hi {{}}", "which is not a placeholder"),
        ("Hi {{ name }", "has {{ without a closing }}"),
        ("Hi {{ name", "has {{ without a closing }}"),
        ("Hi name }}", "has }} without an opening {{"),
        ("Hi {{{ name }}}", "three braces in a row"),
        ("Hi {{ name }}}", "three braces in a row"),
        ("{% if name %}Hi{% endif %}", "has {% or %}: there are no template tags"),
        ("Hi {# note #}", "has {# or #}: there are no template comments"),
    ],
)
def test_what_is_not_a_placeholder_is_a_problem_of_its_field(body, expected):
    problems = template_problems(templates(sv=body))
    assert [field for field, _ in problems] == ["templates.sv.body"] * len(problems)
    assert any(expected in message for _, message in problems), problems


def test_an_unknown_placeholder_lists_the_allowed_ones():
    [(field, message)] = template_problems(one(subject="Hi {{ first_name }}"))
    assert field == "templates.en.subject"
    for name in PLACEHOLDERS:
        assert "{{ " + name + " }}" in message


def test_the_subject_must_be_one_line():
    assert template_problems(one(subject="Hello\nthere")) == [
        ("templates.en.subject", "must be a single line")
    ]
    assert template_problems(one(subject="Hello\r")) == [("templates.en.subject", "must be a single line")]


def test_english_is_required():
    problems = template_problems({"sv": {"subject": "Hej", "body": "Hej"}})
    assert [field for field, _ in problems] == ["templates"]
    assert '"en"' in problems[0][1]


def test_a_key_that_is_not_a_language_tag_is_a_problem_of_its_key():
    problems = template_problems(templates(**{"english!": "x"}) | {"xx-YY-zzzzzzzzz": one()["en"]})
    assert {field for field, _ in problems} == {"templates.english!", "templates.xx-YY-zzzzzzzzz"}


def test_two_keys_of_one_language_are_a_problem():
    raw = templates(sv_SE="a") | {"sv-se": {"subject": "b", "body": "b"}}
    assert template_problems(raw) == [("templates.sv-se", "names the same language as sv-SE")]
    assert template_problems(one() | {"EN": one()["en"]}) == [
        ("templates.EN", "names the same language as en")
    ]


def test_a_template_needs_exactly_a_subject_and_a_body():
    problems = template_problems(
        one() | {"sv": {"subject": "Hej"}, "fi": {"subject": "a", "body": "b", "x": "c"}}
    )
    assert [field for field, _ in problems] == ["templates.sv", "templates.fi"]


def test_at_most_eight_languages():
    languages = ["sv", "fi", "sl", "tl", "de", "fr", "nb", "da"]
    assert template_problems(templates(**dict.fromkeys(languages[: MAX_LANGUAGES - 1], "x"))) == []
    [(field, message)] = template_problems(templates(**dict.fromkeys(languages, "x")))
    assert field == "templates"
    assert message == "has 9 languages; at most 8 are allowed"


def test_all_templates_together_are_limited_in_utf8_bytes():
    # "ä" is two bytes in UTF-8: 75,000 characters of it are exactly the limit.
    assert MAX_TEMPLATE_BYTES == 150_000
    assert template_problems(one(subject="ä", body="ä" * (MAX_TEMPLATE_BYTES // 2 - 1))) == []
    problems = template_problems(one(subject="ä", body="ä" * (MAX_TEMPLATE_BYTES // 2)))
    assert problems == [("templates", "are 150,002 bytes together in UTF-8; at most 150,000 are allowed")]


# --- normalising ------------------------------------------------------------------------


def test_keys_are_normalised():
    normalised = saved(templates(sv_se="Hej", SV_fi="Moi"))
    assert list(normalised) == ["en", "sv-SE", "sv-FI"]
    assert normalised["sv-SE"] == Template(subject="Subject sv_se", body="Hej")


def test_normalising_templates_with_problems_is_refused():
    with pytest.raises(ValueError, match="problems"):
        normalize_templates({"sv": {"subject": "Hej", "body": "Hej"}})


def test_uses_product_sees_a_product_placeholder_anywhere():
    assert not uses_product(saved(templates(sv="Hej {{ name }}, {{ unsubscribe_url }}")))
    assert uses_product(saved(templates(sv="Köp {{product.price}}")))
    assert uses_product(saved({"en": {"subject": "{{ product.name }} is back", "body": "Hi"}}))


# --- rendering --------------------------------------------------------------------------


def test_every_placeholder_renders():
    body = "|".join("{{ " + name + " }}" for name in PLACEHOLDERS)
    rendered = render(saved(one(subject="{{name}}: {{ product.name }}", body=body)), "en-GB", VALUES)
    assert rendered == Rendered(
        language="en",
        subject="Anna Berg: Ceramic mug",
        body="Anna Berg|Annie|Ceramic mug|249,00 SEK|https://crm.example/unsubscribe?token=abc.def",
    )


def test_a_value_holding_a_placeholder_is_inserted_as_text():
    values = VALUES | {"name": "{{ preferred_name }}", "preferred_name": "{{ name }}"}
    rendered = render(
        saved(one(subject="{{ name }}", body="{{ name }} / {{ preferred_name }}")), "en", values
    )
    assert rendered.subject == "{{ preferred_name }}"
    assert rendered.body == "{{ preferred_name }} / {{ name }}"


def test_a_line_break_in_a_value_becomes_a_space_in_the_subject_only():
    values = VALUES | {"product.name": "Mug\r\nBcc: someone@example.com"}
    rendered = render(saved(one(subject="New: {{ product.name }}", body="{{ product.name }}")), "en", values)
    assert rendered.subject == "New: Mug Bcc: someone@example.com"
    assert rendered.body == "Mug\r\nBcc: someone@example.com"


def test_a_missing_value_is_refused():
    with pytest.raises(ValueError, match="unsubscribe_url"):
        render(saved(one()), "en", {name: "" for name in PLACEHOLDERS if name != "unsubscribe_url"})


def test_the_exact_locale_wins_over_its_language_which_wins_over_english():
    chosen = saved(templates(sv="Hej", sv_FI="Hej från Finland", tl="Kumusta"))
    assert pick_language(chosen, "sv-FI") == "sv-FI"
    assert pick_language(chosen, "SV-fi") == "sv-FI"
    assert pick_language(chosen, "sv-SE") == "sv"
    assert pick_language(chosen, "sv") == "sv"
    assert pick_language(chosen, "fi-FI") == "en"
    assert pick_language(chosen, "not a locale") == "en"
    assert render(chosen, "sv-FI", VALUES).body == "Hej från Finland"


def test_a_region_template_is_not_used_for_its_bare_language():
    assert pick_language(saved(templates(sv_FI="Hej")), "sv") == "en"


def test_filipino_reads_the_tagalog_template():
    chosen = saved(templates(tl="Kumusta"))
    assert pick_language(chosen, "fil-PH") == "tl"
    assert pick_language(chosen, "fil") == "tl"
    assert pick_language(saved(templates(tl="Kumusta", fil="Kumusta po")), "fil-PH") == "fil"


# --- values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "preferred_name", "expected"),
    [
        ("Anna Berg", "Annie", "Annie"),
        ("Anna Berg", "  Annie  ", "Annie"),
        ("Anna Berg", None, "Anna"),
        ("Anna Berg", "   ", "Anna"),
        ("Jyrki Mäkelä", None, "Jyrki"),
        ("  Maja  Novak ", "", "Maja"),
        ("Madonna", None, "Madonna"),
        ("Жанна Петрова", None, "Жанна"),
        ("", None, ""),
    ],
)
def test_the_greeting_is_the_preferred_name_else_the_first_word(name, preferred_name, expected):
    assert greeting_name(name, preferred_name) == expected


def test_a_product_name_falls_back_from_locale_to_language_to_english():
    names = {"en": "Ceramic mug", "sv": "Keramikmugg", "sv-FI": "Keramikkopp", "tl": "Tasang seramik"}
    assert product_name(names, "sv-FI") == "Keramikkopp"
    assert product_name(names, "sv-fi") == "Keramikkopp"
    assert product_name(names, "sv-SE") == "Keramikmugg"
    assert product_name(names, "fi") == "Ceramic mug"
    assert product_name(names, "fil-PH") == "Tasang seramik"
    assert product_name(names, "???") == "Ceramic mug"


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        (Decimal("249"), "SEK", "sv-SE", "249,00 SEK"),
        (Decimal("12.5"), "EUR", "fi", "12,50 EUR"),
        (Decimal("12.5"), "EUR", "sl-SI", "12,50 EUR"),
        (Decimal("12.5"), "EUR", "en", "12.50 EUR"),
        (Decimal("12.5"), "EUR", "en-IE", "12.50 EUR"),
        (Decimal("499.75"), "PHP", "tl", "499.75 PHP"),
        (Decimal("499.75"), "PHP", "fil-PH", "499.75 PHP"),
        (Decimal("500"), "JPY", "sv", "500 JPY"),
        (Decimal("1234567.80"), "SEK", "sv", "1234567,80 SEK"),
        (Decimal("12.5"), "CHF", "de-CH", "12.50 CHF"),
        (Decimal("12.5"), "EUR", "de-AT", "12,50 EUR"),
        (Decimal("12.5"), "EUR", "xx-not-valid", "12.50 EUR"),
    ],
)
def test_prices_show_the_minor_units_the_language_decimal_mark_and_the_code(
    amount, currency, locale, expected
):
    assert format_price(amount, currency, locale) == expected


def test_control_characters_other_than_line_breaks_and_tabs_are_refused():
    from chalicelib.domain.campaign_templates import text_problems

    assert text_problems("Hej\n\tdu\r\n") == []
    [problem] = text_problems("Hej\x01du\x1b")
    assert "U+0001" in problem and "U+001B" in problem
