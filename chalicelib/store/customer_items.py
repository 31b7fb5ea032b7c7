"""How a customer is stored: the profile item and its name-search entries, both ways, and the
condition that a profile exists, for the writes that need their customer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.domain import duplicates
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.customers import Customer
from chalicelib.store.keys import (
    CANONICAL_EMAIL_PREFIX,
    CUSTOMERS_LIST_PK,
    NAME_KEY_PREFIX,
    PHONE_PREFIX,
    PROFILE_SK,
    customer_pk,
    name_token_keys,
)
from chalicelib.store.models import CustomerModel, MatchKeyModel, NameTokenModel

if TYPE_CHECKING:
    from pynamodb.transactions import TransactWrite


def customer_from_item(item: CustomerModel) -> Customer:
    return Customer(
        id=item.id,
        name=item.name,
        preferred_name=item.preferred_name,
        email=item.email,
        phone=item.phone,
        locale=item.locale,
        marketing_consent=bool(item.marketing_consent),
        tags=tuple(item.tags or ()),
        attributes=dict(item.attributes.as_dict() if item.attributes else {}),
        created_at=parse_rfc3339(item.created_at),
        updated_at=parse_rfc3339(item.updated_at),
        version=int(item.version or 0),
        secondary_emails=tuple(item.secondary_emails or ()),
        secondary_phones=tuple(item.secondary_phones or ()),
    )


def customer_item(customer: Customer) -> CustomerModel:
    item = CustomerModel(
        pk=customer_pk(customer.id),
        sk=PROFILE_SK,
        list_pk=CUSTOMERS_LIST_PK,
        list_sk=customer.id,
        id=customer.id,
        name=customer.name,
        preferred_name=customer.preferred_name,
        email=customer.email,
        phone=customer.phone,
        locale=customer.locale,
        marketing_consent=customer.marketing_consent,
        tags=list(customer.tags),
        search_words=customer.search_words,
        created_at=to_rfc3339(customer.created_at),
        updated_at=to_rfc3339(customer.updated_at),
    )
    item.attributes = dict(customer.attributes)
    if customer.secondary_emails:
        item.secondary_emails = list(customer.secondary_emails)
    if customer.secondary_phones:
        item.secondary_phones = list(customer.secondary_phones)
    if customer.version:
        item.version = customer.version
    return item


def token_items(customer: Customer) -> list[NameTokenModel | MatchKeyModel]:
    """The profile's lookup items other than its email addresses': name-search entries (at
    most names.MAX_INDEXED_WORDS) and duplicate detection's (match_keys)."""
    words = customer.search_words
    tokens: list[NameTokenModel | MatchKeyModel] = [
        NameTokenModel(*name_token_keys(word, customer.id), customer_id=customer.id, words=words)
        for word in words
    ]
    return tokens + [MatchKeyModel(pk, customer.id, customer_id=customer.id) for pk in match_keys(customer)]


def match_keys(customer: Customer) -> list[str]:
    """Duplicate detection's lookup keys of a profile: one per phone number and canonical
    address (at most 1 + MAX_SECONDARY of each) and one for the name."""
    keys = [f"{PHONE_PREFIX}{number}" for number in duplicates.phones(customer)]
    keys += [f"{CANONICAL_EMAIL_PREFIX}{mailbox}" for mailbox in duplicates.canonical_emails(customer)]
    name = duplicates.name_key(customer.name)
    return keys + ([f"{NAME_KEY_PREFIX}{name}"] if name else [])


def check_profile_exists(t: TransactWrite, customer_id: str) -> None:
    """In `t`: the condition that the customer's profile exists. DynamoDB serializes it with
    the transaction that deletes or erases the profile: the write commits before, or fails."""
    t.condition_check(
        CustomerModel, customer_pk(customer_id), PROFILE_SK, condition=CustomerModel.pk.exists()
    )
