"""Request and response models of customer profiles."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, StrictBool, WithJsonSchema, model_validator

from chalicelib.api.loyalty_schemas import LoyaltySummary, Tier
from chalicelib.api.requests import RequestFieldErrors
from chalicelib.api.schemas import Name, NotNull, Out, PageQuery, Strict, checked
from chalicelib.domain import contact
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.customers import Customer
from chalicelib.errors import FieldError

Email = Annotated[
    str,
    BeforeValidator(checked(contact.normalize_email)),
    WithJsonSchema(
        {
            "type": "string",
            # Internationalised addresses ("åsa@exempel.se") are accepted, so not "email".
            "format": "idn-email",
            "maxLength": 254,
            "description": "one @, a local part of 1-64 visible characters, a domain of 2+ labels",
        }
    ),
]
# What contact.normalize_phone accepts: a "+", then digits (the first not 0) among spaces, dots,
# dashes, parentheses and "(0)" trunk prefixes, which are dropped. It does not count the digits
# (2-15) nor know numbering plans, which the server checks: counting them around optional "(0)"s
# takes a regex that backtracks exponentially on a bad input, in every client that validates with it.
PHONE_INPUT_PATTERN = r"^\s*\+(?:[\s.()-]|\(\s*0\s*\))*[1-9][\s.()0-9-]*[0-9][\s.()-]*$"
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
Phone = Annotated[
    str,
    BeforeValidator(checked(contact.normalize_phone)),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": PHONE_INPUT_PATTERN,
            "description": "E.164 with its + (2-15 digits, the first not 0), a number that its "
            "country's numbering plan has (libphonenumber's metadata: +10000000 is refused); spaces, "
            "dots, dashes, parentheses and a (0) trunk prefix are removed. Returned compact "
            "(+46701234567).",
            "examples": ["+46701234567", "+46 70-123 45 67", "+44 (0)20 7946 0958"],
        }
    ),
]
PhoneOut = Annotated[str, WithJsonSchema({"type": "string", "pattern": E164_PATTERN})]
Locale = Annotated[
    str,
    BeforeValidator(checked(contact.normalize_locale)),
    WithJsonSchema(
        {
            "type": "string",
            "description": "BCP 47 language tag whose language, script, region and variants are in the "
            "IANA language subtag registry (xx-YY is refused); returned in canonical case (sv-SE)",
            "examples": ["sv", "fi-FI"],
        }
    ),
]
Tag = Annotated[str, Field(min_length=1, max_length=40)]
Tags = Annotated[list[Tag], Field(max_length=20)]
Attributes = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=64)], Annotated[str, Field(max_length=1000)]],
    Field(max_length=50),
]


class CustomerCreate(Strict):
    name: Name
    preferred_name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    locale: Locale = "en"
    marketing_consent: StrictBool = False
    tags: Tags = []
    attributes: Attributes = {}

    def fields(self) -> dict:
        data = self.model_dump()
        data["tags"] = tuple(dict.fromkeys(data["tags"]))
        return data


class CustomerDetailsPatch(Strict):
    """The fields of a profile that its customer may change too (PATCH /me takes these)."""

    name: Annotated[Name, NotNull] = None  # type: ignore[assignment]
    preferred_name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    locale: Annotated[Locale, NotNull] = None  # type: ignore[assignment]
    marketing_consent: Annotated[StrictBool, NotNull] = None  # type: ignore[assignment]

    def changes(self) -> dict:
        return {name: getattr(self, name) for name in self.model_fields_set}


class CustomerPatch(CustomerDetailsPatch):
    """Only the fields present change; `null` clears an optional field."""

    tags: Annotated[Tags, NotNull] = None  # type: ignore[assignment]
    attributes: Annotated[Attributes, NotNull] = None  # type: ignore[assignment]

    def changes(self) -> dict:
        data = super().changes()
        if "tags" in data:
            data["tags"] = tuple(dict.fromkeys(data["tags"]))
        return data


class CustomerOut(Out):
    id: str
    name: str
    preferred_name: str | None
    email: str | None
    phone: PhoneOut | None
    locale: str
    marketing_consent: bool
    tags: list[str]
    attributes: dict[str, str]
    created_at: str
    updated_at: str
    version: int
    secondary_emails: list[str] = Field(
        description="the addresses of customers merged into this one: read-only, still found by `?email=`"
    )
    secondary_phones: list[PhoneOut] = Field(description="the numbers of customers merged into this one")
    loyalty: LoyaltySummary | None = Field(
        None,
        description="in GET /customers/{customer_id} and GET /customers?tier=; computed as of the request",
    )

    @classmethod
    def of(cls, c: Customer, loyalty: dict | None = None) -> dict:
        extra = {"loyalty": loyalty} if loyalty is not None else {}
        return extra | {
            "id": c.id,
            "name": c.name,
            "preferred_name": c.preferred_name,
            "email": c.email,
            "phone": c.phone,
            "locale": c.locale,
            "marketing_consent": c.marketing_consent,
            "tags": list(c.tags),
            "attributes": dict(c.attributes),
            "created_at": to_rfc3339(c.created_at),
            "updated_at": to_rfc3339(c.updated_at),
            "version": c.version,
            "secondary_emails": list(c.secondary_emails),
            "secondary_phones": list(c.secondary_phones),
        }


class CustomerCreated(CustomerOut):
    possible_duplicates: list[str] = Field(
        description="the ids of the customers this one may be (a duplicate score of at least "
        "CRM_DUPLICATE_THRESHOLD, default 0.85; see GET /customers/{customer_id}/duplicates), best "
        "first; [] when none. A `customer.possible_duplicate` event names them with their scores."
    )


class CustomerListQuery(PageQuery):
    email: Email | None = None
    q: Annotated[str, Field(min_length=2, max_length=200)] | None = Field(
        None, description="name search: at least one word of 2 or more letters or digits"
    )
    tier: Tier | None = Field(None, description="customers of this loyalty tier, highest score first")

    @model_validator(mode="after")
    def _one_filter(self) -> CustomerListQuery:
        given = [name for name in ("email", "q", "tier") if getattr(self, name) is not None]
        if len(given) > 1:
            raise RequestFieldErrors(
                [FieldError(name, f"cannot be combined with {given[0]}") for name in given[1:]]
            )
        return self


class CustomerPage(Out):
    items: list[CustomerOut]
    next_cursor: str | None
