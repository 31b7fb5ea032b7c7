"""Contact details: email addresses, E.164 phone numbers and BCP 47 locales.

Phone numbers are checked against libphonenumber's numbering plans (`phonenumbers`) and
language tags against the IANA subtag registry (`langcodes`). Both are imported on first use:
their imports take about 40 and 60 ms, a third of `import app`, and most requests need neither.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_EMAIL_MESSAGE = "is not a valid email address"
_PHONE_MESSAGE = "must be an E.164 phone number such as +46701234567"
_PHONE_COUNTRY_MESSAGE = "does not start with a country calling code in use, such as +46"
_LOCALE_MESSAGE = "must be a BCP 47 language tag such as sv, fi, sl, tl or en-GB"
_UNREGISTERED_LOCALE_MESSAGE = (
    "must use registered subtags (IANA language subtag registry), as in sv, fi, sl, tl or en-GB"
)

# "fil" is Filipino, the national language of the Philippines, standardised from Tagalog: a
# customer whose locale is fil or fil-PH reads what is written in Tagalog ("tl").
LANGUAGE_ALIASES = {"fil": "tl"}

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
# "+44 (0)20 7946 0958": the "(0)" is the trunk prefix dialled only from inside the
# country, so it is dropped rather than kept as a digit.
_TRUNK_PREFIX = re.compile(r"\(\s*0\s*\)")
_PHONE_SEPARATORS = re.compile(r"[\s.()-]")

_SUBTAG = re.compile(r"[a-z0-9]{1,8}")
_LANGUAGE = re.compile(r"[a-z]{2,8}")
_EXTLANG = re.compile(r"[a-z]{3}")
_SCRIPT = re.compile(r"[a-z]{4}")
_REGION = re.compile(r"[a-z]{2}|[0-9]{3}")
_VARIANT = re.compile(r"[a-z0-9]{5,8}|[0-9][a-z0-9]{3}")
_SINGLETON = re.compile(r"[0-9a-wy-z]")
_EXTENSION = re.compile(r"[a-z0-9]{2,8}")
# RFC 5646 2.2.8: whole tags registered as they are, although their subtags are not.
_REGULAR_GRANDFATHERED = frozenset(
    "art-lojban cel-gaulish no-bok no-nyn zh-guoyu zh-hakka zh-min zh-min-nan zh-xiang".split()
)


class ContactError(ValueError):
    """A contact detail the API user must correct; the message completes "<field> ..."."""


def normalize_email(value: str) -> str:
    """The address stripped and in NFC, with the user's case kept for display.

    A plausibility check, not RFC 5322: one "@", a local part of 1-64 visible characters
    and a domain of two or more labels of letters (any script), digits and hyphens.
    """
    if not isinstance(value, str):
        raise ContactError(_EMAIL_MESSAGE)
    address = unicodedata.normalize("NFC", value.strip())
    if len(address) > 254 or address.count("@") != 1:
        raise ContactError(_EMAIL_MESSAGE)
    local, domain = address.split("@")
    if not 1 <= len(local) <= 64 or not all(map(_visible, local)):
        raise ContactError(_EMAIL_MESSAGE)
    labels = domain.split(".")
    if len(labels) < 2 or not all(map(_domain_label, labels)):
        raise ContactError(_EMAIL_MESSAGE)
    if labels[-1].isdigit():  # an IP address, or no top-level domain
        raise ContactError(_EMAIL_MESSAGE)
    return address


def email_key(value: str) -> str:
    """The uniqueness key: the whole address case-folded.

    RFC 5321 lets a server treat local parts case-sensitively, but no major provider does
    and people do not type them consistently, so "Anna@X.se" and "anna@x.se" are one
    contact.
    """
    return unicodedata.normalize("NFC", normalize_email(value).casefold())


def normalize_phone(value: str) -> str:
    """The E.164 form, "+46701234567", of a number written with its "+", if its country's
    numbering plan has such a number: "+10000000" has the shape, but no number of +1 does."""
    if not isinstance(value, str):
        raise ContactError(_PHONE_MESSAGE)
    text = value.strip()
    # Without the "+" the country code is unknown: "0701234567" could be anywhere.
    if not text.startswith("+"):
        raise ContactError(_PHONE_MESSAGE)
    compact = _PHONE_SEPARATORS.sub("", _TRUNK_PREFIX.sub("", text))
    if not _E164.fullmatch(compact):
        raise ContactError(_PHONE_MESSAGE)
    import phonenumbers

    try:
        number = phonenumbers.parse(compact)
    except phonenumbers.NumberParseException as error:
        unknown_country = error.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE
        raise ContactError(_PHONE_COUNTRY_MESSAGE if unknown_country else _PHONE_MESSAGE) from None
    if not phonenumbers.is_valid_number(number):
        raise ContactError(f"is not a valid number for country code +{number.country_code}")
    # A trunk "0" written after the country code ("+46 070 ...") is dropped here too.
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_locale(value: str) -> str:
    """A valid RFC 5646 language tag, canonically cased: "zh-hant-tw" → "zh-Hant-TW".

    Its language, extended language, script, region and variants must be registered;
    extensions and private-use subtags are kept as written, in lower case. Grandfathered
    irregular tags ("i-klingon", "en-GB-oed") and private-use-only tags ("x-whatever") are
    rejected: a contact's locale starts with a language.
    """
    tag = _well_formed(value)
    if str(tag) not in _REGULAR_GRANDFATHERED and not _registered(tag):
        raise ContactError(_UNREGISTERED_LOCALE_MESSAGE)
    return str(tag)


def language_of(locale: str) -> str:
    # A locale read back was valid when it was saved; the registry may have changed since.
    return _well_formed(locale).language


def _visible(char: str) -> bool:
    # Control, format (zero-width), unassigned and separator characters would let two
    # addresses that look identical get different keys.
    return unicodedata.category(char)[0] not in "CZ"


def _domain_label(label: str) -> bool:
    if not 1 <= len(label) <= 63 or label[0] == "-" or label[-1] == "-":
        return False
    # Letters of any script, plus the combining marks many scripts' words need.
    return all(c.isalpha() or c in "0123456789-" or unicodedata.category(c) in ("Mn", "Mc") for c in label)


@dataclass(frozen=True)
class _Tag:
    language: str
    extlangs: tuple[str, ...] = ()
    script: str | None = None
    region: str | None = None
    variants: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()  # ("u-ca-gregory",)
    private: str | None = None  # "x-phonebk"

    def __str__(self) -> str:
        optional = (self.script, self.region, *self.variants, *self.extensions, self.private)
        return "-".join((self.language, *self.extlangs, *filter(None, optional)))


def _well_formed(value: str) -> _Tag:
    if not isinstance(value, str) or not value.isascii():
        raise ContactError(_LOCALE_MESSAGE)
    subtags = value.strip().lower().split("-")
    if not all(_SUBTAG.fullmatch(subtag) for subtag in subtags):
        raise ContactError(_LOCALE_MESSAGE)
    tag = _parse(subtags)
    if tag is None:
        raise ContactError(_LOCALE_MESSAGE)
    return tag


def _parse(subtags: list[str]) -> _Tag | None:
    """RFC 5646 section 2.1 `langtag`, read left to right; None if it is not well-formed."""
    language, i, n = subtags[0], 1, len(subtags)
    if not _LANGUAGE.fullmatch(language):
        return None

    def take(pattern: re.Pattern[str], most: int = 1) -> list[str]:
        nonlocal i
        taken = []
        while len(taken) < most and i < n and pattern.fullmatch(subtags[i]):
            taken.append(subtags[i])
            i += 1
        return taken

    def one(pattern: re.Pattern[str]) -> str | None:
        return next(iter(take(pattern)), None)

    extlangs = take(_EXTLANG, 3) if len(language) <= 3 else []
    script, region = one(_SCRIPT), one(_REGION)
    variants = take(_VARIANT, n)
    extensions = []
    while singleton := take(_SINGLETON):
        extension = take(_EXTENSION, n)
        if not extension:
            return None
        extensions.append("-".join(singleton + extension))
    private = None
    if i < n - 1 and subtags[i] == "x":
        # Private-use subtags are any 1-8 alphanumerics, already checked, and stay lower.
        private, i = "-".join(subtags[i:]), n
    if i < n:
        return None
    script, region = script and script.title(), region and region.upper()
    return _Tag(language, tuple(extlangs), script, region, tuple(variants), tuple(extensions), private)


def _registered(tag: _Tag) -> bool:
    from langcodes import Language

    # Language(...), not Language.get(tag): get() keeps every tag it ever parsed, and
    # requests choose the tags. is_valid() refuses repeated variants and singletons too.
    language = Language(
        language=tag.language,
        extlangs=tag.extlangs,
        script=tag.script,
        territory=tag.region,
        variants=tag.variants,
        extensions=tag.extensions,
    )
    # An extlang is registered as a language of its own ("zh-yue" and "yue").
    return language.is_valid() and all(Language(language=extlang).is_valid() for extlang in tag.extlangs)
