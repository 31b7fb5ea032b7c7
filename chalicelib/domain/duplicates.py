"""Likely duplicates: what two profiles have in common, and how much it says they are one person.

Evidence, each with a weight in [0, 1]:

- **email**: an address of both, as its uniqueness key (case-folded): `exact`, 0.9 (two
  stored profiles never share one: a new profile with one is refused; it can be evidence for
  profiles not stored yet). The same mailbox once written canonically (`canonical_email`):
  `normalised`, 0.85.
- **phone**: a number of both, in E.164 (every stored number is E.164): `exact`, 0.8.
- **name**: the names' similarity after folding case and accents (`names.normalize`), word
  order ignored: the mean of rapidfuzz's token_sort_ratio and token_set_ratio, from 0 to 1.
  `exact` when the names are the same but for case, `normalised` when they have the same
  words after folding (Åsa Öberg ~ Asa Oberg, Cruz Maria ~ Maria Cruz), `similar` from
  NAME_FLOOR up; below it the names count for nothing.

Combined as independent pieces of evidence:

    contact = 1 - (1 - email) * (1 - phone)
    score   = 1 - (1 - contact) * (1 - NAME_WEIGHT * name)

so a name alone scores at most NAME_WEIGHT (0.7), below any contact detail alone (0.8 and up):
a name never outweighs a name plus an address or number, whoever the names belong to.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.domain import names
from chalicelib.domain.contact import email_key
from chalicelib.domain.customers import Customer

EXACT, NORMALISED, SIMILAR = "exact", "normalised", "similar"
EMAIL_EXACT = 0.9
EMAIL_NORMALISED = 0.85
PHONE_EXACT = 0.8
NAME_WEIGHT = 0.7
# Names less alike than this are no evidence: "Jyrki Mäkelä" and "Jyrki Virtanen" share a
# first name, which many people do.
NAME_FLOOR = 0.75
DEFAULT_THRESHOLD = 0.85
# Candidates of one customer whose profiles are read and scored: one BatchGetItem.
MAX_CANDIDATES = 25
# A name-key (its folded words, sorted) is a partition key: bounded well within DynamoDB's
# 2,048 bytes (at most 4 bytes a character).
MAX_NAME_KEY_LENGTH = 256

# Mail providers known to deliver `local+tag@` to `local@` (subaddressing), and those that also
# ignore dots in the local part. Other domains may treat either as part of the mailbox, so
# their addresses are compared whole.
_DOTS_IGNORED = frozenset({"gmail.com"})
_TAGS_IGNORED = frozenset(
    {
        "gmail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "fastmail.com",
        "protonmail.com",
        "proton.me",
    }
)
_SAME_DOMAIN = {"googlemail.com": "gmail.com"}


@dataclass(frozen=True)
class Reason:
    field: str  # email | phone | name
    kind: str  # exact | normalised | similar
    detail: str


@dataclass(frozen=True)
class Match:
    candidate: Customer
    score: float
    reasons: tuple[Reason, ...]

    @property
    def customer_id(self) -> str:
        return self.candidate.id


def canonical_email(address: str) -> str:
    """The mailbox an address reaches: case-folded; at gmail.com (and googlemail.com, the same
    mailboxes) without dots and `+tag`; at the other providers of _TAGS_IGNORED without `+tag`."""
    key = email_key(address)
    local, domain = key.rsplit("@", 1)
    domain = _SAME_DOMAIN.get(domain, domain)
    if domain in _TAGS_IGNORED:
        local = local.split("+", 1)[0]
    if domain in _DOTS_IGNORED:
        local = local.replace(".", "")
    return f"{local}@{domain}" if local else key


def canonical_emails(customer: Customer) -> list[str]:
    return list(dict.fromkeys(canonical_email(e) for e in (customer.email, *customer.secondary_emails) if e))


def phones(customer: Customer) -> list[str]:
    return list(dict.fromkeys(p for p in (customer.phone, *customer.secondary_phones) if p))


def name_key(name: str) -> str | None:
    """The name's folded words in alphabetical order: one key for "Cruz Maria" and "María Cruz"."""
    key = " ".join(sorted(names.words(name)))[:MAX_NAME_KEY_LENGTH]
    return key or None


def name_similarity(a: str, b: str) -> float:
    """0 (nothing alike) to 1 (the same words, in any order, case and accents aside)."""
    from rapidfuzz import fuzz

    left, right = " ".join(names.words(a)), " ".join(names.words(b))
    if not left or not right:
        return 0.0
    return (fuzz.token_sort_ratio(left, right) + fuzz.token_set_ratio(left, right)) / 200


def combine(email: float, phone: float, name: float) -> float:
    """The score of the evidence's weights (see the module's docstring)."""
    contact = 1 - (1 - email) * (1 - phone)
    return 1 - (1 - contact) * (1 - NAME_WEIGHT * name)


def compare(customer: Customer, other: Customer) -> Match | None:
    """How likely `other` is `customer`, with the reasons; None if they share no evidence."""
    email, email_reason = _email_evidence(customer, other)
    phone, phone_reason = _phone_evidence(customer, other)
    name, name_reason = _name_evidence(customer.name, other.name)
    reasons = tuple(r for r in (email_reason, phone_reason, name_reason) if r is not None)
    if not reasons:
        return None
    return Match(other, round(combine(email, phone, name), 4), reasons)


def ranked(matches: list[Match]) -> list[Match]:
    """Best first; equal scores in id order, so that pages over the list are stable."""
    return sorted(matches, key=lambda m: (-m.score, m.customer_id))


def _addresses(customer: Customer) -> list[str]:
    return [e for e in (customer.email, *customer.secondary_emails) if e]


def _email_evidence(customer: Customer, other: Customer) -> tuple[float, Reason | None]:
    theirs = {email_key(e): e for e in _addresses(other)}
    for address in _addresses(customer):
        if email_key(address) in theirs:
            return EMAIL_EXACT, Reason("email", EXACT, f"{theirs[email_key(address)]} is an address of both")
    canonical = {canonical_email(e): e for e in _addresses(other)}
    for address in _addresses(customer):
        mailbox = canonical_email(address)
        if mailbox in canonical:
            detail = f"{address} and {canonical[mailbox]} are one mailbox ({mailbox})"
            return EMAIL_NORMALISED, Reason("email", NORMALISED, detail)
    return 0.0, None


def _phone_evidence(customer: Customer, other: Customer) -> tuple[float, Reason | None]:
    theirs = set(phones(other))
    for number in phones(customer):
        if number in theirs:
            return PHONE_EXACT, Reason("phone", EXACT, f"{number} is a number of both")
    return 0.0, None


def _name_evidence(name: str, other: str) -> tuple[float, Reason | None]:
    if name.casefold() == other.casefold():
        return 1.0, Reason("name", EXACT, "the same name")
    key = name_key(name)
    if key is not None and key == name_key(other):
        return 1.0, Reason("name", NORMALISED, "the same words once case, accents and order are set aside")
    similarity = name_similarity(name, other)
    if similarity < NAME_FLOOR:
        return 0.0, None
    return similarity, Reason("name", SIMILAR, f"names {round(similarity * 100)}% alike")
