from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.campaign_schedule import Schedule, ScheduleError, next_run, parse_schedule

STOCKHOLM = ZoneInfo("Europe/Stockholm")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def runs(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    moments = []
    for _ in range(count):
        after = next_run(schedule, after)
        assert after is not None
        moments.append(after)
    return moments


def cron(expression: str, zone: str = "Europe/Stockholm") -> Schedule:
    schedule = parse_schedule({"cron": expression, "timezone": zone})
    assert schedule is not None
    return schedule


# --- parsing ---------------------------------------------------------------------------


def test_no_schedule_is_none():
    assert parse_schedule(None) is None


def test_a_cron_schedule_keeps_its_expression_and_zone():
    schedule = cron("0  9 * *   mon")
    assert schedule == Schedule(cron="0 9 * * mon", timezone="Europe/Stockholm")
    assert not schedule.once
    assert schedule.to_dict() == {"cron": "0 9 * * mon", "timezone": "Europe/Stockholm"}


def test_a_one_off_schedule_is_stored_in_utc_and_reads_back_equal():
    schedule = parse_schedule({"at": "2026-05-04T09:00:00.250+02:00"})
    assert schedule == Schedule(at=utc(2026, 5, 4, 7, 0, 0, 250_000))
    assert schedule.once
    assert schedule.to_dict() == {"at": "2026-05-04T07:00:00.250Z"}
    assert parse_schedule(schedule.to_dict()) == schedule


@pytest.mark.parametrize(
    "expression",
    ["0 9 * * MON-FRI", "*/15 8-17 * JAN,DEC *", "0 0 L * *", "30 12 * * 5L", "0 9 * * 1#2", "0 0 29 2 *"],
)
def test_the_cron_forms_cronsim_reads_are_accepted(expression):
    assert cron(expression).cron == expression


@pytest.mark.parametrize("zone", ["UTC", "Europe/Stockholm", "America/Argentina/Buenos_Aires", "Etc/GMT-14"])
def test_iana_zones_are_accepted(zone):
    assert cron("0 9 * * *", zone).timezone == zone


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("0 9 * * MON", "schedule"),
        (["0 9 * * MON", "UTC"], "schedule"),
        ({}, "schedule"),
        ({"cron": "0 9 * * MON"}, "schedule"),
        ({"timezone": "UTC"}, "schedule"),
        ({"cron": "0 9 * * MON", "timezone": "UTC", "at": "2026-05-04T09:00:00Z"}, "schedule"),
        ({"cron": "0 9 * * MON", "at": "2026-05-04T09:00:00Z"}, "schedule"),
        ({"cron": "0 9 * * MON", "timezone": "UTC", "every": "week"}, "schedule"),
        ({"at": "2026-05-04T09:00:00Z", "note": "x"}, "schedule"),
        ({"cron": "nine on mondays", "timezone": "UTC"}, "schedule.cron"),
        ({"cron": "0 9 * * MON *", "timezone": "UTC"}, "schedule.cron"),
        ({"cron": "0 0 9 * * MON", "timezone": "UTC"}, "schedule.cron"),
        ({"cron": "0 9 * *", "timezone": "UTC"}, "schedule.cron"),
        ({"cron": "@daily", "timezone": "UTC"}, "schedule.cron"),
        ({"cron": "", "timezone": "UTC"}, "schedule.cron"),
        ({"cron": 9, "timezone": "UTC"}, "schedule.cron"),
        ({"cron": "61 9 * * *", "timezone": "UTC"}, "schedule.cron"),
        ({"cron": "0 9 * * 8", "timezone": "UTC"}, "schedule.cron"),
        ({"cron": "0 9 32 * *", "timezone": "UTC"}, "schedule.cron"),
        ({"cron": "0 9 * * FRI-MON", "timezone": "UTC"}, "schedule.cron"),
        ({"cron": "*/0 9 * * *", "timezone": "UTC"}, "schedule.cron"),
        ({"cron": "０ 9 * * *", "timezone": "UTC"}, "schedule.cron"),
        ({"cron": "0 0 30 2 *", "timezone": "UTC"}, "schedule.cron"),
        ({"cron": "0 9 * * MON", "timezone": "Europe/Nowhere"}, "schedule.timezone"),
        ({"cron": "0 9 * * MON", "timezone": ""}, "schedule.timezone"),
        ({"cron": "0 9 * * MON", "timezone": "utc"}, "schedule.timezone"),
        ({"cron": "0 9 * * MON", "timezone": "/etc/localtime"}, "schedule.timezone"),
        ({"cron": "0 9 * * MON", "timezone": "localtime"}, "schedule.timezone"),
        ({"cron": "0 9 * * MON", "timezone": "../../etc/passwd"}, "schedule.timezone"),
        ({"cron": "0 9 * * MON", "timezone": "posix/Europe/Stockholm"}, "schedule.timezone"),
        ({"cron": "0 9 * * MON", "timezone": "right/UTC"}, "schedule.timezone"),
        ({"cron": "0 9 * * MON", "timezone": None}, "schedule.timezone"),
        ({"at": "2026-05-04T09:00:00"}, "schedule.at"),
        ({"at": "2026-05-04"}, "schedule.at"),
        ({"at": "2026-05-04T25:00:00Z"}, "schedule.at"),
        ({"at": "tomorrow"}, "schedule.at"),
        ({"at": 1777885200}, "schedule.at"),
        ({"at": datetime(2026, 5, 4, 9)}, "schedule.at"),
    ],
)
def test_a_malformed_schedule_names_its_field(value, field):
    with pytest.raises(ScheduleError) as raised:
        parse_schedule(value)
    assert raised.value.field == field
    assert raised.value.message
    assert str(raised.value) == f"{field} {raised.value.message}"


