from __future__ import annotations

import pytest

from tests.functional.conftest import assert_problem

NAMES = {
    "asa": "Åsa Öberg",
    "jyrki": "Jyrki Mäkelä",
    "sasa": "Saša Kovačič",
    "maria": "Maria Dela Cruz",
    "an": "Nguyễn Văn An",
}


@pytest.fixture
def people(api):
    return {key: api.create_customer(name=name)["id"] for key, name in NAMES.items()}


def _names(reply) -> list[str]:
    assert reply.status == 200, reply.json
    return [c["name"] for c in reply.json["items"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("asa", "Åsa Öberg"),
        ("oberg", "Åsa Öberg"),
        ("ÖBERG", "Åsa Öberg"),
        ("sasa", "Saša Kovačič"),
        ("kovacic", "Saša Kovačič"),
        ("kovač", "Saša Kovačič"),
        ("makela", "Jyrki Mäkelä"),
        ("mäk", "Jyrki Mäkelä"),
        ("nguyen", "Nguyễn Văn An"),
        ("van", "Nguyễn Văn An"),
        ("dela", "Maria Dela Cruz"),
        ("cruz", "Maria Dela Cruz"),
    ],
)
def test_a_prefix_of_any_word_finds_the_name_ignoring_case_and_accents(api, people, query, expected):
    assert _names(api.get(f"/customers?q={query}")) == [expected]


def test_preferred_names_are_searched_too(api):
    api.create_customer(name="Maria Dela Cruz", preferred_name="Ria")
    assert _names(api.get("/customers?q=ria")) == ["Maria Dela Cruz"]


def test_whole_word_matches_come_before_prefix_matches(api):
    api.create_customer(name="Annika Berg")
    api.create_customer(name="Anders Ek")
    api.create_customer(name="Nguyễn Văn An")
    assert _names(api.get("/customers?q=an")) == ["Nguyễn Văn An", "Anders Ek", "Annika Berg"]


def test_several_query_words_must_all_match(api, people):
    api.create_customer(name="Maria Lindqvist")
    assert _names(api.get("/customers?q=maria%20cruz")) == ["Maria Dela Cruz"]
    assert sorted(_names(api.get("/customers?q=maria"))) == ["Maria Dela Cruz", "Maria Lindqvist"]


def test_a_query_shorter_than_two_characters_is_400(api):
    assert_problem(api.get("/customers?q=a"), 400, "q")
    assert_problem(api.get("/customers?q=%20-%20"), 400, "q")


def test_nothing_found_is_an_empty_page(api, people):
    assert api.get("/customers?q=zz").json == {"items": [], "next_cursor": None}


def test_a_customer_matching_by_several_words_appears_once_across_pages(api):
    ids = {api.create_customer(name=f"Mar Mari Maria {i}")["id"] for i in range(5)}
    api.create_customer(name="Marek")
    walked = api.walk("/customers?q=mar", limit=2)
    assert len(walked) == 6
    assert {c["id"] for c in walked} >= ids


def test_renaming_a_customer_updates_search(api):
    c = api.create_customer(name="Åsa Öberg")
    api.patch(f"/customers/{c['id']}", {"name": "Åsa Lindqvist"})
    assert _names(api.get("/customers?q=oberg")) == []
    assert _names(api.get("/customers?q=lindq")) == ["Åsa Lindqvist"]
    assert _names(api.get("/customers?q=asa")) == ["Åsa Lindqvist"]
