"""Customer messages: the acknowledgement email a customer gets when a complaint becomes a case,
and the link that confirms a new email address.

One JSON template per language and message in templates/<message>/<language>.json, holding
{"language", "subject", "text"} with `str.format` placeholders: {name}, {case_ref},
{complaint_subject} and {response_time} for acknowledgement/; {link} and {valid_for} for
email_confirmation/, which greets no one by name: it goes to an address nobody has confirmed
yet, so it carries nothing the requester typed. The templates are read and validated once, on
import; a broken template fails loudly, naming its file, instead of at the first send.

Adding a language takes its template file plus a response-time phrase in `_PHRASES`: the
phrase has to agree with the number in that language, which a template cannot express.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

from chalicelib.domain.contact import LANGUAGE_ALIASES, ContactError, language_of

TEMPLATE_DIR = Path(__file__).parent / "templates" / "acknowledgement"
PLACEHOLDERS = frozenset({"name", "case_ref", "complaint_subject", "response_time"})
CONFIRMATION_TEMPLATE_DIR = Path(__file__).parent / "templates" / "email_confirmation"
CONFIRMATION_PLACEHOLDERS = frozenset({"link", "valid_for"})
DEFAULT_LANGUAGE = "en"

_HOUR = timedelta(hours=1)
_DAYS_FROM_HOURS = 48
_FIELDS = ("language", "subject", "text")


class TemplateError(ValueError):
    """A message template file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Message:
    language: str  # the template's language actually used
    subject: str
    text: str


def _sv(count: int, unit: str) -> str:
    if unit == "hour":
        return f"inom {count} {'timme' if count == 1 else 'timmar'}"
    return f"inom {count} {'dag' if count == 1 else 'dagar'}"


def _fi(count: int, unit: str) -> str:
    # The postposition "kuluessa" takes the genitive singular whatever the number.
    return f"{count} {'tunnin' if unit == 'hour' else 'päivän'} kuluessa"


def _sl(count: int, unit: str) -> str:
    # "v" + locative. Slovenian agrees with the last two digits: 1, 101, 201 ... take the
    # singular; 2 (dual), 3-4 and 5+ (plural) share one locative form, "urah" / "dneh".
    singular = count % 100 == 1
    if unit == "hour":
        return f"v {count} {'uri' if singular else 'urah'}"
    return f"v {count} {'dnevu' if singular else 'dneh'}"


def _tl(count: int, unit: str) -> str:
    # Digits cannot take the "-ng" linker, so Filipino writers join them with "na" ("4 na
    # oras"); "1 oras" reads "isang oras". Days follow the set phrase of notices, "7 araw".
    if unit == "hour":
        return f"sa loob ng {count} oras" if count == 1 else f"sa loob ng {count} na oras"
    return f"sa loob ng {count} araw"


def _en(count: int, unit: str) -> str:
    return f"within {count} {unit}" if count == 1 else f"within {count} {unit}s"


_PHRASES: Mapping[str, Callable[[int, str], str]] = {
    "sv": _sv,
    "fi": _fi,
    "sl": _sl,
    "tl": _tl,
    "en": _en,
}


