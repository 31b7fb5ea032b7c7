"""Duplicate detection over HTTP: candidates by phone, mailbox and name in the seed articles'
five languages, the 201's `possible_duplicates`, not-duplicate records, and a cost that does not
grow with the number of customers."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from tests.functional.conftest import assert_problem

PHONE = "+46701234567"


def create(api, **fields) -> dict:
    reply = api.post("/customers", fields)
    assert reply.status == 201, reply.json
    return reply.json


def duplicates(api, customer_id: str, query: str = "") -> list[dict]:
    reply = api.get(f"/customers/{customer_id}/duplicates{query}")
    assert reply.status == 200, reply.json
    return reply.json["items"]


def reasons(item: dict) -> list[tuple[str, str]]:
    return [(r["field"], r["kind"]) for r in item["reasons"]]


def test_the_same_person_with_another_spelling_and_phone_format_is_a_possible_duplicate(api):
    first = create(api, name="Åsa Öberg", phone="+46 70-123 45 67")
    assert first["possible_duplicates"] == []
    second = create(api, name="Asa Oberg", phone=PHONE, email="asa@exempel.se")
    assert second["possible_duplicates"] == [first["id"]]

    [found] = duplicates(api, second["id"])
    assert (found["customer_id"], found["name"], found["email"], found["phone"]) == (
        first["id"],
        "Åsa Öberg",
        None,
        PHONE,
    )
    assert reasons(found) == [("phone", "exact"), ("name", "normalised")]
    assert found["score"] == round(1 - (1 - 0.8) * (1 - 0.7), 4)
    # Either way round.
    [back] = duplicates(api, first["id"])
    assert back["customer_id"] == second["id"] and back["score"] == found["score"]


def test_one_gmail_mailbox_written_with_dots_and_a_tag_is_a_possible_duplicate(api):
    first = create(api, name="Jyrki Mäkelä", email="jyrki.makela@gmail.com", locale="fi")
    second = create(api, name="Jyrki Makela", email="JyrkiMakela+kauppa@googlemail.com")
    assert second["possible_duplicates"] == [first["id"]]
    [found] = duplicates(api, second["id"])
    assert reasons(found) == [("email", "normalised"), ("name", "normalised")]
    assert "jyrkimakela@gmail.com" in found["reasons"][0]["detail"]


def test_tags_at_a_domain_not_known_to_ignore_them_are_another_mailbox(api):
    create(api, name="Eleanor Whitfield", email="eleanor@example.co.uk")
    second = create(api, name="Nora Quill", email="eleanor+shop@example.co.uk")
    assert second["possible_duplicates"] == [] and duplicates(api, second["id"]) == []


def test_an_exact_email_is_still_409(api):
    create(api, name="Saša Kovačič", email="sasa@primer.si")
    assert_problem(api.post("/customers", {"name": "Sasa Kovacic", "email": "SASA@primer.si"}), 409, "email")


def test_a_name_alone_is_listed_but_never_a_possible_duplicate(api):
    first = create(api, name="Maria Cruz")
    second = create(api, name="Cruz María")
    assert second["possible_duplicates"] == []
    [found] = duplicates(api, second["id"])
    assert found["customer_id"] == first["id"]
    assert reasons(found) == [("name", "normalised")] and found["score"] == 0.7


@pytest.mark.parametrize(
    ("name", "other", "kind"),
    [
        ("Ma. Luisa dela Cruz", "Maria Luisa Dela Cruz", "similar"),  # Tagalog
        ("Žiga Čeh Šuštar", "Ziga Ceh Sustar", "normalised"),  # Slovenian
        ("Eleanor Whitfield", "Eleanor Whitfeld", "similar"),  # English, a typo
        ("Ingegärd Pålsson", "ingegard palsson", "normalised"),  # Swedish
    ],
)
def test_similar_names_are_found_through_the_name_search_index(api, name, other, kind):
    first = create(api, name=name)
    second = create(api, name=other)
    [found] = duplicates(api, second["id"])
    assert found["customer_id"] == first["id"] and reasons(found) == [("name", kind)]


def test_unrelated_customers_and_the_customer_itself_are_never_listed(api):
    me = create(api, name="Jyrki Mäkelä", phone="+358401234567")
    create(api, name="Jyrki Virtanen")
    create(api, name="Eleanor Whitfield")
    assert duplicates(api, me["id"]) == []


def test_the_list_is_best_first_and_pages_through_the_same_ranking(api):
    me = create(api, name="Åsa Öberg", phone=PHONE)
    same = create(api, name="Asa Oberg", phone=PHONE)
    phone_only = create(api, name="Gunnel Lind", phone=PHONE)
    name_only = create(api, name="Öberg Åsa")
    ranking = [d["customer_id"] for d in duplicates(api, me["id"])]
    assert ranking == [same["id"], phone_only["id"], name_only["id"]]
    assert [d["customer_id"] for d in api.walk(f"/customers/{me['id']}/duplicates", 1)] == ranking
    cursor = api.get(f"/customers/{me['id']}/duplicates?limit=1").json["next_cursor"]
    assert_problem(api.get(f"/customers/{same['id']}/duplicates?cursor={cursor}"), 400, "cursor")


def test_duplicates_of_an_unknown_customer_are_404(api):
    assert_problem(api.get("/customers/cus_nobody/duplicates"), 404)


def test_a_changed_or_deleted_profile_is_found_by_what_it_has_now(api):
    me = create(api, name="Nguyễn Văn An", phone=PHONE)
    other = create(api, name="Eleanor Whitfield", phone="+358401234567")
    assert duplicates(api, me["id"]) == []
    assert api.patch(f"/customers/{other['id']}", {"phone": PHONE}).status == 200
    assert [d["customer_id"] for d in duplicates(api, me["id"])] == [other["id"]]
    assert api.patch(f"/customers/{other['id']}", {"phone": None}).status == 200
    assert duplicates(api, me["id"]) == []
    assert api.patch(f"/customers/{other['id']}", {"name": "Nguyen Van An"}).status == 200
    assert [d["customer_id"] for d in duplicates(api, me["id"])] == [other["id"]]
    assert api.delete(f"/customers/{other['id']}").status == 204
    assert duplicates(api, me["id"]) == []


def test_customers_recorded_as_different_people_are_never_suggested_again_either_way(api):
    me = create(api, name="Åsa Öberg", phone=PHONE)
    other = create(api, name="Asa Oberg", phone=PHONE)
    third = create(api, name="Åsa Öberg", phone=PHONE)
    assert set(third["possible_duplicates"]) == {me["id"], other["id"]}

    assert api.post(f"/customers/{me['id']}/not-duplicate", {"customer_id": other["id"]}).status == 204
    assert api.post(f"/customers/{other['id']}/not-duplicate", {"customer_id": me["id"]}).status == 204
    assert api.post(f"/customers/{me['id']}/not-duplicate", {"customer_id": other["id"]}).status == 204
    assert [d["customer_id"] for d in duplicates(api, me["id"])] == [third["id"]]
    assert [d["customer_id"] for d in duplicates(api, other["id"])] == [third["id"]]
    # One audit entry: recording it again changed nothing.
    trail = api.get(f"/customers/{me['id']}/audit").json["items"]
    assert [e["action"] for e in trail].count("not_duplicate") == 1


def test_not_duplicate_needs_two_existing_different_customers(api):
    me = create(api, name="Åsa Öberg")
    missing = assert_problem(
        api.post(f"/customers/{me['id']}/not-duplicate", {"customer_id": "cus_nobody"}), 404, "customer_id"
    )
    assert "cus_nobody" in missing["detail"]
    unknown = assert_problem(api.post("/customers/cus_nobody/not-duplicate", {"customer_id": me["id"]}), 404)
    assert "cus_nobody" in unknown["detail"] and "errors" not in unknown
    assert_problem(
        api.post(f"/customers/{me['id']}/not-duplicate", {"customer_id": me["id"]}), 422, "customer_id"
    )
    assert_problem(api.post(f"/customers/{me['id']}/not-duplicate", {}), 400, "customer_id")
    other = create(api, name="Gunnel Lind")
    assert api.delete(f"/customers/{other['id']}").status == 204
    assert_problem(
        api.post(f"/customers/{me['id']}/not-duplicate", {"customer_id": other["id"]}), 404, "customer_id"
    )


def test_detection_is_for_staff(api):
    me = create(api, name="Åsa Öberg")
    customer = api.as_role("customer", me["id"])
    assert_problem(customer.get(f"/customers/{me['id']}/duplicates"), 403)
    assert_problem(customer.post(f"/customers/{me['id']}/not-duplicate", {"customer_id": "cus_x"}), 403)


def test_the_threshold_is_a_setting(api, monkeypatch):
    from chalicelib import wiring

    settings = wiring.get_settings()
    monkeypatch.setattr(wiring, "get_settings", lambda: replace(settings, duplicate_threshold=0.95))
    create(api, name="Åsa Öberg", phone=PHONE)
    assert create(api, name="Asa Oberg", phone=PHONE)["possible_duplicates"] == []  # 0.94


def _dynamodb_requests(monkeypatch) -> Counter:
    import botocore.client

    counted: Counter = Counter()
    real = botocore.client.BaseClient._make_api_call

    def counting(self, operation, params):
        if self.meta.service_model.service_name == "dynamodb":
            counted[operation] += 1
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return counted


def test_detection_costs_the_same_requests_however_many_customers_share_a_name_or_number(api, monkeypatch):
    from tests.functional.conftest import bulk_customers

    me = create(api, name="Maria Santos", phone="+639171234567", email="maria.santos@example.ph")
    create(api, name="Maria Santos", phone="+639171234567")
    counted = _dynamodb_requests(monkeypatch)
    duplicates(api, me["id"])
    few = dict(counted)

    # Thirty more who share the number and both words of the name, profiles and lookups alike.
    for _ in range(30):
        create(api, name="Santos Maria", phone="+639171234567")
    bulk_customers(50, prefix="Maria")
    counted.clear()
    many = duplicates(api, me["id"])
    assert dict(counted) == few
    # The profile; a Query per number, mailbox, name key and name word (each with a Limit) and
    # of the not-duplicate records; the candidates' profiles in one batch.
    assert few == {"GetItem": 1, "Query": 6, "BatchGetItem": 1}
    # Each key's oldest customers are read first.
    assert 2 < len(many) <= 25 and many[0]["score"] >= 0.94
