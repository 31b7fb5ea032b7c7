from __future__ import annotations

import pytest

from tests.functional.conftest import assert_problem, bulk_customers

NAMES = ["Åsa Öberg", "Jyrki Mäkelä", "Saša Kovačič", "Maria Dela Cruz", "Nguyễn Văn An"]


def test_creating_a_customer_returns_201_with_location_etag_and_server_fields(api):
    reply = api.post(
        "/customers",
        {
            "name": "Jyrki Mäkelä",
            "preferred_name": "Jyrki",
            "email": "Jyrki.Makela@Example.com",
            "phone": "+358 40 123 4567",
            "locale": "fi-fi",
            "marketing_consent": True,
            "tags": ["vip", "newsletter"],
            "attributes": {"loyalty_card": "FI-2231"},
        },
    )
    assert reply.status == 201
    body = reply.json
    assert reply.headers["location"] == f"/customers/{body['id']}"
    assert reply.headers["etag"] == '"v1"'
    assert body["name"] == "Jyrki Mäkelä"
    assert body["email"] == "Jyrki.Makela@Example.com"
    assert body["phone"] == "+358401234567"
    assert body["locale"] == "fi-FI"
    assert body["marketing_consent"] is True
    assert body["tags"] == ["vip", "newsletter"]
    assert body["attributes"] == {"loyalty_card": "FI-2231"}
    assert body["version"] == 1
    assert body["created_at"] == body["updated_at"] and body["created_at"].endswith("Z")
    assert body.pop("possible_duplicates") == []
    read = api.get(f"/customers/{body['id']}").json
    assert read.pop("loyalty") == {
        "score": 0,
        "tier": "bronze",
        "recency_days": None,
        "frequency": 0,
        "monetary": "0.00",
        "updated_at": None,
    }
    assert read == body


def test_defaults_are_english_without_marketing_consent(api):
    body = api.create_customer(name="Eleanor Whitfield")
    assert (body["locale"], body["marketing_consent"], body["tags"], body["attributes"]) == (
        "en",
        False,
        [],
        {},
    )
    assert body["preferred_name"] is None and body["email"] is None and body["phone"] is None


@pytest.mark.parametrize("name", [*NAMES, "山田 太郎", "Ἀριστοτέλης", "x" * 200])
def test_names_in_any_script_are_kept_exactly(api, name):
    assert api.create_customer(name=name)["name"] == name


def test_every_invalid_field_is_named_at_once(api):
    reply = api.post(
        "/customers",
        {
            "name": "x" * 201,
            "email": "not-an-email",
            "phone": "0701234567",
            "locale": "not a locale",
            "marketing_consent": "yes",
            "tags": ["t" * 41],
            "attributes": {f"k{i}": "v" for i in range(51)},
            "favourite_colour": "blue",
        },
    )
    problem = assert_problem(
        reply,
        400,
        "name",
        "email",
        "phone",
        "locale",
        "marketing_consent",
        "tags.0",
        "attributes",
        "favourite_colour",
    )
    assert {"field": "favourite_colour", "message": "is not a known field"} in problem["errors"]
    assert api.get("/customers").json["items"] == []


def test_a_phone_number_no_country_has_and_an_unregistered_locale_are_400_by_name(api):
    reply = api.post("/customers", {"name": "Åsa Öberg", "phone": "+10000000", "locale": "xx-YY"})
    errors = {e["field"]: e["message"] for e in assert_problem(reply, 400, "phone", "locale")["errors"]}
    assert errors["phone"] == "is not a valid number for country code +1"
    assert errors["locale"].startswith("must use registered subtags")
    created = api.create_customer(name="Åsa Öberg", phone="+46 070-174 06 05", locale="SV-se")
    assert (created["phone"], created["locale"]) == ("+46701740605", "sv-SE")
    assert len(api.get("/customers").json["items"]) == 1


def test_a_missing_or_blank_name_is_rejected(api):
    assert_problem(api.post("/customers", {}), 400, "name")
    assert_problem(api.post("/customers", {"name": "   "}), 400, "name")


def test_server_fields_cannot_be_set_by_the_client(api):
    assert_problem(api.post("/customers", {"name": "A", "id": "x", "version": 9}), 400, "id", "version")


def test_a_second_customer_with_the_same_email_in_other_case_gets_409(api):
    api.create_customer(email="asa.oberg@example.com")
    reply = api.post("/customers", {"name": "Other", "email": "ASA.Oberg@EXAMPLE.com"})
    assert_problem(reply, 409, "email")
    assert len(api.get("/customers").json["items"]) == 1