def response_time(duration: timedelta, language: str) -> str:
    """The promised response time as it reads after the verb: "within 4 hours", "v 2 dneh".

    Whole hours below 48 hours, whole days from 48 hours when they divide evenly, otherwise
    hours. A part hour rounds up, so the promise is never earlier than the target.
    """
    if duration <= timedelta(0):
        raise ValueError(f"a response time must be positive, got {duration}")
    phrase = _PHRASES.get(language)
    if phrase is None:
        raise ValueError(f"no response-time phrase for language {language!r}")
    hours = -(-duration // _HOUR)  # ceiling of a timedelta ratio, exact in integers
    if hours >= _DAYS_FROM_HOURS and hours % 24 == 0:
        return phrase(hours // 24, "day")
    return phrase(hours, "hour")


def acknowledgement(
    locale: str,
    *,
    name: str,
    preferred_name: str | None,
    case_ref: str,
    complaint_subject: str,
    first_response: timedelta,
) -> Message:
    """The acknowledgement of a complaint in the customer's language, English otherwise."""
    language = _language_for(locale)
    return _render(
        language,
        _templates()[language],
        {
            "name": _greeting(name, preferred_name),
            "case_ref": case_ref,
            "complaint_subject": complaint_subject,
            "response_time": response_time(first_response, language),
        },
    )


def email_confirmation(locale: str, *, link: str, valid_for: timedelta) -> Message:
    """The message that asks the owner of a new address to confirm it, with the link. Whoever
    asked may not own the address, so nothing they chose (a name) is in it."""
    language = _language_for(locale)
    return _render(
        language,
        _confirmation_templates()[language],
        {"link": link, "valid_for": response_time(valid_for, language)},
    )


def _greeting(name: str, preferred_name: str | None) -> str:
    return preferred_name if preferred_name and preferred_name.strip() else name


def _render(language: str, template: dict[str, str], values: dict[str, str]) -> Message:
    # One `format` call each: a value containing "{name}" is inserted as text, never
    # expanded. A line break in a value would end the subject header, so it becomes a space.
    subject_values = {key: " ".join(value.splitlines()) for key, value in values.items()}
    return Message(
        language=language,
        subject=template["subject"].format(**subject_values),
        text=template["text"].format(**values),
    )


def load_templates(directory: Path, placeholders: frozenset[str] = PLACEHOLDERS) -> dict[str, dict[str, str]]:
    """Every <language>.json in `directory`, validated, keyed by language."""
    templates: dict[str, dict[str, str]] = {}
    for path in sorted(directory.glob("*.json")):
        templates[path.stem] = _load_template(path, placeholders)
    if DEFAULT_LANGUAGE not in templates:
        raise TemplateError(f"{directory}: no {DEFAULT_LANGUAGE}.json, the fallback template")
    return templates


def placeholders_of(template: str) -> set[str]:
    """The field names a `str.format` template uses; ValueError if it is malformed."""
    names = set()
    for _literal, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if spec or conversion:
            raise ValueError(f"placeholder {{{field}}} must not have a conversion or format spec")
        names.add(field)
    return names


def _load_template(path: Path, placeholders: frozenset[str]) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TemplateError(f"{path}: cannot be read as UTF-8 JSON: {error}") from error
    if not isinstance(data, dict) or set(data) != set(_FIELDS):
        raise TemplateError(f"{path}: must be an object with exactly the keys {', '.join(_FIELDS)}")
    if not all(isinstance(data[key], str) and data[key].strip() for key in _FIELDS):
        raise TemplateError(f"{path}: {', '.join(_FIELDS)} must be non-empty strings")
    if data["language"] != path.stem:
        raise TemplateError(f"{path}: language {data['language']!r} does not match the file name")
    if path.stem not in _PHRASES:
        raise TemplateError(f"{path}: no response-time phrase for {path.stem!r} in messages._PHRASES")
    if len(data["subject"].splitlines()) != 1:
        raise TemplateError(f"{path}: the subject must be a single line")
    allowed = ", ".join("{" + name + "}" for name in sorted(placeholders))
    for key in ("subject", "text"):
        try:
            used = placeholders_of(data[key])
        except ValueError as error:
            raise TemplateError(f"{path}: {key}: {error}") from error
        unknown = used - placeholders
        if unknown:
            raise TemplateError(f"{path}: {key} uses {sorted(unknown)}; allowed are only {allowed}")
        if key == "text" and used != placeholders:
            missing = sorted(placeholders - used)
            raise TemplateError(f"{path}: text must use every placeholder of {allowed}; missing {missing}")
    return {"subject": data["subject"], "text": data["text"]}


@cache
def _templates() -> dict[str, dict[str, str]]:
    return load_templates(TEMPLATE_DIR)


@cache
def _confirmation_templates() -> dict[str, dict[str, str]]:
    templates = load_templates(CONFIRMATION_TEMPLATE_DIR, CONFIRMATION_PLACEHOLDERS)
    if set(templates) != set(_templates()):
        # A customer reads both messages in one language, or neither: `_language_for` picks
        # from the acknowledgements' languages.
        raise TemplateError(
            f"{CONFIRMATION_TEMPLATE_DIR}: languages {sorted(templates)} differ from "
            f"{TEMPLATE_DIR}'s {sorted(_templates())}"
        )
    return templates


def _language_for(locale: str) -> str:
    try:
        language = language_of(locale)
    except ContactError:
        # Locales are validated when a contact is saved; an acknowledgement still goes out.
        return DEFAULT_LANGUAGE
    language = LANGUAGE_ALIASES.get(language, language)
    return language if language in _templates() else DEFAULT_LANGUAGE


SUPPORTED_LANGUAGES: tuple[str, ...] = tuple(sorted(_templates()))
_confirmation_templates()  # validated on import too
