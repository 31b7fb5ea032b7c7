"""Field survivorship of a merge (domain/merges.survive): which value the surviving profile keeps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from chalicelib.api.customer_schemas import Attributes, Tags
from chalicelib.domain.customers import MAX_SECONDARY, Customer
from chalicelib.domain.merges import MAX_ATTRIBUTES, MAX_TAGS, SOURCED, SurvivorshipError, survive

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
MERGED_AT = datetime(2026, 6, 1, 12, tzinfo=UTC)


def customer(customer_id: str, **fields) -> Customer:
    return Customer(id=customer_id, created_at=CREATED, updated_at=CREATED, version=3, **fields)


SURVIVOR = customer("cus_s", name="Jyrki Mäkelä", locale="fi-FI")
MERGED = customer("cus_m", name="Jyrki Makela", locale="fi")


def test_a_field_empty_on_the_survivor_takes_the_merged_customers_value():
    merged = replace(MERGED, preferred_name="Jyrki", email="jyrki@example.fi", phone="+358401234567")
    profile, sources = survive(SURVIVOR, merged)
    assert (profile.preferred_name, profile.email, profile.phone) == (
        "Jyrki",
        "jyrki@example.fi",
        "+358401234567",
    )
    assert sources["preferred_name"] == sources["email"] == sources["phone"] == "merged"
    # Nothing was left over to keep as a secondary one.
    assert profile.secondary_emails == profile.secondary_phones == ()


def test_a_field_the_survivor_has_keeps_the_survivors_value_and_the_name_and_locale_stay():
    survivor = replace(SURVIVOR, preferred_name="Jyrki", email="j.makela@example.fi")
    merged = replace(MERGED, preferred_name="Jyke", email="jyrki@example.fi")
    profile, sources = survive(survivor, merged)
    assert (profile.name, profile.locale, profile.preferred_name) == ("Jyrki Mäkelä", "fi-FI", "Jyrki")
    assert profile.email == "j.makela@example.fi"
    assert {sources[f] for f in ("name", "locale", "preferred_name", "email")} == {"survivor"}
    assert profile.id == "cus_s" and profile.version == 3 and profile.created_at == CREATED


def test_fields_override_the_rule_per_field_but_never_choose_an_empty_value():
    survivor = replace(SURVIVOR, preferred_name="Jyrki", email="j.makela@example.fi")
    merged = replace(MERGED, email="jyrki@example.fi")
    profile, sources = survive(
        survivor,
        merged,
        {"name": "merged", "locale": "merged", "email": "merged", "preferred_name": "merged"},
    )
    assert (profile.name, profile.locale, profile.email) == ("Jyrki Makela", "fi", "jyrki@example.fi")
    assert profile.secondary_emails == ("j.makela@example.fi",)
    # The merged customer has no preferred name: the survivor's stays.
    assert profile.preferred_name == "Jyrki" and sources["preferred_name"] == "survivor"
    assert sources["name"] == sources["locale"] == sources["email"] == "merged"


def test_the_address_and_number_not_kept_become_secondary_ones_once_each_without_the_primary():
    survivor = replace(
        SURVIVOR,
        email="asa@example.se",
        phone="+46701234567",
        secondary_emails=("old@example.se",),
        secondary_phones=("+46707654321",),
    )
    merged = replace(
        MERGED,
        email="ASA.OBERG@example.se",
        phone="+46701234567",  # the same number: kept once, as the primary
        secondary_emails=("Old@Example.se", "asa@example.se", "third@example.se"),
    )
    profile, _ = survive(survivor, merged)
    assert profile.email == "asa@example.se" and profile.phone == "+46701234567"
    # Addresses compare by their uniqueness key (case): "Old@Example.se" is "old@example.se".
    assert profile.secondary_emails == ("old@example.se", "third@example.se", "ASA.OBERG@example.se")
    assert profile.secondary_phones == ("+46707654321",)
    assert profile.email_keys[0] == "asa@example.se" and len(profile.email_keys) == 4


def test_more_secondary_addresses_than_a_profile_keeps_is_refused_naming_them():
    survivor = replace(
        SURVIVOR, email="a@example.si", secondary_emails=tuple(f"s{i}@example.si" for i in range(3))
    )
    merged = replace(
        MERGED, email="b@example.si", secondary_emails=tuple(f"m{i}@example.si" for i in range(2))
    )
    with pytest.raises(SurvivorshipError) as refused:
        survive(survivor, merged)
    assert refused.value.field == "secondary_emails" and str(MAX_SECONDARY) in refused.value.message
    phones = replace(
        SURVIVOR, phone="+38640123456", secondary_phones=tuple(f"+3864012345{i}" for i in range(5))
    )
    with pytest.raises(SurvivorshipError) as refused:
        survive(phones, replace(MERGED, phone="+38641999888"))
    assert refused.value.field == "secondary_phones"


def test_tags_are_united_with_the_survivors_first_and_held_to_the_profile_limit():
    profile, _ = survive(
        replace(SURVIVOR, tags=("vip", "oulu")), replace(MERGED, tags=("oulu", "newsletter"))
    )
    assert profile.tags == ("vip", "oulu", "newsletter")
    many = replace(MERGED, tags=tuple(f"m{i}" for i in range(MAX_TAGS)))
    with pytest.raises(SurvivorshipError) as refused:
        survive(replace(SURVIVOR, tags=("vip",)), many)
    assert refused.value.field == "tags"


def test_attributes_are_merged_with_the_survivor_winning_per_key_and_held_to_the_limit():
    survivor = replace(SURVIVOR, attributes={"shoe_size": "44", "city": "Oulu"})
    merged = replace(MERGED, attributes={"shoe_size": "43", "club": "HIFK"})
    profile, _ = survive(survivor, merged)
    assert profile.attributes == {"shoe_size": "44", "city": "Oulu", "club": "HIFK"}
    many = replace(MERGED, attributes={f"k{i}": "v" for i in range(MAX_ATTRIBUTES)})
    with pytest.raises(SurvivorshipError) as refused:
        survive(survivor, many)
    assert refused.value.field == "attributes"


@pytest.mark.parametrize(
    ("mine", "theirs", "kept", "source"),
    [
        (True, True, True, "survivor"),
        (True, False, False, "merged"),
        (False, True, False, "survivor"),
        (False, False, False, "survivor"),
    ],
)
def test_marketing_consent_holds_only_if_both_gave_it(mine, theirs, kept, source):
    profile, sources = survive(
        replace(SURVIVOR, marketing_consent=mine), replace(MERGED, marketing_consent=theirs)
    )
    assert profile.marketing_consent is kept and sources["marketing_consent"] == source


def test_the_sources_name_every_sourced_field_and_the_merge_time_is_the_update_time():
    profile, sources = survive(SURVIVOR, MERGED, at=MERGED_AT)
    assert set(sources) == set(SOURCED)
    assert profile.updated_at == MERGED_AT


def test_the_limits_are_those_of_the_create_and_patch_schemas():
    assert TypeAdapter(Tags).json_schema()["maxItems"] == MAX_TAGS
    assert TypeAdapter(Attributes).json_schema()["maxProperties"] == MAX_ATTRIBUTES


texts = st.one_of(st.none(), st.text(alphabet="abcåäö", min_size=1, max_size=5))


@given(texts, texts, st.booleans(), st.booleans(), st.sampled_from(["survivor", "merged"]))
def test_no_field_the_two_have_between_them_is_emptied_and_consent_is_never_gained(
    mine, theirs, my_consent, their_consent, side
):
    survivor = replace(SURVIVOR, preferred_name=mine, marketing_consent=my_consent)
    merged = replace(MERGED, preferred_name=theirs, marketing_consent=their_consent)
    profile, sources = survive(survivor, merged, {"preferred_name": side})
    assert (profile.preferred_name is None) == (mine is None and theirs is None)
    assert profile.preferred_name == (theirs if sources["preferred_name"] == "merged" else mine)
    assert profile.marketing_consent <= (my_consent and their_consent)
