"""Campaign definitions and previews over HTTP: the contract of POST/GET/PATCH/DELETE
/campaigns, the checks that refuse a campaign before it can fail at send time, and the preview
of exactly what one customer would get. Runs are in test_campaign_runs.py, unsubscribe links in
test_unsubscribe.py."""

from __future__ import annotations

import pytest

from tests.functional.campaign_helpers import (
    PLAIN_TEMPLATES,
    TEMPLATES,
    campaign_body,
    create_campaign,
    member,
    popular_tea,
    run_now,
    segment,
    sent_mail,
)
from tests.functional.conftest import assert_problem

CAMPAIGN_KEYS = {
    "id",
    "name",
    "segment_id",
    "status",
    "schedule",
    "next_run_at",
    "templates",
    "recommendation",
    "frequency_cap",
    "version",
    "created_at",
    "updated_at",
}
WEEKLY = {"cron": "0 9 * * MON", "timezone": "Europe/Stockholm"}


def _segment_id(api) -> str:
    """A segment that exists (still building: a campaign only needs it to exist)."""
    reply = api.post("/segments", {"name": "Audience", "rules": {"tags_any": ["vip"]}})
    assert reply.status == 201, reply.json
    return reply.json["id"]


def _named(problem: dict) -> set[str]:
    return {error["field"] for error in problem.get("errors", [])}


# Definitions


def test_a_new_campaign_is_a_draft_recommending_any_product_at_most_once_a_week(api):
    segment_id = _segment_id(api)
    reply = api.post("/campaigns", campaign_body(segment_id))
    assert reply.status == 201, reply.json
    created = reply.json
    assert set(created) == CAMPAIGN_KEYS
    assert created["id"].startswith("cmp_")
    assert reply.headers["etag"] == '"v1"' and reply.headers["location"] == f"/campaigns/{created['id']}"
    assert (created["status"], created["recommendation"], created["version"]) == ("draft", "any", 1)
    assert created["frequency_cap"] == {"max_messages": 1, "per_days": 7}
    assert created["schedule"] is None and created["next_run_at"] is None
    assert created["templates"] == TEMPLATES and created["segment_id"] == segment_id
    read = api.get(reply.headers["location"])
    assert read.status == 200 and read.json == created and read.headers["etag"] == '"v1"'


def test_campaigns_are_listed_oldest_first_page_by_page(api):
    segment_id = _segment_id(api)
    ids = [create_campaign(api, segment_id, name=f"Campaign {n}")["id"] for n in range(3)]
    first = api.get("/campaigns?limit=2").json
    assert [c["id"] for c in first["items"]] == ids[:2] and first["next_cursor"]
    assert [c["id"] for c in api.walk("/campaigns", 1)] == ids


def test_a_change_needs_the_current_etag_and_gives_a_new_one(api):
    campaign = create_campaign(api, _segment_id(api))
    path = f"/campaigns/{campaign['id']}"
    assert_problem(api.patch(path, {"name": "Autumn"}, headers={"If-Match": '"v7"'}), 412)
    assert api.get(path).json["name"] == "Spring"
    reply = api.patch(
        path, {"name": "Autumn", "frequency_cap": {"max_messages": 2}}, headers={"If-Match": '"v1"'}
    )
    assert reply.status == 200, reply.json
    assert reply.headers["etag"] == '"v2"' and reply.json["version"] == 2
    assert reply.json["name"] == "Autumn"
    assert reply.json["frequency_cap"] == {"max_messages": 2, "per_days": 7}
    assert_problem(api.patch(path, {"name": "Winter"}, headers={"If-Match": '"v1"'}), 412)
    assert api.get(path).json == reply.json


def test_an_active_campaign_cannot_be_deleted_and_a_draft_or_paused_one_can(api):
    segment_id = _segment_id(api)
    active = create_campaign(api, segment_id, status="active")
    path = f"/campaigns/{active['id']}"
    assert_problem(api.delete(path), 409, "status")
    assert api.get(path).status == 200
    assert api.patch(path, {"status": "paused"}).status == 200
    assert api.delete(path).status == 204
    assert_problem(api.get(path), 404)
    draft = create_campaign(api, segment_id)
    assert api.delete(f"/campaigns/{draft['id']}").status == 204
    assert_problem(api.get(f"/campaigns/{draft['id']}"), 404)
    assert_problem(api.delete(f"/campaigns/{draft['id']}"), 404)
    assert api.walk("/campaigns", 10) == []