def test_an_unknown_customer_is_404(api):
    assert_problem(api.get("/customers/cus_nope"), 404)
    assert_problem(api.patch("/customers/cus_nope", {"name": "X"}), 404)
    assert_problem(api.delete("/customers/cus_nope"), 404)


def test_patch_changes_only_the_fields_given_and_bumps_version(api):
    c = api.create_customer(preferred_name="Åsa", email="asa@example.com", tags=["vip"])
    reply = api.patch(f"/customers/{c['id']}", {"locale": "sv", "preferred_name": None})
    assert reply.status == 200
    body = reply.json
    assert body["locale"] == "sv" and body["preferred_name"] is None
    assert body["email"] == "asa@example.com" and body["tags"] == ["vip"] and body["name"] == c["name"]
    assert body["version"] == 2 and reply.headers["etag"] == '"v2"'
    assert body["updated_at"] >= c["updated_at"] and body["created_at"] == c["created_at"]


def test_patch_rejects_clearing_a_required_field_and_unknown_fields(api):
    c = api.create_customer()
    assert_problem(api.patch(f"/customers/{c['id']}", {"name": None, "locale": None}), 400, "name", "locale")
    assert_problem(api.patch(f"/customers/{c['id']}", {"version": 5}), 400, "version")
    read = api.get(f"/customers/{c['id']}").json
    assert read | {"loyalty": None, "possible_duplicates": []} == c | {"loyalty": None}


def test_a_stale_if_match_is_rejected_with_412(api):
    c = api.create_customer()
    assert api.patch(f"/customers/{c['id']}", {"locale": "sv"}, headers={"If-Match": '"v1"'}).status == 200
    reply = api.patch(f"/customers/{c['id']}", {"locale": "fi"}, headers={"If-Match": '"v1"'})
    assert_problem(reply, 412)
    assert api.get(f"/customers/{c['id']}").json["locale"] == "sv"


def test_a_malformed_if_match_is_400(api):
    c = api.create_customer()
    assert_problem(
        api.patch(f"/customers/{c['id']}", {"locale": "sv"}, headers={"If-Match": "v1"}), 400, "If-Match"
    )


def test_two_patches_with_the_same_if_match_give_exactly_one_412(api):
    c = api.create_customer()
    etag = api.get(f"/customers/{c['id']}").headers["etag"]
    first = api.patch(f"/customers/{c['id']}", {"preferred_name": "A"}, headers={"If-Match": etag})
    second = api.patch(f"/customers/{c['id']}", {"locale": "fi"}, headers={"If-Match": etag})
    assert sorted([first.status, second.status]) == [200, 412]


def test_concurrent_updates_racing_on_the_same_version_never_lose_one(api, monkeypatch):
    """A write that loses the race on the version condition re-reads and applies on top."""
    from chalicelib.store.customers import CustomerRepository

    c = api.create_customer()
    original_update = CustomerRepository.update
    raced = {"done": False}

    def update_after_a_rival(self, before, after, audit=None):
        if not raced["done"]:
            raced["done"] = True
            rival = before.with_changes({"tags": ("rival",)}, after.updated_at)
            original_update(self, before, rival)
        return original_update(self, before, after, audit)

    monkeypatch.setattr(CustomerRepository, "update", update_after_a_rival)
    reply = api.patch(f"/customers/{c['id']}", {"locale": "sl"})
    assert reply.status == 200
    body = api.get(f"/customers/{c['id']}").json
    assert body["tags"] == ["rival"] and body["locale"] == "sl" and body["version"] == 3


def test_the_same_race_with_if_match_is_412_not_a_lost_update(api, monkeypatch):
    from chalicelib.store.customers import CustomerRepository

    c = api.create_customer()
    original_update = CustomerRepository.update

    def update_after_a_rival(self, before, after, audit=None):
        original_update(self, before, before.with_changes({"tags": ("rival",)}, after.updated_at))
        return original_update(self, before, after, audit)

    monkeypatch.setattr(CustomerRepository, "update", update_after_a_rival)
    assert_problem(api.patch(f"/customers/{c['id']}", {"locale": "sl"}, headers={"If-Match": '"v1"'}), 412)
    assert api.get(f"/customers/{c['id']}").json["tags"] == ["rival"]


def test_changing_the_email_keeps_it_unique_and_frees_the_old_one(api):
    a = api.create_customer(email="a@example.com")
    b = api.create_customer(name="B", email="b@example.com")
    assert_problem(api.patch(f"/customers/{b['id']}", {"email": "A@example.com"}), 409, "email")
    assert api.patch(f"/customers/{a['id']}", {"email": "new@example.com"}).status == 200
    assert api.get("/customers?email=a@example.com").json["items"] == []
    assert api.get("/customers?email=NEW@example.com").json["items"][0]["id"] == a["id"]
    assert api.patch(f"/customers/{b['id']}", {"email": "a@example.com"}).status == 200
    assert api.get("/customers?email=a@example.com").json["items"][0]["id"] == b["id"]


