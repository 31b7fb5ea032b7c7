"""The campaign services against in-memory fakes: the minute schedule starts a run once per
moment, a run targets the members of its snapshot, decides each one once in the issue's order,
claims, sends and confirms or gives back, fails what cannot be decided, and completes once every
shard is walked and every customer decided."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from chalicelib.domain.campaign_runs import SENDING, run_shard
from chalicelib.domain.campaign_schedule import parse_schedule
from chalicelib.domain.campaign_templates import normalize_templates
from chalicelib.domain.campaigns import ACTIVE, FINISHED, PAUSED, FrequencyCap, SendLog
from chalicelib.domain.customers import Customer
from chalicelib.domain.products import Product
from chalicelib.domain.unsubscribe import UnsubscribeLinks
from chalicelib.errors import Conflict
from chalicelib.services.campaign_messages import Composer
from chalicelib.services.campaign_runs import (
    STALE_CLAIM,
    CampaignRunService,
    DeliveryGivenUp,
    DeliveryIncomplete,
)
from chalicelib.services.campaigns import CampaignService

SEGMENT = "seg_1"
PLAIN = {"en": {"subject": "Hi {{ preferred_name }}", "body": "News. {{ unsubscribe_url }}"}}
WITH_PRODUCT = {
    "en": {
        "subject": "Hi {{ name }}",
        "body": "{{ product.name }}, {{ product.price }}. {{ unsubscribe_url }}",
    }
}
LINKS = UnsubscribeLinks("unit-test-link-secret", "https://crm.example.com")


@pytest.fixture
def picks() -> dict:
    """What the recommendations pick for each customer (none for the others)."""
    return {}


@pytest.fixture
def composer(picks) -> Composer:
    return Composer(lambda customer_id, kind: picks.get(customer_id), lambda: LINKS)


@pytest.fixture
def campaigns(store, composer, clock, cursors) -> CampaignService:
    return CampaignService(
        store.campaigns,
        store.campaign_sends,
        lambda segment_id: segment_id == SEGMENT,
        store.customers,
        composer,
        clock,
        cursors,
    )


@pytest.fixture
def runs(store, composer, clock) -> CampaignRunService:
    return CampaignRunService(
        store.campaigns,
        store.campaign_sends,
        store.segments,
        store.customers,
        composer,
        lambda: store.marketing_mailer,
        lambda: store.campaigns_queue,
        clock,
    )


def define(campaigns, *, recommendation="none", schedule=None, status=ACTIVE, cap=None, name="Winter"):
    templates = PLAIN if recommendation == "none" else WITH_PRODUCT
    return campaigns.create(
        {
            "name": name,
            "segment_id": SEGMENT,
            "status": status,
            "schedule": parse_schedule(schedule),
            "templates": normalize_templates(templates),
            "recommendation": recommendation,
            "frequency_cap": cap or FrequencyCap(),
        }
    )


def ids_in_one_shard(count: int) -> list[str]:
    """Customer ids that fall in one shard of a run, so that one delivery batch holds them all."""
    same = (f"cus_{n:04d}" for n in itertools.count() if run_shard(f"cus_{n:04d}") == 0)
    return sorted(itertools.islice(same, count))


def member(store, clock, customer_id: str, *, joined_at: datetime | None = None, **fields) -> str:
    """A customer in the segment, with consent and an address unless told otherwise."""
    fields = {"marketing_consent": True, "email": f"{customer_id}@example.com", **fields}
    made = Customer(
        id=customer_id, name=f"Kund {customer_id}", created_at=clock.now(), updated_at=clock.now(), **fields
    )
    store.customers.add(made)
    store.segments.joined.setdefault(customer_id, {})[SEGMENT] = joined_at or clock.now()
    return customer_id


def product(clock, sku: str = "TEA-1") -> SimpleNamespace:
    tea = Product(sku, {"en": "Green tea"}, Decimal("5.00"), "EUR", clock.now(), clock.now())
    return SimpleNamespace(product=tea)


def start(campaigns, runs, campaign) -> str:
    """A run started by hand; its INSERT on the stream queues its start."""
    run = campaigns.start_run(campaign.id)
    runs.queued(campaign.id, run.id)
    return run.id


def handle(runs, message: dict, *, last_receive: bool = False) -> str:
    cid, rid = message["campaign_id"], message["run_id"]
    if message["type"] == "start":
        return runs.start(cid, rid)
    if message["type"] == "walk":
        return runs.walk(cid, rid, message["shard"], message["page"], message["start"])
    return runs.deliver(cid, rid, message["customer_ids"], last_receive=last_receive)


def run_queue(store, runs, hold=lambda message: False) -> list[dict]:
    """Deliver the campaigns queue's messages until none is left; those `hold` picks are kept."""
    held = []
    while store.campaigns_queue.messages:
        message = store.campaigns_queue.messages.pop(0)
        if hold(message):
            held.append(message)
        else:
            handle(runs, message)
    return held