def test_a_cron_of_the_wrong_shape_is_told_what_is_expected():
    with pytest.raises(ScheduleError) as raised:
        parse_schedule({"cron": "0 0 9 * * MON", "timezone": "UTC"})
    assert "five cron fields (minute hour day-of-month month day-of-week)" in raised.value.message
    assert '"0 9 * * MON"' in raised.value.message


def test_a_cron_that_never_fires_says_so():
    with pytest.raises(ScheduleError) as raised:
        parse_schedule({"cron": "0 0 30 2 *", "timezone": "UTC"})
    assert "never fires" in raised.value.message


def test_a_bad_field_of_a_cron_is_named():
    with pytest.raises(ScheduleError) as raised:
        parse_schedule({"cron": "0 25 * * *", "timezone": "UTC"})
    assert "hour" in raised.value.message


# --- next run: cron on a zone's wall clock ------------------------------------------------


def test_monday_nine_stays_nine_local_across_the_spring_change():
    moments = runs(cron("0 9 * * MON"), utc(2026, 3, 20), 3)
    # Clocks go forward on Sunday 29 March 2026: CET (UTC+1) becomes CEST (UTC+2).
    assert moments == [utc(2026, 3, 23, 8), utc(2026, 3, 30, 7), utc(2026, 4, 6, 7)]
    assert {moment.astimezone(STOCKHOLM).hour for moment in moments} == {9}


def test_monday_nine_stays_nine_local_across_the_autumn_change():
    moments = runs(cron("0 9 * * MON"), utc(2026, 10, 15), 3)
    # Clocks go back on Sunday 25 October 2026: CEST (UTC+2) becomes CET (UTC+1).
    assert moments == [utc(2026, 10, 19, 7), utc(2026, 10, 26, 8), utc(2026, 11, 2, 8)]
    assert {moment.astimezone(STOCKHOLM).hour for moment in moments} == {9}


def test_a_job_in_the_skipped_hour_runs_once_right_after_the_jump():
    # 02:30 does not exist on 29 March 2026 in Stockholm (02:00 CET becomes 03:00 CEST).
    moments = runs(cron("30 2 * * *"), utc(2026, 3, 28, 12), 2)
    assert moments == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    assert moments[0].astimezone(STOCKHOLM).strftime("%H:%M %Z") == "03:00 CEST"


def test_a_job_in_the_repeated_hour_runs_once_at_its_first_pass():
    # 02:30 happens twice on 25 October 2026 in Stockholm: at 00:30 and at 01:30 UTC.
    moments = runs(cron("30 2 * * *"), utc(2026, 10, 24, 12), 2)
    assert moments == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    assert moments[0].astimezone(STOCKHOLM).strftime("%H:%M %Z") == "02:30 CEST"


def test_from_inside_the_second_pass_the_first_one_is_not_run_again():
    # After 01:10 UTC (02:10 CET, the second 02:10) today's 02:30 has already run (00:30 UTC).
    assert next_run(cron("30 2 * * *"), utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 26, 1, 30)
    assert next_run(cron("0-59 2 * * *"), utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 26, 1, 0)
    # A minute field starting with "*" follows the real clock: the second pass is its own.
    assert next_run(cron("* 2 * * *"), utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 25, 1, 11)


def test_every_fifteen_minutes_follows_the_real_clock_through_the_repeated_hour():
    moments = runs(cron("*/15 * * * *"), utc(2026, 10, 24, 23, 50), 16)
    assert len(set(moments)) == len(moments)
    assert moments == [utc(2026, 10, 25, 0, 0) + timedelta(minutes=15 * i) for i in range(16)]
    local = [moment.astimezone(STOCKHOLM).strftime("%H:%M") for moment in moments]
    assert local.count("02:15") == 2  # both passes of the hour are real moments


def test_every_fifteen_minutes_skips_the_missing_hour():
    moments = runs(cron("*/15 * * * *"), utc(2026, 3, 29, 0, 40), 3)
    assert moments == [utc(2026, 3, 29, 0, 45), utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 15)]
    local = [moment.astimezone(STOCKHOLM).strftime("%H:%M") for moment in moments]
    assert local == ["01:45", "03:00", "03:15"]


