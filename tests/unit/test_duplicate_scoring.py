"""Duplicate scoring: canonical addresses, name folding in the seed articles' five languages,
and the rule that a name alone never outweighs a name with a contact detail."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain import duplicates
from chalicelib.domain.customers import Customer
from chalicelib.domain.duplicates import canonical_email, combine, compare, name_key, name_similarity

AT = datetime(2026, 11, 26, tzinfo=UTC)


def person(name: str, customer_id: str = "cus_other", **fields) -> Customer:
    return Customer(id=customer_id, name=name, created_at=AT, updated_at=AT, **fields)


@pytest.mark.parametrize(
    ("address", "mailbox"),
    [
        ("Anna.Svensson+shop@gmail.com", "annasvensson@gmail.com"),
        ("a.n.n.a.svensson@googlemail.com", "annasvensson@gmail.com"),
        ("anna+news@outlook.com", "anna@outlook.com"),
        ("an.na+news@outlook.com", "an.na@outlook.com"),  # Outlook keeps dots
        ("jyrki.makela+x@example.fi", "jyrki.makela+x@example.fi"),  # unknown rules: whole
        ("ASA@Exempel.SE", "asa@exempel.se"),
        ("+only@gmail.com", "+only@gmail.com"),  # nothing would be left of the local part
    ],
)
def test_an_address_is_reduced_to_its_mailbox_only_where_the_provider_ignores_dots_or_tags(address, mailbox):
    assert canonical_email(address) == mailbox


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Åsa Öberg", "Asa Oberg"),  # Swedish
        ("Jyrki Mäkelä", "Jyrki Makela"),  # Finnish
        ("Saša Kovačič", "Sasa Kovacic"),  # Slovenian č, š
        ("Žiga Čeh", "ziga ceh"),  # Slovenian ž
        ("Cruz Maria", "María Cruz"),  # Tagalog order swapped
        ("Eleanor Whitfield", "WHITFIELD Eleanor"),  # English
    ],
)
def test_names_that_differ_only_by_case_accents_and_word_order_share_a_name_key(a, b):
    assert name_key(a) == name_key(b)
    assert name_similarity(a, b) == 1.0
    match = compare(person(a, "cus_a"), person(b))
    assert match is not None and [(r.field, r.kind) for r in match.reasons] == [("name", "normalised")]
    assert match.score == duplicates.NAME_WEIGHT


def test_a_name_written_the_same_but_for_case_is_an_exact_name():
    match = compare(person("Maria Dela Cruz", "cus_a"), person("maria dela cruz"))
    assert match is not None and match.reasons[0].kind == "exact"


def test_an_abbreviated_tagalog_name_is_similar_but_not_the_same():
    similarity = name_similarity("Ma. Luisa dela Cruz", "Maria Luisa Dela Cruz")
    assert 0.85 < similarity < 1
    match = compare(person("Ma. Luisa dela Cruz", "cus_a"), person("Maria Luisa Dela Cruz"))
    assert match is not None and [(r.field, r.kind) for r in match.reasons] == [("name", "similar")]


def test_names_sharing_only_a_first_name_are_no_evidence():
    assert compare(person("Jyrki Mäkelä", "cus_a"), person("Jyrki Virtanen")) is None


def test_the_same_gmail_mailbox_and_name_score_above_the_threshold_with_both_reasons():
    me = person("Åsa Öberg", "cus_a", email="asa.oberg+butik@gmail.com")
    match = compare(me, person("Asa Oberg", email="asaoberg@googlemail.com"))
    assert match is not None
    assert [(r.field, r.kind) for r in match.reasons] == [("email", "normalised"), ("name", "normalised")]
    assert "asaoberg@gmail.com" in match.reasons[0].detail
    assert match.score == round(1 - (1 - 0.85) * (1 - 0.7), 4) >= duplicates.DEFAULT_THRESHOLD


def test_a_shared_phone_among_the_secondary_numbers_is_exact_evidence():
    me = person("Eleanor Whitfield", "cus_a", phone="+447700900123")
    other = person("Ellie Brook", phone="+46701234567", secondary_phones=("+447700900123",))
    match = compare(me, other)
    assert match is not None and [(r.field, r.kind) for r in match.reasons] == [("phone", "exact")]
    assert match.score == duplicates.PHONE_EXACT


def test_an_address_of_both_is_exact_evidence():
    match = compare(person("A", "cus_a", email="Anna@Exempel.se"), person("B", email="anna@exempel.se"))
    assert match is not None and match.reasons[0].kind == "exact" and match.score == duplicates.EMAIL_EXACT


def test_ranking_is_best_first_then_by_id():
    me = person("Åsa Öberg", "cus_me", phone="+46701234567")
    found = [
        compare(me, person("Asa Oberg", "cus_b")),
        compare(me, person("Åsa Öberg", "cus_c", phone="+46701234567")),
        compare(me, person("Asa Oberg", "cus_a")),
    ]
    assert [m.customer_id for m in duplicates.ranked([m for m in found if m])] == ["cus_c", "cus_a", "cus_b"]


weights = st.floats(min_value=0, max_value=1)
contact_weights = st.sampled_from(
    [duplicates.EMAIL_EXACT, duplicates.EMAIL_NORMALISED, duplicates.PHONE_EXACT]
)


@given(name_alone=weights, name=weights, contact=contact_weights, email_too=st.booleans())
def test_a_name_alone_never_scores_above_a_name_with_a_contact_detail(name_alone, name, contact, email_too):
    with_contact = combine(contact, duplicates.PHONE_EXACT if email_too else 0.0, name)
    assert combine(0.0, 0.0, name_alone) < with_contact
    assert combine(0.0, 0.0, name_alone) <= duplicates.NAME_WEIGHT < duplicates.DEFAULT_THRESHOLD


@given(email=weights, phone=weights, name=weights)
def test_every_score_is_between_0_and_1_and_grows_with_each_piece_of_evidence(email, phone, name):
    score = combine(email, phone, name)
    assert 0 <= score <= 1
    assert score >= max(combine(email, 0, 0), combine(0, phone, 0), combine(0, 0, name))


@given(st.text(min_size=1, max_size=300))
def test_a_name_key_of_any_name_fits_a_partition_key(name):
    key = name_key(name)
    assert key is None or len(f"NAMEKEY#{key}".encode()) <= 2048
