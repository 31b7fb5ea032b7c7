"""Contact details: email addresses, E.164 phone numbers and BCP 47 locales."""

from __future__ import annotations

import re
import unicodedata

_EMAIL_MESSAGE = "is not a valid email address"
_PHONE_MESSAGE = "must be an E.164 phone number such as +46701234567"
_LOCALE_MESSAGE = "must be a BCP 47 language tag such as sv, fi, sl, tl or en-GB"

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
    """The compact E.164 form, "+46701234567", of a number written with its "+"."""
    if not isinstance(value, str):
        raise ContactError(_PHONE_MESSAGE)
    text = value.strip()
    # Without the "+" the country code is unknown: "0701234567" could be anywhere.
    if not text.startswith("+"):
        raise ContactError(_PHONE_MESSAGE)
    compact = _PHONE_SEPARATORS.sub("", _TRUNK_PREFIX.sub("", text))
    if not _E164.fullmatch(compact):
        raise ContactError(_PHONE_MESSAGE)
    return compact


def normalize_locale(value: str) -> str:
    """A well-formed RFC 5646 language tag, canonically cased: "zh-hant-tw" → "zh-Hant-TW".

    Grandfathered irregular tags ("i-klingon", "en-GB-oed") and private-use-only tags
    ("x-whatever") are rejected: a contact's locale starts with a language.
    """
    if not isinstance(value, str) or not value.isascii():
        raise ContactError(_LOCALE_MESSAGE)
    subtags = value.strip().lower().split("-")
    if not all(_SUBTAG.fullmatch(subtag) for subtag in subtags):
        raise ContactError(_LOCALE_MESSAGE)
    canonical = _canonical_subtags(subtags)
    if canonical is None:
        raise ContactError(_LOCALE_MESSAGE)
    return "-".join(canonical)


def language_of(locale: str) -> str:
    return normalize_locale(locale).split("-", 1)[0]


def _visible(char: str) -> bool:
    # Control, format (zero-width), unassigned and separator characters would let two
    # addresses that look identical get different keys.
    return unicodedata.category(char)[0] not in "CZ"


def _domain_label(label: str) -> bool:
    if not 1 <= len(label) <= 63 or label[0] == "-" or label[-1] == "-":
        return False
    # Letters of any script, plus the combining marks many scripts' words need.
    return all(c.isalpha() or c in "0123456789-" or unicodedata.category(c) in ("Mn", "Mc") for c in label)


def _canonical_subtags(subtags: list[str]) -> list[str] | None:
    """RFC 5646 section 2.1 `langtag`, read left to right; None if it is not well-formed."""
    language = subtags[0]
    if not _LANGUAGE.fullmatch(language):
        return None
    out, i, n = [language], 1, len(subtags)

    def next_is(pattern: re.Pattern[str]) -> bool:
        return i < n and pattern.fullmatch(subtags[i]) is not None

    if len(language) <= 3:
        while len(out) < 4 and next_is(_EXTLANG):
            out.append(subtags[i])
            i += 1
    if next_is(_SCRIPT):
        out.append(subtags[i].title())
        i += 1
    if next_is(_REGION):
        out.append(subtags[i].upper())
        i += 1
    while next_is(_VARIANT):
        out.append(subtags[i])
        i += 1
    while next_is(_SINGLETON):
        out.append(subtags[i])
        i += 1
        if not next_is(_EXTENSION):
            return None
        while next_is(_EXTENSION):
            out.append(subtags[i])
            i += 1
    if i < n and subtags[i] == "x":
        if i == n - 1:
            return None
        # Private-use subtags are any 1-8 alphanumerics, already checked, and stay lower.
        out.extend(subtags[i:])
        i = n
    return out if i == n else None