def test_the_next_run_is_strictly_after_and_on_a_whole_minute():
    schedule = cron("0 9 * * *", "UTC")
    assert next_run(schedule, utc(2026, 5, 4, 9)) == utc(2026, 5, 5, 9)
    assert next_run(schedule, utc(2026, 5, 4, 8, 59, 59, 999_999)) == utc(2026, 5, 4, 9)
    assert next_run(schedule, utc(2026, 5, 4, 9, 0, 0, 1)) == utc(2026, 5, 5, 9)


def test_the_next_run_is_in_utc_whatever_zone_after_is_given_in():
    moment = next_run(cron("0 9 * * *"), datetime(2026, 5, 4, 8, tzinfo=STOCKHOLM))
    assert moment == utc(2026, 5, 4, 7)
    assert moment.tzinfo is UTC


def test_a_naive_after_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        next_run(cron("0 9 * * *"), datetime(2026, 5, 4))


# --- next run: one-off ----------------------------------------------------------------


def test_a_one_off_run_is_next_until_it_has_passed():
    schedule = Schedule(at=utc(2026, 5, 4, 7))
    assert next_run(schedule, utc(2026, 5, 4, 6, 59)) == utc(2026, 5, 4, 7)
    assert next_run(schedule, utc(2026, 5, 4, 7)) is None
    assert next_run(schedule, utc(2026, 6, 1)) is None


# --- property: iterating never repeats or goes back ----------------------------------------

ZONES = [
    "Europe/Stockholm",
    "America/New_York",
    "Australia/Lord_Howe",  # half-hour daylight saving
    "America/Havana",  # changes at midnight
    "America/Santiago",
    "Asia/Kathmandu",
    "Antarctica/Troll",  # two-hour daylight saving
    "UTC",
]
CRONS = [
    "0 9 * * MON",
    "30 2 * * *",
    "0 0 * * *",
    "*/15 * * * *",
    "0 * * * *",
    "0-59 2 * * *",
    "15,45 0-3 * * *",
    "0 */3 * * *",
    "0 12 L * *",
    "30 1 * * 0",
]


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    expression=st.sampled_from(CRONS),
    start=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
    ),
)
def test_iterating_next_run_is_strictly_increasing(zone, expression, start):
    schedule = cron(expression, zone)
    previous = start
    for _ in range(40):
        moment = next_run(schedule, previous)
        assert moment is not None
        assert moment > previous
        assert moment.tzinfo is UTC and moment.second == 0 and moment.microsecond == 0
        previous = moment


@cache
def transitions(zone: str) -> list[datetime]:
    """The moments the zone's UTC offset changes in 2024-2030, to the minute."""
    tz = ZoneInfo(zone)

    def offset(moment: datetime) -> timedelta | None:
        return moment.astimezone(tz).utcoffset()

    found, day = [], utc(2024, 1, 1)
    while day < utc(2031, 1, 1):
        low, high = day, day + timedelta(days=1)
        if offset(low) != offset(high):
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == offset(low) else (low, middle)
            found.append(high.replace(second=0, microsecond=0))
        day += timedelta(days=1)
    return found


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from([zone for zone in ZONES if zone not in ("UTC", "Asia/Kathmandu")]),
    expression=st.sampled_from(CRONS),
    pick=st.integers(min_value=0),
    offset=st.integers(min_value=-180, max_value=180),
)
def test_iterating_next_run_near_a_change_of_offset_is_strictly_increasing(zone, expression, pick, offset):
    changes = transitions(zone)
    previous = changes[pick % len(changes)] + timedelta(minutes=offset)
    schedule = cron(expression, zone)
    for _ in range(12):
        moment = next_run(schedule, previous)
        assert moment is not None and moment > previous
        previous = moment


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(["Europe/Stockholm", "America/New_York", "Australia/Lord_Howe", "America/Havana"]),
    day=st.dates(min_value=datetime(2024, 1, 1).date(), max_value=datetime(2030, 12, 31).date()),
)
def test_a_daily_job_runs_exactly_once_each_local_day(zone, day):
    tz = ZoneInfo(zone)
    schedule = cron("30 2 * * *", zone)
    start = datetime.combine(day, datetime.min.time(), tzinfo=tz).astimezone(UTC)
    local_days = [moment.astimezone(tz).date() for moment in runs(schedule, start, 10)]
    assert local_days == [day + timedelta(days=i) for i in range(10)]


@pytest.mark.parametrize(
    "at",
    ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "1899-12-31T23:59:59Z", "3000-01-01T00:00:00Z",
     "2999-12-31T23:59:59-01:00", "9999-12-31T23:59:59-01:00"],
)  # fmt: skip
def test_a_one_off_time_outside_the_api_s_timestamp_bounds_names_schedule_at(at):
    with pytest.raises(ScheduleError) as raised:
        parse_schedule({"at": at})
    assert raised.value.field == "schedule.at"