def delivers(message: dict) -> bool:
    return message["type"] == "deliver"


def outcomes(store, run_id: str) -> dict[str, tuple[str, str | None]]:
    return {
        cid: (d.outcome, d.reason) for (rid, cid), d in store.campaign_sends.decided.items() if rid == run_id
    }


# --- what a run decides for each customer ----------------------------------------------------


def test_each_member_is_skipped_for_the_first_reason_that_applies_in_the_issues_order(
    store, campaigns, runs, clock, picks
):
    over_cap = SendLog((clock.now() - timedelta(days=1),), version=1)
    erased = member(store, clock, "cus_erased")
    store.customers.delete(store.customers.get(erased), clock.now())
    member(store, clock, "cus_no_consent", marketing_consent=False, email=None)
    member(store, clock, "cus_no_email", email=None)
    store.campaign_sends.logs["cus_no_email"] = over_cap
    member(store, clock, "cus_capped")
    store.campaign_sends.logs["cus_capped"] = over_cap
    member(store, clock, "cus_nothing_to_offer")
    member(store, clock, "cus_sent")
    picks["cus_sent"] = product(clock)
    campaign = define(campaigns, recommendation="any")
    expected = {
        "cus_erased": ("skipped", "erased"),
        "cus_no_consent": ("skipped", "no_consent"),
        "cus_no_email": ("skipped", "no_email"),
        "cus_capped": ("skipped", "frequency_cap"),
        "cus_nothing_to_offer": ("skipped", "no_recommendation"),
        "cus_sent": ("sent", None),
    }
    for cid, (_, reason) in expected.items():  # the preview says so beforehand, sending nothing
        assert campaigns.preview(campaign.id, cid).skip_reason == reason
    assert store.marketing_mailer.sent == [] and store.campaign_sends.logs["cus_capped"] == over_cap
    run_id = start(campaigns, runs, campaign)
    run_queue(store, runs)

    assert outcomes(store, run_id) == expected
    [(to, subject, body, url)] = store.marketing_mailer.sent
    assert (to, subject) == ("cus_sent@example.com", "Hi Kund cus_sent")
    assert body.startswith("Green tea, ") and url in body
    done = campaigns.run(campaign.id, run_id)
    assert done.completed and done.counts.targeted == 6 and done.counts.decided == 6
    assert store.campaign_sends.logs["cus_capped"] == over_cap  # a skip counts nothing
    assert campaigns.preview(campaign.id, "cus_sent").skip_reason == "frequency_cap"  # now


def test_a_member_who_joined_after_the_run_started_is_not_targeted(store, campaigns, runs, clock):
    member(store, clock, "cus_before", joined_at=clock.now() - timedelta(hours=1))
    member(store, clock, "cus_at", joined_at=clock.now())
    member(store, clock, "cus_after", joined_at=clock.now() + timedelta(seconds=1))
    campaign = define(campaigns)
    run_id = start(campaigns, runs, campaign)
    run_queue(store, runs)

    done = campaigns.run(campaign.id, run_id)
    assert done.completed and done.started_at == clock.now()
    assert (done.counts.targeted, done.counts.sent) == (2, 2)
    assert set(outcomes(store, run_id)) == {"cus_before", "cus_at"}


