"""A campaign's messages: a subject and a body per language, with a closed set of placeholders.

A placeholder is one of PLACEHOLDERS in double braces, `{{ name }}` or `{{name}}`, and that is
the whole language: no attribute access, no filters, no expressions, no tags. The renderer is a
regular expression that swaps each placeholder for its value in one pass, not a template engine:
even a sandboxed Jinja evaluates expressions and reads attributes of what it is given, and the
templates are written through the API by staff, so the contract is a set of names instead.
Anything else that looks like template syntax (`{{ foo }}`, `{{ name|upper }}`, a lone `{{`,
`{% ... %}`, `{# ... #}`) is refused when the campaign is saved, not found at the first send.
Single braces are text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from chalicelib.domain import money
from chalicelib.domain.contact import LANGUAGE_ALIASES, ContactError, language_of, normalize_locale

PLACEHOLDERS: tuple[str, ...] = ("name", "preferred_name", "product.name", "product.price", "unsubscribe_url")
PRODUCT_PLACEHOLDERS = ("product.name", "product.price")
MAX_LANGUAGES = 8
# All subjects and bodies together, in UTF-8: a campaign is one DynamoDB item (400 KB at most),
# and its response is stored again for Idempotency-Key replays.
MAX_TEMPLATE_BYTES = 150_000
FALLBACK_LANGUAGE = "en"
PARTS = ("subject", "body")

_PLACEHOLDER = re.compile(r"\{\{[ \t]*(" + "|".join(map(re.escape, PLACEHOLDERS)) + r")[ \t]*\}\}")
# Whatever sits between double braces, for the problems of what is not a placeholder.
_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_NAME_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_OTHER_SYNTAX = (
    (("{{",), "has {{ without a closing }}"),
    (("}}",), "has }} without an opening {{"),
    (("{%", "%}"), "has {% or %}: there are no template tags, only placeholders"),
    (("{#", "#}"), "has {# or #}: there are no template comments"),
)
_SHOWN_CHARS = 40

# Languages whose numbers are written with a decimal comma in every region, and the regions
# that use a point although their language writes a comma (Swiss and Liechtenstein amounts).
# Not Spanish: a comma in Spain, a point in Mexico and much of Latin America.
_DECIMAL_COMMA = frozenset(
    "bg cs da de el et fi fo fr hr hu id is it lt lv nb nl nn no pl pt ro ru sk sl sr sv tr uk".split()
)
_DECIMAL_POINT_REGIONS = frozenset({"CH", "LI"})


@dataclass(frozen=True)
class Template:
    subject: str
    body: str


@dataclass(frozen=True)
class Rendered:
    language: str  # the template key used
    subject: str
    body: str


def _allowed() -> str:
    return ", ".join("{{ " + name + " }}" for name in PLACEHOLDERS)


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def text_problems(text: str) -> list[str]:
    """What is wrong with the placeholders of one subject or body, each as "<field> ..."."""
    problems = []
    for match in _TAG.finditer(text):
        if _PLACEHOLDER.fullmatch(match.group()):
            continue
        inner = match.group(1).strip()
        if _NAME_LIKE.fullmatch(inner):
            problems.append(
                f"uses {{{{ {inner} }}}}, which is not a placeholder; the placeholders are {_allowed()}"
            )
        else:
            problems.append(
                f"has {_shown(match.group())!r}, which is not a placeholder: there are no filters or "
                f"expressions, only the names {_allowed()}"
            )
    if "{{{" in text or "}}}" in text:
        # Mustache's unescaped form; here it would be a placeholder with a brace beside it.
        problems.append("has three braces in a row: a placeholder is written {{ name }}")
    rest = _TAG.sub(" ", text)
    problems.extend(problem for syntaxes, problem in _OTHER_SYNTAX if any(s in rest for s in syntaxes))
    control = sorted(
        {f"U+{ord(c):04X}" for c in text if unicodedata.category(c) == "Cc" and c not in "\n\r\t"}
    )
    if control:
        # Nothing a mail shows; stored escaped (six bytes each), they would also defeat the size limit.
        problems.append(
            f"has control characters ({', '.join(control[:5])}): only line breaks and tabs are text"
        )
    return list(dict.fromkeys(problems))


def template_problems(templates: Mapping[str, Mapping[str, str]]) -> list[tuple[str, str]]:
    """(field, problem) pairs for the `templates` of a campaign, [] if it can be saved."""
    if not isinstance(templates, Mapping):
        return [("templates", 'must be an object of language → {"subject", "body"}')]
    problems: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    size = 0
    for key, template in templates.items():
        field = f"templates.{key}"
        try:
            language = normalize_locale(key)
        except ContactError as error:
            problems.append((field, str(error)))
        else:
            if language in seen:
                problems.append((field, f"names the same language as {seen[language]}"))
            seen.setdefault(language, key)
        if not isinstance(template, Mapping) or set(template) != set(PARTS):
            problems.append((field, "must be an object with exactly a subject and a body"))
            continue
        for part in PARTS:
            text = template[part]
            if not isinstance(text, str):
                problems.append((f"{field}.{part}", "must be a string"))
                continue
            size += len(text.encode("utf-8", errors="surrogatepass"))
            problems.extend((f"{field}.{part}", problem) for problem in text_problems(text))
        subject = template["subject"]
        if isinstance(subject, str) and subject and subject.splitlines() != [subject]:
            problems.append((f"{field}.subject", "must be a single line"))
    if FALLBACK_LANGUAGE not in seen:
        problems.append(
            (
                "templates",
                f'must include "{FALLBACK_LANGUAGE}", the template used when none fits the customer',
            )
        )
    if len(templates) > MAX_LANGUAGES:
        problems.append(("templates", f"has {len(templates)} languages; at most {MAX_LANGUAGES} are allowed"))
    if size > MAX_TEMPLATE_BYTES:
        problems.append(
            ("templates", f"are {size:,} bytes together in UTF-8; at most {MAX_TEMPLATE_BYTES:,} are allowed")
        )
    return problems


def normalize_templates(templates: Mapping[str, Mapping[str, str]]) -> dict[str, Template]:
    """The templates keyed by their canonical language tags ("sv-se" → "sv-SE"). For templates
    template_problems() found nothing wrong with; ValueError otherwise."""
    problems = template_problems(templates)
    if problems:
        raise ValueError(f"templates with problems: {problems}")
    return {
        normalize_locale(key): Template(subject=template["subject"], body=template["body"])
        for key, template in templates.items()
    }


def uses_product(templates: Mapping[str, Template]) -> bool:
    return any(
        match.group(1) in PRODUCT_PLACEHOLDERS
        for template in templates.values()
        for text in (template.subject, template.body)
        for match in _PLACEHOLDER.finditer(text)
    )


def _best_key(keys: list[str], locale: str) -> str | None:
    """Of `keys` (language tags), the customer's exact locale, else its language, else the
    fallback language; case-insensitive. None if none of them is there."""
    by_folded = {key.lower(): key for key in keys}
    candidates = []
    if isinstance(locale, str):
        candidates.append(locale.strip().lower())
        try:
            language = language_of(locale)
        except ContactError:
            pass  # a locale read back was valid when saved; the fallback still fits
        else:
            candidates += [language, LANGUAGE_ALIASES.get(language, language)]
    candidates.append(FALLBACK_LANGUAGE)
    return next((by_folded[c] for c in candidates if c in by_folded), None)


def pick_language(templates: Mapping[str, Template], locale: str) -> str:
    """The template key for a customer's locale: "sv-FI" over "sv" over "en"; "fil" reads "tl"."""
    key = _best_key(list(templates), locale)
    if key is None:
        raise ValueError(f'templates without "{FALLBACK_LANGUAGE}"')
    return key


