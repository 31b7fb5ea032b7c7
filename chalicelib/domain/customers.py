"""The customer profile as the rest of the code sees it: no storage, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from chalicelib.domain import names
from chalicelib.domain.contact import email_key

DEFAULT_LOCALE = "en"
# A profile's secondary addresses and numbers (kept from merged customers): at most this many
# of each, so the profile's lookup items stay within one DynamoDB transaction (a merge that
# would pass it is refused).
MAX_SECONDARY = 5
EDITABLE_FIELDS = (
    "name",
    "preferred_name",
    "email",
    "phone",
    "locale",
    "marketing_consent",
    "tags",
    "attributes",
)


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    preferred_name: str | None = None
    email: str | None = None
    phone: str | None = None
    locale: str = DEFAULT_LOCALE
    marketing_consent: bool = False
    tags: tuple[str, ...] = ()
    attributes: dict[str, str] = field(default_factory=dict)
    version: int = 0
    # A merged customer's addresses and numbers (the merge issue's survivorship): not editable,
    # still found by `?email=`, and erased with the profile.
    secondary_emails: tuple[str, ...] = ()
    secondary_phones: tuple[str, ...] = ()

    @property
    def email_key(self) -> str | None:
        return email_key(self.email) if self.email else None

    @property
    def email_keys(self) -> list[str]:
        """The uniqueness keys of every address of the customer, the primary one first."""
        keys = [email_key(e) for e in (self.email, *self.secondary_emails) if e]
        return list(dict.fromkeys(keys))

    @property
    def search_words(self) -> list[str]:
        return names.search_words(self.name, self.preferred_name)

    def with_changes(self, changes: dict, at: datetime) -> Customer:
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        if "tags" in changes:
            changes = {**changes, "tags": tuple(changes["tags"])}
        return replace(self, **changes, updated_at=at)