def test_a_run_completes_once_every_shard_is_walked_and_every_customer_decided(store, campaigns, runs, clock):
    for n in range(12):
        member(store, clock, f"cus_{n:04d}")
    campaign = define(campaigns, cap=FrequencyCap(max_messages=5, per_days=1))
    run_id = start(campaigns, runs, campaign)
    held = run_queue(store, runs, hold=delivers)
    assert len(held) > 1
    walked = campaigns.run(campaign.id, run_id)
    assert (walked.status, walked.counts.targeted, walked.counts.decided) == ("running", 12, 0)

    for message in held[:-1]:
        assert handle(runs, message) == "delivered"
        assert campaigns.run(campaign.id, run_id).status == "running"
    assert handle(runs, held[-1]) == "delivered"
    done = campaigns.run(campaign.id, run_id)
    assert (done.status, done.counts.targeted, done.counts.sent) == ("completed", 12, 12)
    assert done.completed_at == clock.now()

    clock.advance(timedelta(minutes=5))  # delivered again afterwards: nothing moves
    assert [handle(runs, m) for m in held] == ["not running"] * len(held)
    assert runs.start(campaign.id, run_id) == "completed before"
    assert campaigns.run(campaign.id, run_id) == done
    assert len(store.marketing_mailer.sent) == 12


def test_a_run_of_an_empty_segment_completes_when_its_walks_end(store, campaigns, runs):
    campaign = define(campaigns)
    run_id = start(campaigns, runs, campaign)
    run_queue(store, runs)
    done = campaigns.run(campaign.id, run_id)
    assert done.completed and done.counts.to_dict()["targeted"] == 0


def test_a_walk_delivered_again_queues_and_counts_nothing_more(store, campaigns, runs, clock):
    member(store, clock, "cus_0001")
    campaign = define(campaigns)
    run_id = start(campaigns, runs, campaign)
    [start_message] = store.campaigns_queue.messages
    run_queue(store, runs, hold=delivers)
    runs.start(campaign.id, run_id)  # the start again: every shard's walk queued again
    walks = list(store.campaigns_queue.messages)
    assert len(walks) == 8 and all(m["type"] == "walk" for m in walks)
    assert [handle(runs, m) for m in walks] == ["walked before"] * 8
    assert store.campaigns_queue.messages == walks  # none was taken off the fake queue
    assert campaigns.run(campaign.id, run_id).counts.targeted == 1
    assert start_message["type"] == "start"


# --- claims, SES and what cannot be decided ----------------------------------------------------


def test_a_second_delivery_deciding_first_makes_the_claim_write_nothing(store, campaigns, runs, clock):
    ids = [member(store, clock, cid) for cid in ids_in_one_shard(3)]
    campaign = define(campaigns)
    run_id = start(campaigns, runs, campaign)
    [batch] = run_queue(store, runs, hold=delivers)
    # Another worker decides the whole batch just before this one's first claim.
    store.campaign_sends.rivals.before_next_write(lambda: handle(runs, batch))
    assert handle(runs, batch) == "delivered"
    assert sorted(to for to, *_ in store.marketing_mailer.sent) == [f"{cid}@example.com" for cid in ids]
    done = campaigns.run(campaign.id, run_id)
    assert (done.status, done.counts.sent) == ("completed", 3)