def test_removing_the_email_frees_it(api):
    a = api.create_customer(email="a@example.com")
    assert api.patch(f"/customers/{a['id']}", {"email": None}).json["email"] is None
    assert api.post("/customers", {"name": "B", "email": "a@example.com"}).status == 201


def test_lookup_by_email_is_exact_and_case_insensitive(api):
    c = api.create_customer(email="Saša.Kovacic@example.si")
    reply = api.get("/customers?email=saša.kovacic@EXAMPLE.SI")
    assert reply.status == 200
    assert [i["id"] for i in reply.json["items"]] == [c["id"]] and reply.json["next_cursor"] is None
    assert api.get("/customers?email=sasa.kovacic@example.si").json["items"] == []


def test_deleting_a_customer_removes_profile_and_lookups_and_a_second_delete_is_404(api):
    c = api.create_customer(email="gone@example.com", preferred_name="Åsa")
    reply = api.delete(f"/customers/{c['id']}")
    assert reply.status == 204 and reply.body == b""
    assert_problem(api.get(f"/customers/{c['id']}"), 404)
    assert api.get("/customers?email=gone@example.com").json["items"] == []
    assert api.get("/customers?q=asa").json["items"] == []
    assert api.get("/customers").json["items"] == []
    assert_problem(api.delete(f"/customers/{c['id']}"), 404)
    assert api.post("/customers", {"name": "New", "email": "gone@example.com"}).status == 201


def test_deleted_customers_lookup_entries_are_gone_from_the_table(api):
    import boto3

    from chalicelib.config import get_settings

    c = api.create_customer(email="gone@example.com", name="Maria Dela Cruz")
    api.delete(f"/customers/{c['id']}")
    table = boto3.resource("dynamodb").Table(get_settings().customers_table)
    # Only a tombstone without personal data, and the audit trail, stay.
    left = table.scan()["Items"]
    assert {i["sk"].split("#")[0] for i in left} == {"DELETED", "AUDIT"}
    assert all(i["pk"] == f"CUSTOMER#{c['id']}" for i in left)
    tombstone = next(i for i in left if i["sk"] == "DELETED")
    assert sorted(tombstone) == ["deleted_at", "pk", "sk"]


def test_customers_are_listed_newest_first(api):
    ids = [api.create_customer(name=f"Customer {i}")["id"] for i in range(5)]
    assert [c["id"] for c in api.get("/customers").json["items"]] == ids[::-1]


def test_walking_250_customers_page_by_page_returns_each_exactly_once(api):
    ids = set(bulk_customers(250))
    walked = api.walk("/customers", limit=33)
    assert len(walked) == 250 and {c["id"] for c in walked} == ids
    assert [c["id"] for c in walked] == sorted((c["id"] for c in walked), reverse=True)


def test_page_size_defaults_to_25_and_is_bounded(api):
    bulk_customers(30)
    page = api.get("/customers").json
    assert len(page["items"]) == 25 and page["next_cursor"]
    assert_problem(api.get("/customers?limit=0"), 400, "limit")
    assert_problem(api.get("/customers?limit=101"), 400, "limit")
    assert_problem(api.get("/customers?limit=ten"), 400, "limit")
    assert len(api.get("/customers?limit=100").json["items"]) == 30


def test_the_last_page_has_no_cursor(api):
    for i in range(4):
        api.create_customer(name=f"C {i}")
    page = api.get("/customers?limit=4").json
    assert len(page["items"]) == 4 and page["next_cursor"] is None


def test_a_tampered_cursor_or_one_from_another_list_is_400(api):
    c = None
    for i in range(3):
        c = api.create_customer(name=f"Maria {i}")
    cursor = api.get("/customers?limit=1").json["next_cursor"]
    tampered = ("A" if cursor[0] != "A" else "B") + cursor[1:]
    assert_problem(api.get(f"/customers?limit=1&cursor={tampered}"), 400, "cursor")
    assert_problem(api.get("/customers?limit=1&cursor=garbage"), 400, "cursor")
    assert_problem(api.get(f"/customers?q=maria&limit=1&cursor={cursor}"), 400, "cursor")
    assert_problem(api.get(f"/customers/{c['id']}/interactions?cursor={cursor}"), 400, "cursor")


def test_unknown_query_parameters_are_rejected(api):
    assert_problem(api.get("/customers?colour=blue"), 400, "colour")


def test_email_and_q_cannot_be_combined(api):
    assert_problem(api.get("/customers?email=a@example.com&q=asa"), 400, "q")
