"""Unsubscribe links end to end: the link in a sent campaign message opens a page in the
customer's language (GET changes nothing), a one-click POST (RFC 8058) withdraws marketing
consent, audited as done by "unsubscribe", and the next run skips them."""

from __future__ import annotations

import pytest

from tests.functional.campaign_helpers import (
    PLAIN_TEMPLATES,
    create_campaign,
    mail_to,
    member,
    outcomes,
    run_now,
    segment,
    unsubscribe_path,
)
from tests.functional.conftest import assert_problem

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ONE_CLICK = "List-Unsubscribe=One-Click"


def _campaign(api, segment_id: str) -> dict:
    return create_campaign(api, segment_id, status="active", recommendation="none", templates=PLAIN_TEMPLATES)


def _link_in_preview(api, campaign: dict, customer: dict) -> str:
    """The unsubscribe link the customer's message would carry (shown by the preview)."""
    preview = api.post(f"/campaigns/{campaign['id']}/preview", {"customer_id": customer["id"]}).json
    url = next(word for word in preview["body"].split() if "/unsubscribe?token=" in word)
    return url[url.index("/unsubscribe?") :]


def _segment_id(api) -> str:
    return api.post("/segments", {"name": "Audience", "rules": {"tags_any": ["vip"]}}).json["id"]


def test_the_link_in_a_sent_message_unsubscribes_with_one_click_and_the_next_run_skips_them(api, pump):
    customer = member(api, "Åsa Öberg", locale="sv-SE")
    campaign = _campaign(api, segment(api, pump)["id"])
    first = run_now(api, pump, campaign["id"])
    assert first["sent"] == 1, first
    [mail] = mail_to(customer["email"])
    link = unsubscribe_path(mail.raw_data)
    assert link in mail.raw_data.replace("\r\n", "\n")  # the body carries the same link

    page = api.get(link, auth=False)
    assert page.status == 200
    assert page.content_type == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store"
    html = page.body.decode()
    assert '<html lang="sv">' in html and '<form method="post"' in html
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in html
    assert "Avregistrera mig" in html
    assert api.get(f"/customers/{customer['id']}").json["marketing_consent"] is True  # GET changed nothing
    assert len(api.get(f"/customers/{customer['id']}/audit").json["items"]) == 1

    done = api.post(link, raw=ONE_CLICK, headers=FORM, auth=False)
    assert done.status == 200, done.body
    assert done.content_type == "text/html; charset=utf-8"
    assert "Du är avregistrerad" in done.body.decode()
    profile = api.get(f"/customers/{customer['id']}").json
    assert profile["marketing_consent"] is False
    latest = api.get(f"/customers/{customer['id']}/audit").json["items"][0]
    assert latest["action"] == "update" and latest["actor"]["subject"] == "unsubscribe"
    assert latest["route"] == "POST /unsubscribe"
    assert {c["field"]: (c["before"], c["after"]) for c in latest["changes"]} == {
        "marketing_consent": (True, False)
    }
    # A second click changes nothing more and still answers the confirmation.
    assert api.post(link, raw=ONE_CLICK, headers=FORM, auth=False).status == 200
    assert api.get(f"/customers/{customer['id']}").json["version"] == profile["version"]

    pump.drain()
    second = run_now(api, pump, campaign["id"])
    assert (second["targeted"], second["sent"], second["skipped"]["no_consent"]) == (1, 0, 1), second
    assert outcomes(api, campaign["id"], second["id"]) == {customer["id"]: ("skipped", "no_consent")}
    assert len(mail_to(customer["email"])) == 1


@pytest.mark.parametrize(
    ("locale", "lang", "button"),
    [("fil-PH", "tl", "Mag-unsubscribe"), ("sl", "sl", "Odjavi me"), ("de-AT", "en", "Unsubscribe")],
)
def test_the_page_is_in_the_customers_language_or_english(api, locale, lang, button):
    campaign = _campaign(api, _segment_id(api))
    customer = member(api, "Maria Dela Cruz", locale=locale)
    page = api.get(_link_in_preview(api, campaign, customer), auth=False)
    assert page.status == 200
    html = page.body.decode()
    assert f'<html lang="{lang}">' in html and f'<button type="submit">{button}</button>' in html


def test_an_edited_or_missing_token_is_a_400_naming_the_token(api):
    campaign = _campaign(api, _segment_id(api))
    customer = member(api, "Åsa Öberg")
    link = _link_in_preview(api, campaign, customer)
    payload, signature = link.rsplit(".", 1)
    edited = [
        f"{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}",  # the signature
        f"{payload[:-3]}x{payload[-2:]}.{signature}",  # the claims
        link[:-10],  # cut short
        "/unsubscribe?token=not-a-token",
    ]
    for bad in edited:
        for reply in (api.get(bad, auth=False), api.post(bad, raw=ONE_CLICK, headers=FORM, auth=False)):
            assert_problem(reply, 400, "token")
            assert reply.headers["cache-control"] == "no-store"
    assert_problem(api.get("/unsubscribe", auth=False), 400, "token")
    assert_problem(api.post("/unsubscribe", raw=ONE_CLICK, headers=FORM, auth=False), 400, "token")
    assert api.get(f"/customers/{customer['id']}").json["marketing_consent"] is True


def test_the_link_of_an_erased_customer_is_gone(api, pump):
    campaign = _campaign(api, _segment_id(api))
    customer = member(api, "Saša Kovačič", locale="sl")
    link = _link_in_preview(api, campaign, customer)
    erasing = api.post(f"/customers/{customer['id']}/erase")
    assert erasing.status == 202, erasing.json
    pump.drain()  # the erasure job
    assert api.get(erasing.headers["location"]).json["status"] == "completed"
    assert_problem(api.get(link, auth=False), 410)
    assert_problem(api.post(link, raw=ONE_CLICK, headers=FORM, auth=False), 410)