def test_ses_refusing_gives_the_claim_back_and_the_last_receive_fails_it_for_the_dead_letter_queue(
    store, campaigns, runs, clock
):
    first, refused, last = [member(store, clock, cid) for cid in ids_in_one_shard(3)]
    store.marketing_mailer.refusing.add(f"{refused}@example.com")
    campaign = define(campaigns)
    run_id = start(campaigns, runs, campaign)
    [batch] = run_queue(store, runs, hold=delivers)

    for _ in range(4):
        with pytest.raises(DeliveryIncomplete):
            handle(runs, batch)
        assert outcomes(store, run_id) == {first: ("sent", None), last: ("sent", None)}
        assert store.campaign_sends.send_log(refused).times == ()  # the send given back
    with pytest.raises(DeliveryGivenUp):
        handle(runs, batch, last_receive=True)
    assert outcomes(store, run_id)[refused] == ("failed", "mail_refused")
    done = campaigns.run(campaign.id, run_id)
    assert (done.status, done.counts.sent, done.counts.failed) == ("completed", 2, 1)
    assert store.marketing_mailer.to(f"{refused}@example.com") == 0


def test_a_claim_left_by_a_stopped_worker_waits_while_fresh_and_is_failed_unconfirmed_once_stale(
    store, campaigns, runs, clock
):
    stopped, other = [member(store, clock, cid) for cid in ids_in_one_shard(2)]
    store.marketing_mailer.crash_after_send.add(f"{stopped}@example.com")
    campaign = define(campaigns)
    run_id = start(campaigns, runs, campaign)
    [batch] = run_queue(store, runs, hold=delivers)
    with pytest.raises(TimeoutError):
        handle(runs, batch)
    assert store.campaign_sends.decided[(run_id, stopped)].outcome == SENDING

    clock.advance(STALE_CLAIM - timedelta(seconds=1))
    with pytest.raises(DeliveryIncomplete):  # it may still be being sent
        handle(runs, batch)
    assert outcomes(store, run_id) == {stopped: (SENDING, None), other: ("sent", None)}

    clock.advance(timedelta(seconds=1))
    assert handle(runs, batch) == "delivered"
    assert outcomes(store, run_id)[stopped] == ("failed", "unconfirmed")
    assert store.marketing_mailer.to(f"{stopped}@example.com") == 1  # never sent again
    assert len(store.campaign_sends.send_log(stopped).times) == 1  # it may have gone: counted
    assert campaigns.run(campaign.id, run_id).completed
    assert not [i for (cid, _), i in store.interactions.items.items() if cid == stopped]


def test_a_confirmed_send_is_one_message_on_the_customers_timeline(store, campaigns, runs, clock):
    member(store, clock, "cus_0001")
    campaign = define(campaigns)
    run_id = start(campaigns, runs, campaign)
    run_queue(store, runs)
    [entry] = store.interactions.items.values()
    assert (entry.customer_id, entry.type, entry.direction) == ("cus_0001", "message", "outbound")
    assert (entry.campaign_id, entry.run_id, entry.subject) == (campaign.id, run_id, "Hi Kund")


def test_fail_undecided_fails_only_the_customers_not_decided_and_completes_the_run(
    store, campaigns, runs, clock
):
    first, refused, last = [member(store, clock, cid) for cid in ids_in_one_shard(3)]
    store.marketing_mailer.refusing.add(f"{refused}@example.com")
    campaign = define(campaigns)
    run_id = start(campaigns, runs, campaign)
    [batch] = run_queue(store, runs, hold=delivers)
    with pytest.raises(DeliveryIncomplete):
        handle(runs, batch)

    assert runs.fail_undecided(campaign.id, run_id, [first, refused, last, refused], "ClientError") == 1
    assert outcomes(store, run_id) == {
        first: ("sent", None),
        refused: ("failed", "ClientError"),
        last: ("sent", None),
    }
    assert runs.fail_undecided(campaign.id, run_id, batch["customer_ids"], "ClientError") == 0
    done = campaigns.run(campaign.id, run_id)
    assert (done.status, done.counts.sent, done.counts.failed, done.counts.targeted) == ("completed", 2, 1, 3)