def test_a_campaign_for_a_segment_that_does_not_exist_is_422(api):
    problem = assert_problem(api.post("/campaigns", campaign_body("seg_NOSUCHSEGMENT")), 422, "segment_id")
    assert _named(problem) == {"segment_id"}
    campaign = create_campaign(api, _segment_id(api))
    reply = api.patch(f"/campaigns/{campaign['id']}", {"segment_id": "seg_NOSUCHSEGMENT"})
    assert_problem(reply, 422, "segment_id")
    assert api.walk("/campaigns", 10) == [campaign]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"schedule": {"cron": "0 9 * *", "timezone": "Europe/Stockholm"}}, "schedule.cron"),
        ({"schedule": {"cron": "0 25 * * MON", "timezone": "Europe/Stockholm"}}, "schedule.cron"),
        ({"schedule": {"cron": "0 9 30 2 *", "timezone": "Europe/Stockholm"}}, "schedule.cron"),
        ({"schedule": {"cron": "0 9 * * MON", "timezone": "Europe/Stokholm"}}, "schedule.timezone"),
        ({"schedule": {"cron": "0 9 * * MON", "timezone": "posix/Europe/Stockholm"}}, "schedule.timezone"),
        ({"schedule": {"cron": "0 9 * * MON"}}, "schedule"),
        ({"schedule": {"at": "2026-12-01T09:00:00"}}, "schedule.at"),
        ({"schedule": {"at": "next monday"}}, "schedule.at"),
        (
            {"templates": TEMPLATES | {"sv": {"subject": "Hej", "body": "Hej {{ foo }}"}}},
            "templates.sv.body",
        ),
        (
            {"templates": TEMPLATES | {"sv": {"subject": "Hej {{ name|upper }}", "body": "Hej"}}},
            "templates.sv.subject",
        ),
        ({"templates": {"sv": TEMPLATES["sv"]}}, "templates"),
        ({"templates": TEMPLATES | {"xx-nope": TEMPLATES["en"]}}, "templates.xx-nope"),
        ({"frequency_cap": {"max_messages": 0, "per_days": 7}}, "frequency_cap.max_messages"),
        ({"frequency_cap": {"max_messages": 1, "per_days": 31}}, "frequency_cap.per_days"),
        ({"recommendation": "cheapest"}, "recommendation"),
        ({"status": "running"}, "status"),
        ({"name": ""}, "name"),
    ],
)
def test_a_campaign_that_could_not_be_sent_is_refused_with_400_naming_the_field(api, fields, field):
    problem = assert_problem(api.post("/campaigns", campaign_body("seg_ANY", **fields)), 400, field)
    assert _named(problem) == {field}
    assert api.walk("/campaigns", 10) == []


def test_a_bad_change_is_a_400_naming_the_field_and_changes_nothing(api):
    campaign = create_campaign(api, _segment_id(api))
    path = f"/campaigns/{campaign['id']}"
    bad = {"schedule": {"cron": "61 9 * * *", "timezone": "UTC"}}
    assert _named(assert_problem(api.patch(path, bad), 400)) == {"schedule.cron"}
    bad = {"templates": {"en": {"subject": "Hi", "body": "{{ product.sku }}"}}}
    assert _named(assert_problem(api.patch(path, bad), 400)) == {"templates.en.body"}
    assert_problem(api.patch(path, {}), 400)
    assert api.get(path).json == campaign


def test_product_placeholders_with_no_recommendation_are_refused(api):
    segment_id = _segment_id(api)
    body = campaign_body(segment_id, recommendation="none")
    assert _named(assert_problem(api.post("/campaigns", body), 400)) == {"templates"}
    plain = create_campaign(api, segment_id, recommendation="none", templates=PLAIN_TEMPLATES)
    path = f"/campaigns/{plain['id']}"
    assert _named(assert_problem(api.patch(path, {"templates": TEMPLATES}), 400)) == {"templates"}
    # Both at once are consistent again.
    reply = api.patch(path, {"templates": TEMPLATES, "recommendation": "repurchase"})
    assert reply.status == 200, reply.json


def test_the_next_run_is_shown_in_utc_only_while_active_with_a_schedule(api, frozen_clock):
    # Thursday 26 November 2026, 12:00 UTC: the next Monday 09:00 in Stockholm (CET) is 08:00Z.
    segment_id = _segment_id(api)
    campaign = create_campaign(api, segment_id, schedule=WEEKLY)
    path = f"/campaigns/{campaign['id']}"
    assert (campaign["status"], campaign["next_run_at"]) == ("draft", None)
    active = api.patch(path, {"status": "active"}).json
    assert active["next_run_at"] == "2026-11-30T08:00:00.000Z"
    assert api.get(path).json["next_run_at"] == "2026-11-30T08:00:00.000Z"
    assert api.patch(path, {"status": "paused"}).json["next_run_at"] is None
    assert api.patch(path, {"status": "active", "schedule": None}).json["next_run_at"] is None
    once = api.patch(path, {"schedule": {"at": "2026-12-24T15:00:00+01:00"}}).json
    assert once["schedule"] == {"at": "2026-12-24T14:00:00.000Z"}
    assert once["next_run_at"] == "2026-12-24T14:00:00.000Z"
    manual = create_campaign(api, segment_id, status="active")
    assert manual["next_run_at"] is None