def render(templates: Mapping[str, Template], locale: str, values: Mapping[str, str]) -> Rendered:
    """The message for a customer's locale, each placeholder replaced by its value in `values`
    (which holds every one of PLACEHOLDERS; the product's may be "" when there is none)."""
    missing = [name for name in PLACEHOLDERS if name not in values]
    if missing:
        raise ValueError(f"no values for placeholders {missing}")
    language = pick_language(templates, locale)
    template = templates[language]
    # One substitution pass: a value holding "{{ name }}" is inserted as text, never expanded.
    # A line break in a value would end the subject header, so there it becomes a space.
    subject_values = {name: " ".join(str(values[name]).splitlines()) for name in PLACEHOLDERS}
    return Rendered(
        language=language,
        subject=_PLACEHOLDER.sub(lambda match: subject_values[match.group(1)], template.subject),
        body=_PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), template.body),
    )


def greeting_name(name: str, preferred_name: str | None) -> str:
    """The name a message greets with: the preferred name, else the first word of the name."""
    if preferred_name and preferred_name.strip():
        return preferred_name.strip()
    words = name.split()
    return words[0] if words else ""


def product_name(names: Mapping[str, str], locale: str) -> str:
    """A product's catalogue name for the customer: their exact locale, its language, "en"."""
    key = _best_key(list(names), locale)
    if key is not None:
        return names[key]
    return next(iter(names.values()), "")


def format_price(amount: Decimal, currency: str, locale: str) -> str:
    """The price as a customer reads it: "249,00 SEK", "12.50 EUR", "500 JPY". The currency's
    minor-unit digits (money.format_money), with a decimal comma where the customer's language
    writes one (sv, fi, sl, de, ...) and a point otherwise (en, tl), then the ISO code.

    No thousands separator: "1.000" and "1,000" each mean 1 in some language and 1000 in
    another, whereas "1000,00" and "1000.00" are read one way by everyone."""
    digits = money.format_money(amount, currency)
    return f"{digits.replace('.', ',') if _writes_decimal_comma(locale) else digits} {currency}"


def _writes_decimal_comma(locale: str) -> bool:
    try:
        language = language_of(locale)
    except ContactError:
        return False
    return language in _DECIMAL_COMMA and _region_of(locale) not in _DECIMAL_POINT_REGIONS


def _region_of(locale: str) -> str | None:
    # The first two-letter subtag after the language, before any extension ("de-Latn-CH").
    for subtag in locale.strip().split("-")[1:]:
        if len(subtag) == 1:
            return None
        if len(subtag) == 2 and subtag.isalpha():
            return subtag.upper()
    return None
