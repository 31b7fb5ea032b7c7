"""Campaign runs over HTTP, done by the consumers as Lambda would run them (the local event
pump): what a run sends and to whom, what it skips and why, the mail on the wire, the
timeline, and the minute schedule that starts runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from chalicelib.config import get_settings
from tests.functional.campaign_helpers import (
    PLAIN_TEMPLATES,
    create_campaign,
    decoded,
    mail_to,
    member,
    outcomes,
    popular_tea,
    raw_headers,
    run_now,
    segment,
    sent_mail,
)
from tests.functional.conftest import assert_problem

SKIP_REASONS = {"erased", "no_consent", "no_email", "frequency_cap", "no_recommendation"}
RUN_KEYS = {
    "id",
    "campaign_id",
    "segment_id",
    "status",
    "trigger",
    "scheduled_for",
    "created_at",
    "started_at",
    "completed_at",
    "targeted",
    "sent",
    "skipped",
    "failed",
}
WEEKLY = {"cron": "0 9 * * MON", "timezone": "Europe/Stockholm"}


def _plain_campaign(api, segment_id: str, **fields) -> dict:
    fields = {"status": "active", "recommendation": "none", "templates": PLAIN_TEMPLATES} | fields
    return create_campaign(api, segment_id, **fields)


def _skipped(**counts: int) -> dict:
    return dict.fromkeys(SKIP_REASONS, 0) | counts


def _accounted(run: dict) -> bool:
    return run["targeted"] == run["sent"] + sum(run["skipped"].values()) + run["failed"]


def _runs(api, campaign_id: str) -> list[dict]:
    return api.walk(f"/campaigns/{campaign_id}/runs", 10)


# Starting runs


def test_a_run_starts_with_no_body_or_an_empty_object_and_only_while_active(api, pump):
    audience = segment(api, pump)
    campaign = _plain_campaign(api, audience["id"], status="draft")
    path = f"/campaigns/{campaign['id']}/runs"
    assert_problem(api.post(path), 409, "status")
    assert api.patch(f"/campaigns/{campaign['id']}", {"status": "active"}).status == 200
    bare = api.post(path)
    empty = api.post(path, {})
    for reply in (bare, empty):
        assert reply.status == 202, reply.json
        assert set(reply.json) == RUN_KEYS
        assert reply.json["id"].startswith("run_") and reply.json["status"] == "queued"
        assert reply.json["trigger"] == "manual" and reply.json["scheduled_for"] is None
        assert reply.headers["location"] == f"{path}/{reply.json['id']}"
    assert bare.json["id"] != empty.json["id"]
    assert_problem(api.post(path, {"segment_id": audience["id"]}), 400)
    assert api.patch(f"/campaigns/{campaign['id']}", {"status": "paused"}).status == 200
    assert_problem(api.post(path), 409, "status")
    assert_problem(api.post("/campaigns/cmp_NOSUCH/runs"), 404)
    pump.drain()
    runs = _runs(api, campaign["id"])
    assert [r["id"] for r in runs] == [empty.json["id"], bare.json["id"]]  # newest first
    assert all(r["status"] == "completed" and r["targeted"] == 0 for r in runs), runs


def test_a_retried_start_with_the_same_idempotency_key_is_one_run(api, pump):
    campaign = _plain_campaign(api, segment(api, pump)["id"])
    key = {"Idempotency-Key": "6d0b0e1a-runs-1"}
    path = f"/campaigns/{campaign['id']}/runs"
    first, again = api.post(path, headers=key), api.post(path, headers=key)
    assert first.status == again.status == 202 and first.json["id"] == again.json["id"]
    assert [r["id"] for r in _runs(api, campaign["id"])] == [first.json["id"]]


# What a run does


def test_a_run_decides_once_for_every_member_and_its_counts_add_up(api, pump):
    popular_tea(api, pump)
    senders = [member(api, "Åsa Öberg", locale="sv-SE"), member(api, "Jyrki Mäkelä", locale="fi")]
    unwilling = member(api, "Lars Berg", marketing_consent=False)
    unreachable = member(api, "Ann Lee", email=None)
    audience = segment(api, pump)
    assert audience["member_count"] == 4
    campaign = create_campaign(api, audience["id"], status="active")

    run = run_now(api, pump, campaign["id"])

    assert set(run) == RUN_KEYS
    assert (run["targeted"], run["sent"], run["failed"]) == (4, 2, 0)
    assert run["skipped"] == _skipped(no_consent=1, no_email=1)
    assert _accounted(run)
    assert run["trigger"] == "manual" and run["segment_id"] == audience["id"]
    assert run["created_at"] <= run["started_at"] <= run["completed_at"]
    ids = (campaign["id"], run["id"])
    assert outcomes(api, *ids, "sent", limit=1) == {c["id"]: ("sent", None) for c in senders}
    assert outcomes(api, *ids, "skipped", limit=1) == {
        unwilling["id"]: ("skipped", "no_consent"),
        unreachable["id"]: ("skipped", "no_email"),
    }
    assert outcomes(api, *ids, "failed", limit=1) == {}
    assert len(outcomes(api, *ids, limit=3)) == 4
    sent = api.walk(f"/campaigns/{campaign['id']}/runs/{run['id']}/recipients?outcome=sent", 10)
    by_customer = {r["customer_id"]: r for r in sent}
    assert (by_customer[senders[0]["id"]]["locale"], by_customer[senders[0]["id"]]["sku"]) == (
        "sv",
        "SKU-TEA",
    )
    assert by_customer[senders[1]["id"]]["locale"] == "en"  # no Finnish template
    assert_problem(api.get(f"/campaigns/{campaign['id']}/runs/{run['id']}/recipients?outcome=maybe"), 400)
    assert_problem(api.get(f"/campaigns/{campaign['id']}/runs/run_NOSUCH"), 404)
    assert len(sent_mail()) == 2
    pump.drain()  # nothing is left to do, and nothing is sent again
    assert len(sent_mail()) == 2
    assert api.get(f"/campaigns/{campaign['id']}/runs/{run['id']}").json == run


def test_each_message_greets_by_preferred_name_offers_the_product_in_their_language_and_is_on_the_timeline(
    api, pump
):
    popular_tea(api, pump)
    asa = member(api, "Åsa Öberg", locale="sv-SE", preferred_name="Åsa-Lena")
    jyrki = member(api, "Jyrki Mäkelä", locale="fi")
    campaign = create_campaign(api, segment(api, pump)["id"], status="active")  # recommendation "any"

    run = run_now(api, pump, campaign["id"])

    assert run["sent"] == 2, run
    [raw] = [m.raw_data for m in mail_to(asa["email"])]
    wire = raw_headers(raw)
    assert wire["From"] == get_settings().mail_from and wire["To"] == asa["email"]
    assert wire["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # On the wire the header is the URL in angle brackets, not RFC 2047 encoded words.
    unsubscribe = wire["List-Unsubscribe"]
    assert unsubscribe.startswith(f"<{get_settings().public_base_url}/unsubscribe?token="), unsubscribe
    assert unsubscribe.endswith(">") and "\n" not in unsubscribe
    message = decoded(raw)
    assert message["Subject"] == "Hej Åsa-Lena"
    body = message.get_content().replace("\r\n", "\n")
    assert body.startswith("Hej Åsa-Lena, prova Grönt te för 7,50 EUR.\nAvregistrera: ")
    assert unsubscribe[1:-1] in body

    [raw] = [m.raw_data for m in mail_to(jyrki["email"])]
    message = decoded(raw)
    assert message["Subject"] == "Hi Jyrki"  # the first word of the name; the en template
    assert (
        message.get_content().replace("\r\n", "\n").startswith("Hello Jyrki, try Vihreä tee at 7,50 EUR.")
    )  # fi name

    [entry] = api.get(f"/customers/{asa['id']}/interactions").json["items"]
    assert (entry["type"], entry["direction"], entry["channel"]) == ("message", "outbound", "email")
    assert (entry["campaign_id"], entry["run_id"]) == (campaign["id"], run["id"])
    assert entry["subject"] == "Hej Åsa-Lena"


# Skips


def _poll(pump, names: set[str]) -> None:
    """Run only these consumers (by handler name) until they find nothing to do: the others,
    the customers stream among them, lag behind as they may in the cloud."""
    consumers = [c for c in (*pump.stream_consumers, *pump.queue_consumers) if c.name in names]
    assert {c.name for c in consumers} == names
    while any([c.poll() for c in consumers]):
        pass


def test_a_member_deleted_after_the_snapshot_is_skipped_as_erased(api, pump):
    staying = member(api, "Åsa Öberg")
    leaving = member(api, "Lars Berg")
    campaign = _plain_campaign(api, segment(api, pump)["id"])
    started = api.post(f"/campaigns/{campaign['id']}/runs")
    assert started.status == 202
    _poll(pump, {"start_campaign_runs"})  # the run's start is queued
    [queue] = [c for c in pump.queue_consumers if c.name == "deliver_campaigns"]
    assert queue.poll()  # ... and taken: the run is running, its snapshot moment set
    running = api.get(f"/campaigns/{campaign['id']}/runs/{started.json['id']}").json
    assert running["status"] == "running" and running["started_at"], running
    assert api.delete(f"/customers/{leaving['id']}").status == 204
    _poll(pump, {"start_campaign_runs", "deliver_campaigns"})  # walk and deliver
    pump.drain()

    run = api.get(f"/campaigns/{campaign['id']}/runs/{started.json['id']}").json
    assert (run["status"], run["targeted"], run["sent"]) == ("completed", 2, 1), run
    assert run["skipped"] == _skipped(erased=1) and _accounted(run)
    assert outcomes(api, campaign["id"], run["id"], "skipped") == {leaving["id"]: ("skipped", "erased")}
    assert [raw_headers(m.raw_data)["To"] for m in sent_mail()] == [staying["email"]]


def test_the_frequency_cap_counts_the_messages_of_every_campaign(api, pump, frozen_clock):
    customer = member(api, "Saša Kovačič", locale="sl")
    audience = segment(api, pump)
    first = _plain_campaign(api, audience["id"], name="First")
    second = _plain_campaign(api, audience["id"], name="Second")  # at most 1 in 7 days, too

    assert run_now(api, pump, first["id"])["sent"] == 1
    capped = run_now(api, pump, second["id"])
    assert (capped["sent"], capped["skipped"]) == (0, _skipped(frequency_cap=1)) and _accounted(capped)
    assert outcomes(api, second["id"], capped["id"]) == {customer["id"]: ("skipped", "frequency_cap")}
    frozen_clock.advance(timedelta(days=6, hours=23))
    assert run_now(api, pump, second["id"])["skipped"]["frequency_cap"] == 1
    frozen_clock.advance(timedelta(days=1, hours=1))  # 8 days after the first message
    again = run_now(api, pump, second["id"])
    assert (again["sent"], again["skipped"]) == (1, _skipped())
    assert len(mail_to(customer["email"])) == 2


def test_a_looser_cap_lets_a_second_message_through_within_the_window(api, pump, frozen_clock):
    customer = member(api, "Saša Kovačič", locale="sl")
    audience = segment(api, pump)
    weekly = _plain_campaign(api, audience["id"])
    twice = _plain_campaign(api, audience["id"], frequency_cap={"max_messages": 2, "per_days": 7})
    assert run_now(api, pump, weekly["id"])["sent"] == 1
    assert run_now(api, pump, twice["id"])["sent"] == 1  # its own cap counts the first message as 1 of 2
    assert len(mail_to(customer["email"])) == 2


def test_a_member_with_nothing_to_recommend_is_skipped_and_gets_no_message(api, pump):
    customer = member(api, "Jyrki Mäkelä", locale="fi")  # no purchases, and nobody bought anything
    audience = segment(api, pump)
    campaign = create_campaign(api, audience["id"], status="active", recommendation="repurchase")
    run = run_now(api, pump, campaign["id"])
    assert (run["targeted"], run["sent"], run["skipped"]) == (1, 0, _skipped(no_recommendation=1))
    assert outcomes(api, campaign["id"], run["id"]) == {customer["id"]: ("skipped", "no_recommendation")}
    assert sent_mail() == []
    assert api.get(f"/customers/{customer['id']}/interactions").json["items"] == []
    preview = api.post(f"/campaigns/{campaign['id']}/preview", {"customer_id": customer["id"]}).json
    assert (preview["skip_reason"], preview["product"]) == ("no_recommendation", None)


@pytest.fixture
def ses_refuses(monkeypatch):
    """SES takes nothing from our sender (its identity is gone) until the test ends; queue
    retries come at once instead of after the backoff."""
    from chalicelib.events import batch

    monkeypatch.setattr(batch, "BACKOFF_S", 0)
    ses = boto3.client("ses")
    sender = get_settings().mail_from
    ses.delete_identity(Identity=sender)
    try:
        yield
    finally:
        ses.verify_email_identity(EmailAddress=sender)


def test_a_message_ses_keeps_refusing_is_retried_then_counted_failed(api, pump, ses_refuses):
    customer = member(api, "Åsa Öberg")
    campaign = _plain_campaign(api, segment(api, pump)["id"])
    run = run_now(api, pump, campaign["id"])
    assert (run["targeted"], run["sent"], run["failed"]) == (1, 0, 1), run
    assert run["skipped"] == _skipped() and _accounted(run)
    assert outcomes(api, campaign["id"], run["id"], "failed", limit=1) == {
        customer["id"]: ("failed", "mail_refused")
    }
    assert sent_mail() == [] and api.get(f"/customers/{customer['id']}/interactions").json["items"] == []


# The schedule


def _set_clock(clock, moment: datetime) -> None:
    clock.advance(moment - clock.now())


def test_a_weekly_run_stays_at_nine_in_stockholm_across_the_change_to_winter_time(api, pump, frozen_clock):
    _set_clock(frozen_clock, datetime(2026, 10, 14, 12, 0, tzinfo=UTC))  # a Wednesday, summer time
    customer = member(api, "Åsa Öberg", locale="sv")
    campaign = _plain_campaign(api, segment(api, pump)["id"], schedule=WEEKLY)
    path = f"/campaigns/{campaign['id']}"
    assert campaign["next_run_at"] == "2026-10-19T07:00:00.000Z"  # 09:00 CEST
    assert pump.trigger("start_due_campaigns") == {"started": []}

    _set_clock(frozen_clock, datetime(2026, 10, 19, 7, 0, 30, tzinfo=UTC))
    assert len(pump.trigger("start_due_campaigns")["started"]) == 1
    assert pump.trigger("start_due_campaigns") == {"started": []}  # the schedule firing twice
    pump.drain()

    [run] = _runs(api, campaign["id"])
    assert (run["trigger"], run["scheduled_for"], run["status"]) == (
        "schedule",
        "2026-10-19T07:00:00.000Z",
        "completed",
    )
    assert (run["targeted"], run["sent"]) == (1, 1)
    assert [raw_headers(m.raw_data)["To"] for m in sent_mail()] == [customer["email"]]
    assert api.get(path).json["next_run_at"] == "2026-10-26T08:00:00.000Z"  # 09:00 CET


def test_a_summer_campaign_created_in_winter_time_runs_at_seven_utc(api, frozen_clock):
    segment_id = api.post("/segments", {"name": "S", "rules": {"tags_any": ["x"]}}).json["id"]
    winter = create_campaign(api, segment_id, status="active", schedule=WEEKLY)
    assert winter["next_run_at"] == "2026-11-30T08:00:00.000Z"
    _set_clock(frozen_clock, datetime(2026, 6, 3, 12, 0, tzinfo=UTC))
    summer = create_campaign(api, segment_id, status="active", schedule=WEEKLY)
    assert summer["next_run_at"] == "2026-06-08T07:00:00.000Z"


def test_a_one_off_campaign_runs_once_and_is_finished(api, pump, frozen_clock):
    campaign = _plain_campaign(api, segment(api, pump)["id"], schedule={"at": "2026-11-27T10:00:00+01:00"})
    path = f"/campaigns/{campaign['id']}"
    assert campaign["next_run_at"] == "2026-11-27T09:00:00.000Z"
    _set_clock(frozen_clock, datetime(2026, 11, 27, 8, 59, tzinfo=UTC))
    assert pump.trigger("start_due_campaigns") == {"started": []}
    frozen_clock.advance(timedelta(minutes=2))
    assert len(pump.trigger("start_due_campaigns")["started"]) == 1
    pump.drain()
    frozen_clock.advance(timedelta(days=7))
    assert pump.trigger("start_due_campaigns") == {"started": []}
    pump.drain()
    [run] = _runs(api, campaign["id"])
    assert (run["trigger"], run["scheduled_for"]) == ("schedule", "2026-11-27T09:00:00.000Z")
    reply = api.get(path)
    finished = reply.json
    assert (finished["status"], finished["next_run_at"]) == ("finished", None)
    # A change of status is a new version: a client that read the active campaign gets 412.
    assert finished["version"] == 2 and reply.headers["etag"] == '"v2"'
    assert finished["updated_at"] == "2026-11-27T09:01:00.000Z"
    assert_problem(api.patch(path, {"status": "paused"}, headers={"If-Match": '"v1"'}), 412)
    assert_problem(api.post(f"{path}/runs"), 409, "status")


def test_a_schedule_that_fires_late_starts_one_run_not_one_for_each_missed_moment(api, pump, frozen_clock):
    campaign = _plain_campaign(api, segment(api, pump)["id"], schedule=WEEKLY)
    assert campaign["next_run_at"] == "2026-11-30T08:00:00.000Z"
    frozen_clock.advance(timedelta(weeks=3))  # Thursday 17 December: three Mondays missed
    assert len(pump.trigger("start_due_campaigns")["started"]) == 1
    assert pump.trigger("start_due_campaigns") == {"started": []}
    pump.drain()
    [run] = _runs(api, campaign["id"])
    assert run["trigger"] == "schedule" and run["status"] == "completed"
    assert api.get(f"/campaigns/{campaign['id']}").json["next_run_at"] == "2026-12-21T08:00:00.000Z"


def test_a_paused_campaign_is_not_started_by_the_schedule(api, pump, frozen_clock):
    campaign = _plain_campaign(api, segment(api, pump)["id"], schedule=WEEKLY)
    assert api.patch(f"/campaigns/{campaign['id']}", {"status": "paused"}).status == 200
    frozen_clock.advance(timedelta(days=5))
    assert pump.trigger("start_due_campaigns") == {"started": []}
    resumed = api.patch(f"/campaigns/{campaign['id']}", {"status": "active"}).json
    assert resumed["next_run_at"] == "2026-12-07T08:00:00.000Z"  # the next after now, not the missed one
    assert _runs(api, campaign["id"]) == []
