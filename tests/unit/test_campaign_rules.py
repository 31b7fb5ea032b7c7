from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.campaign_schedule import Schedule
from chalicelib.domain.campaign_templates import Template
from chalicelib.domain.campaigns import (
    ACTIVE,
    DRAFT,
    FINISHED,
    KEPT_FOR,
    MAX_KEPT_SENDS,
    PAUSED,
    SKIP_REASONS,
    Campaign,
    FrequencyCap,
    SendLog,
    new_campaign,
    scheduled_next,
    skip_reason,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WEEKLY = Schedule(cron="0 9 * * MON", timezone="Europe/Stockholm")
# The Monday after NOW (a Thursday), 09:00 in Stockholm (CET, UTC+1).
NEXT_MONDAY = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def campaign(status: str = DRAFT, schedule: Schedule | None = WEEKLY) -> Campaign:
    return new_campaign(
        id="cmp_01",
        name="Winter mugs",
        segment_id="seg_01",
        status=status,
        schedule=schedule,
        templates={"en": Template(subject="Hi {{ name }}", body="{{ product.name }}")},
        recommendation="repurchase",
        frequency_cap=FrequencyCap(),
        now=NOW,
    )


# --- skip reasons ----------------------------------------------------------------------

SENDABLE = {"profile_found": True, "marketing_consent": True, "email": "anna@example.com", "over_cap": False}
# The argument values that make each reason apply.
FAILING = {
    "erased": {"profile_found": False},
    "no_consent": {"marketing_consent": False},
    "no_email": {"email": None},
    "frequency_cap": {"over_cap": True},
    "no_recommendation": {"has_product": False},
}


def test_a_member_who_passes_every_check_gets_the_message():
    assert skip_reason(**SENDABLE, has_product=True) is None
    assert skip_reason(**SENDABLE, has_product=None) is None


@pytest.mark.parametrize("index", range(len(SKIP_REASONS)))
def test_each_skip_reason_wins_over_the_later_ones(index):
    facts = SENDABLE | {"has_product": True}
    for reason in SKIP_REASONS[index:]:
        facts |= FAILING[reason]
    assert skip_reason(**facts) == SKIP_REASONS[index]


def test_a_blank_email_is_no_email():
    assert skip_reason(**(SENDABLE | {"email": "  "}), has_product=True) == "no_email"


def test_a_campaign_without_a_recommendation_never_skips_for_one():
    assert skip_reason(**SENDABLE, has_product=None) is None
    assert skip_reason(**SENDABLE, has_product=False) == "no_recommendation"


# --- frequency caps and the send log ------------------------------------------------------


def test_a_send_exactly_per_days_ago_is_outside_the_window():
    cap = FrequencyCap(max_messages=1, per_days=7)
    assert not SendLog(times=(NOW - timedelta(days=7),)).over(cap, NOW)
    assert SendLog(times=(NOW - timedelta(days=7) + timedelta(microseconds=1),)).over(cap, NOW)
    assert SendLog(times=(NOW,)).over(cap, NOW)


def test_a_send_stamped_after_now_counts_against_the_cap():
    # A rival's send logged while this decision was made, or another worker's clock ahead.
    assert SendLog(times=(NOW + timedelta(milliseconds=35),)).over(FrequencyCap(), NOW)


def test_the_cap_counts_messages_in_the_window():
    cap = FrequencyCap(max_messages=3, per_days=2)
    log = SendLog(times=tuple(NOW - timedelta(hours=hours) for hours in (1, 20, 47, 48)))
    assert log.over(cap, NOW)  # 1, 20 and 47 hours ago; 48 is outside
    assert not log.over(cap, NOW + timedelta(hours=2))  # 47 has left the window too


def test_a_send_is_added_in_order_and_the_version_kept():
    log = SendLog(times=(NOW - timedelta(days=1),), version=4).with_send(NOW - timedelta(days=2))
    assert log.times == (NOW - timedelta(days=2), NOW - timedelta(days=1))
    assert log.version == 4


def test_the_log_drops_what_no_cap_can_count():
    assert timedelta(days=30) == KEPT_FOR
    old = (NOW - KEPT_FOR, NOW - KEPT_FOR + timedelta(seconds=1))
    assert SendLog(times=old).with_send(NOW).times == (old[1], NOW)


def test_the_log_keeps_the_newest_hundred():
    assert MAX_KEPT_SENDS == 100
    times = tuple(NOW - timedelta(minutes=minutes) for minutes in range(150, 0, -1))
    log = SendLog(times=times).with_send(NOW)
    assert len(log.times) == 100
    assert log.times[-1] == NOW and log.times[0] == NOW - timedelta(minutes=99)
    assert log.over(FrequencyCap(max_messages=100, per_days=1), NOW)


def test_the_widest_cap_is_decided_by_what_the_log_keeps():
    cap = FrequencyCap(max_messages=100, per_days=30)
    log = SendLog()
    for minutes in range(100):
        log = log.with_send(NOW - timedelta(days=29) + timedelta(minutes=minutes))
    assert log.over(cap, NOW)
    assert not log.over(cap, NOW + timedelta(days=1))


@pytest.mark.parametrize(
    ("max_messages", "per_days"), [(0, 7), (101, 7), (1, 0), (1, 31), (True, 7), (1.5, 7)]
)
def test_a_cap_out_of_bounds_is_refused(max_messages, per_days):
    with pytest.raises(ValueError, match="frequency cap"):
        FrequencyCap(max_messages=max_messages, per_days=per_days)


def test_a_cap_as_a_dict():
    assert FrequencyCap(max_messages=2, per_days=14).to_dict() == {"max_messages": 2, "per_days": 14}


# --- campaigns and their next run -----------------------------------------------------


def test_a_new_campaign_is_version_1_and_runs_only_when_active():
    assert campaign(DRAFT).version == 1
    assert campaign(DRAFT).next_run_at is None
    assert campaign(ACTIVE).next_run_at == NEXT_MONDAY
    assert campaign(ACTIVE, schedule=None).next_run_at is None


def test_activating_a_campaign_schedules_its_next_run():
    later = NOW + timedelta(hours=1)
    active = campaign(DRAFT).with_changes({"status": ACTIVE}, later)
    assert active.next_run_at == NEXT_MONDAY
    assert active.updated_at == later
    assert active.version == 1  # the store bumps it


def test_pausing_a_campaign_clears_its_next_run():
    assert campaign(ACTIVE).with_changes({"status": PAUSED}, NOW).next_run_at is None


def test_a_new_schedule_moves_the_next_run():
    daily = Schedule(cron="0 9 * * *", timezone="UTC")
    assert campaign(ACTIVE).with_changes({"schedule": daily}, NOW).next_run_at == datetime(
        2026, 11, 27, 9, tzinfo=UTC
    )
    assert campaign(ACTIVE).with_changes({"schedule": None}, NOW).next_run_at is None


def test_a_one_off_schedule_in_the_past_has_no_next_run():
    past = Schedule(at=NOW - timedelta(minutes=1))
    future = Schedule(at=NOW + timedelta(days=2))
    assert campaign(ACTIVE).with_changes({"schedule": past}, NOW).next_run_at is None
    assert campaign(ACTIVE).with_changes({"schedule": future}, NOW).next_run_at == NOW + timedelta(days=2)


def test_other_changes_leave_a_due_run_to_the_scheduler():
    active = campaign(ACTIVE)
    renamed = active.with_changes({"name": "Spring mugs"}, NEXT_MONDAY + timedelta(seconds=30))
    assert renamed.name == "Spring mugs"
    assert renamed.next_run_at == active.next_run_at  # due now: the scheduler starts it
    rescheduled = active.with_changes({"status": ACTIVE, "schedule": active.schedule}, NEXT_MONDAY)
    assert rescheduled.next_run_at == active.next_run_at


def test_only_editable_fields_and_known_values_change():
    with pytest.raises(ValueError, match="not editable"):
        campaign().with_changes({"version": 9}, NOW)
    with pytest.raises(ValueError, match="status"):
        campaign().with_changes({"status": "deleted"}, NOW)
    with pytest.raises(ValueError, match="recommendation"):
        campaign().with_changes({"recommendation": "best"}, NOW)


def test_drafts_and_paused_campaigns_are_deletable():
    assert campaign(DRAFT).deletable
    assert campaign(PAUSED).deletable
    assert not campaign(ACTIVE).deletable
    assert not campaign(FINISHED).deletable


def test_scheduled_next_is_none_unless_active():
    assert scheduled_next(ACTIVE, WEEKLY, NOW) == NEXT_MONDAY
    for status in (DRAFT, PAUSED, FINISHED):
        assert scheduled_next(status, WEEKLY, NOW) is None