def test_a_retried_create_with_the_same_idempotency_key_defines_one_campaign(api):
    body = campaign_body(_segment_id(api))
    key = {"Idempotency-Key": "0c6f3d52-campaigns-1"}
    first, again = api.post("/campaigns", body, headers=key), api.post("/campaigns", body, headers=key)
    assert first.status == again.status == 201 and first.json["id"] == again.json["id"]
    assert [c["id"] for c in api.walk("/campaigns", 10)] == [first.json["id"]]


# Preview


def test_a_preview_is_the_message_in_the_customers_language_with_their_product(api, pump):
    popular_tea(api, pump)
    campaign = create_campaign(api, _segment_id(api))
    finland_swede = member(api, "Åsa Öberg", locale="sv-FI")
    filipina = member(api, "Maria Dela Cruz", locale="fil-PH", preferred_name="Ria")
    german = member(api, "Jürgen Klein", locale="de")
    path = f"/campaigns/{campaign['id']}/preview"

    reply = api.post(path, {"customer_id": finland_swede["id"]})
    assert reply.status == 200, reply.json
    preview = reply.json
    assert set(preview) == {"subject", "body", "locale", "product", "skip_reason"}
    assert (preview["locale"], preview["subject"], preview["skip_reason"]) == ("sv", "Hej Åsa", None)
    assert preview["product"] == {"sku": "SKU-TEA", "name": "Grönt te", "price": "7.50", "currency": "EUR"}
    assert preview["body"].startswith("Hej Åsa, prova Grönt te för 7,50 EUR.\nAvregistrera: http://")
    assert "/unsubscribe?token=" in preview["body"]

    preview = api.post(path, {"customer_id": filipina["id"]}).json
    assert (preview["locale"], preview["subject"]) == ("tl", "Kumusta Ria")
    assert preview["body"].startswith("Kumusta Ria, subukan ang Green tea.")  # no Tagalog name: en

    preview = api.post(path, {"customer_id": german["id"]}).json
    assert (preview["locale"], preview["subject"]) == ("en", "Hi Jürgen")
    assert preview["body"].startswith("Hello Jürgen, try Green tea at 7,50 EUR.")  # a German price


def test_a_preview_shows_why_a_customer_would_be_skipped_and_still_shows_the_message(api, pump):
    popular_tea(api, pump)
    campaign = create_campaign(api, _segment_id(api))
    path = f"/campaigns/{campaign['id']}/preview"
    unwilling = member(api, "Lars Berg", locale="sv", marketing_consent=False)
    preview = api.post(path, {"customer_id": unwilling["id"]}).json
    assert preview["skip_reason"] == "no_consent"
    assert preview["subject"] == "Hej Lars" and preview["product"]["sku"] == "SKU-TEA"
    unreachable = api.create_customer(name="Ann Lee", marketing_consent=True)
    assert api.post(path, {"customer_id": unreachable["id"]}).json["skip_reason"] == "no_email"


def test_a_preview_for_an_unknown_customer_or_campaign_is_404(api):
    campaign = create_campaign(api, _segment_id(api))
    assert_problem(api.post(f"/campaigns/{campaign['id']}/preview", {"customer_id": "cus_NOBODY"}), 404)
    customer = api.create_customer()
    assert_problem(api.post("/campaigns/cmp_NOSUCH/preview", {"customer_id": customer["id"]}), 404)
    assert_problem(api.post(f"/campaigns/{campaign['id']}/preview", {}), 400, "customer_id")


def test_a_preview_sends_nothing_and_counts_nothing_against_the_cap(api, pump):
    audience = segment(api, pump)
    customer = member(api, "Åsa Öberg", locale="sv")
    pump.drain()
    campaign = create_campaign(
        api, audience["id"], status="active", recommendation="none", templates=PLAIN_TEMPLATES
    )
    for _ in range(3):
        assert api.post(f"/campaigns/{campaign['id']}/preview", {"customer_id": customer["id"]}).status == 200
    pump.drain()
    assert sent_mail() == []
    assert api.get(f"/campaigns/{campaign['id']}/runs").json["items"] == []
    run = run_now(api, pump, campaign["id"])
    assert (run["targeted"], run["sent"]) == (1, 1), run
    assert len(sent_mail()) == 1


# Roles


def test_a_customer_token_is_403_on_every_campaign_route(api):
    campaign = create_campaign(api, _segment_id(api), status="active")
    customer = api.create_customer()
    shopper = api.as_role("customer", customer["id"])
    path = f"/campaigns/{campaign['id']}"
    assert_problem(shopper.post("/campaigns", campaign_body(campaign["segment_id"])), 403)
    assert_problem(shopper.get("/campaigns"), 403)
    assert_problem(shopper.get(path), 403)
    assert_problem(shopper.patch(path, {"status": "paused"}), 403)
    assert_problem(shopper.delete(path), 403)
    assert_problem(shopper.post(f"{path}/preview", {"customer_id": customer["id"]}), 403)
    assert_problem(shopper.post(f"{path}/runs"), 403)
    assert_problem(shopper.get(f"{path}/runs"), 403)
    assert api.get(path).json == campaign
    assert api.get(f"{path}/runs").json["items"] == []