def test_a_send_log_race_lost_to_another_campaign_is_decided_again_against_the_cap(
    store, campaigns, runs, clock
):
    member(store, clock, "cus_0001")
    winter, spring = define(campaigns, name="Winter"), define(campaigns, name="Spring")
    winter_run, spring_run = start(campaigns, runs, winter), start(campaigns, runs, spring)
    batches = {m["run_id"]: m for m in run_queue(store, runs, hold=delivers)}

    def spring_first():  # on a worker whose clock reads a little later
        clock.advance(timedelta(milliseconds=35))
        handle(runs, batches[spring_run])

    store.campaign_sends.rivals.before_next_write(spring_first)
    assert handle(runs, batches[winter_run]) == "delivered"
    assert outcomes(store, spring_run) == {"cus_0001": ("sent", None)}
    assert outcomes(store, winter_run) == {"cus_0001": ("skipped", "frequency_cap")}
    assert store.marketing_mailer.to("cus_0001@example.com") == 1
    assert store.campaign_sends.send_log("cus_0001").version == 1


# --- starting runs -------------------------------------------------------------------------------


DAILY = {"cron": "0 9 * * *", "timezone": "UTC"}
NINE = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # the first 09:00 after the clock's start


def test_the_schedule_starts_a_run_once_per_moment_and_moves_on(store, campaigns, clock):
    campaign = define(campaigns, schedule=DAILY)
    assert campaign.next_run_at == NINE
    assert campaigns.start_due() == []  # not yet

    clock.advance(NINE + timedelta(seconds=30) - clock.now())
    [run_id] = campaigns.start_due()
    assert campaigns.start_due() == []  # the schedule fires again in the same minute
    clock.advance(timedelta(minutes=1))
    assert campaigns.start_due() == []
    [run] = campaigns.runs(campaign.id, 10, None).items
    assert (run.id, run.trigger, run.scheduled_for, run.status) == (run_id, "schedule", NINE, "queued")
    moved = campaigns.get(campaign.id)
    assert moved.next_run_at == NINE + timedelta(days=1) and moved.version == campaign.version

    clock.advance(timedelta(days=1))
    assert len(campaigns.start_due()) == 1 and len(campaigns.runs(campaign.id, 10, None).items) == 2


def test_two_firings_of_the_schedule_at_once_start_one_run(store, campaigns, clock):
    campaign = define(campaigns, schedule=DAILY)
    clock.advance(NINE - clock.now())
    rival: list[list[str]] = []
    store.campaigns.rivals.before_next_write(lambda: rival.append(campaigns.start_due()))
    assert campaigns.start_due() == []  # the other firing moved the schedule first
    assert [len(r) for r in rival] == [1]
    assert [r.id for r in campaigns.runs(campaign.id, 10, None).items] == rival[0]


def test_moments_missed_while_nothing_ran_collapse_into_one_run_now(store, campaigns, clock):
    campaign = define(campaigns, schedule=DAILY)
    clock.advance(NINE + timedelta(days=3, hours=1) - clock.now())  # 27th, 28th, 29th and 30th missed
    [run_id] = campaigns.start_due()
    [run] = campaigns.runs(campaign.id, 10, None).items
    assert run.id == run_id and run.scheduled_for == NINE and run.created_at == clock.now()
    assert campaigns.get(campaign.id).next_run_at == NINE + timedelta(days=4)
    assert campaigns.start_due() == []


def test_a_one_off_schedule_runs_once_and_finishes_the_campaign(store, campaigns, clock):
    campaign = define(campaigns, schedule={"at": "2026-11-27T09:00:00Z"})
    clock.advance(NINE + timedelta(minutes=3) - clock.now())
    assert len(campaigns.start_due()) == 1
    finished = campaigns.get(campaign.id)
    assert (finished.status, finished.next_run_at) == (FINISHED, None)
    assert campaigns.start_due() == []
    with pytest.raises(Conflict):
        campaigns.start_run(campaign.id)


def test_only_an_active_campaign_starts_runs(store, campaigns, clock):
    campaign = define(campaigns, schedule=DAILY)
    paused = campaigns.update(campaign.id, {"status": PAUSED}, None)
    assert paused.next_run_at is None
    clock.advance(NINE - clock.now())
    assert campaigns.start_due() == []
    with pytest.raises(Conflict):
        campaigns.start_run(campaign.id)
    assert campaigns.runs(campaign.id, 10, None).items == []
