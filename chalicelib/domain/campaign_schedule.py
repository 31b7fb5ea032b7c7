"""When a campaign runs: a five-field cron evaluated on the wall clock of an IANA time zone, or
one moment (`at`).

Cron expressions are evaluated by `cronsim` (healthchecks.io's), which follows Debian cron:
names (MON, JAN), ranges, steps and lists, plus its L, LW and # forms; a day that is in both
the day-of-month and day-of-week fields matches either, unless one of them starts with "*".
Six- and seven-field forms (seconds, years) and "@daily"-style macros are refused: a campaign
runs at most once a minute, and one notation is enough.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from chalicelib.domain.clock import parse_rfc3339, require_aware, to_rfc3339

CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_CRON_EXPECTED = 'must be five cron fields (minute hour day-of-month month day-of-week), e.g. "0 9 * * MON"'
_CRON_MAX_CHARS = 200
_ZONE_EXPECTED = 'must be an IANA time zone name, e.g. "Europe/Stockholm" or "UTC"'
_ZONE_MAX_CHARS = 64
# The API's bounds of every timestamp (api/schemas.py: EARLIEST, LATEST).
EARLIEST_AT = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_AT = datetime(2999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
_AT_EXPECTED = 'must be an RFC 3339 timestamp with a UTC offset, e.g. "2026-05-04T09:00:00+02:00"'
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_SHAPES = (
    ({"cron", "timezone"}, "a repeating campaign"),
    ({"at"}, "a single run"),
)
# Where the check that a cron can fire at all starts. cronsim searches 50 years ahead, and any
# satisfiable expression fires within about 30 (the rarest, Feb 29 or a fifth Monday in
# February, recur every 28 years), so whether it finds one does not depend on this moment.
_PROBE_FROM = datetime(2000, 1, 1, tzinfo=UTC)
# In a repeated hour cronsim may answer a moment of its first pass, which is before `after`
# when `after` is in the second; this many of those are skipped (an hour of minutes, twice).
_MAX_SKIPPED = 24 * 60


class ScheduleError(ValueError):
    """A schedule the API user must correct; `message` completes "<field> ..."."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Schedule:
    cron: str | None = None  # five fields, e.g. "0 9 * * MON"
    timezone: str | None = None  # IANA zone the cron's wall clock is read in
    at: datetime | None = None  # aware, UTC: a single run

    def to_dict(self) -> dict:
        if self.at is not None:
            return {"at": to_rfc3339(self.at)}
        return {"cron": self.cron, "timezone": self.timezone}

    @property
    def once(self) -> bool:
        return self.at is not None


def parse_schedule(value: object) -> Schedule | None:
    """The schedule of a request body or a stored item: None, {"cron", "timezone"} or {"at"}.
    ScheduleError names the field at fault."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ScheduleError("schedule", _shape_message())
    keys = set(value)
    if keys == {"at"}:
        return Schedule(at=_parse_at(value["at"]))
    if keys == {"cron", "timezone"}:
        return Schedule(cron=_parse_cron(value["cron"]), timezone=_parse_zone(value["timezone"]))
    if "at" in keys and keys & {"cron", "timezone"}:
        raise ScheduleError(
            "schedule", f"takes either cron and timezone, or at, not both; {_shape_message()}"
        )
    unknown = sorted(str(key) for key in keys - {"at", "cron", "timezone"})
    if unknown:
        raise ScheduleError("schedule", f"has unknown keys {unknown}; {_shape_message()}")
    if keys == {"cron"}:
        raise ScheduleError(
            "schedule", "needs a timezone with its cron: the cron is read on that zone's clock"
        )
    raise ScheduleError("schedule", _shape_message())


def _shape_message() -> str:
    shapes = " or ".join(
        "{" + ", ".join(f'"{key}"' for key in sorted(keys)) + "} for " + what for keys, what in _SHAPES
    )
    return f"must be {shapes}, or null"


def _parse_cron(value: object) -> str:
    if not isinstance(value, str) or not value.isascii() or len(value) > _CRON_MAX_CHARS:
        raise ScheduleError("schedule.cron", _CRON_EXPECTED)
    fields = value.split()
    if len(fields) != len(CRON_FIELDS):
        raise ScheduleError("schedule.cron", _CRON_EXPECTED)
    cron = " ".join(fields)
    try:
        next(CronSim(cron, _PROBE_FROM))
    except CronSimError as error:
        raise ScheduleError("schedule.cron", _cron_problem(cron, str(error))) from None
    except StopIteration:
        raise ScheduleError("schedule.cron", "never fires: no date matches all its fields") from None
    return cron


def _cron_problem(cron: str, error: str) -> str:
    # cronsim says "Bad day-of-month" both for a day that no month has (32) and for one that
    # none of the expression's months has (30 in February); only the second fires in any month.
    fields = cron.split()
    if error == "Bad day-of-month":
        try:
            CronSim(" ".join((*fields[:3], "*", fields[4])), _PROBE_FROM)
        except CronSimError:
            pass
        else:
            return "never fires: none of its months has that day of the month"
    field = error.removeprefix("Bad ").strip()
    if field in CRON_FIELDS:
        return f"has an invalid {field} field; {_CRON_EXPECTED}"
    return _CRON_EXPECTED


@cache
def _zone_names() -> frozenset[str]:
    # The IANA names as the tzdata package lists them. ZoneInfo alone also opens whatever else
    # the system's zoneinfo directory holds: "localtime", "posixrules", "posix/...", "right/..."
    # (leap-second clocks). "Factory" is a placeholder zone, not a place.
    from importlib.resources import files

    names = files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    return frozenset(names) - {"Factory"}


def _parse_zone(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > _ZONE_MAX_CHARS or value not in _zone_names():
        raise ScheduleError("schedule.timezone", _ZONE_EXPECTED)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("schedule.timezone", _ZONE_EXPECTED) from None
    return value


def _parse_at(value: object) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and _RFC3339.fullmatch(value):
        try:
            moment = parse_rfc3339(value.upper())
        except (ValueError, OverflowError):  # beyond year 9999 in UTC
            raise ScheduleError("schedule.at", _AT_EXPECTED) from None
    else:
        raise ScheduleError("schedule.at", _AT_EXPECTED)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ScheduleError("schedule.at", _AT_EXPECTED)
    try:
        in_range = EARLIEST_AT <= moment <= LATEST_AT
    except OverflowError:
        in_range = False
    if not in_range:
        raise ScheduleError(
            "schedule.at", "must be between 1900-01-01 and 2999-12-31 (UTC), as every timestamp"
        )
    # Milliseconds, as to_dict writes them: a stored schedule reads back equal.
    return moment.astimezone(UTC).replace(microsecond=moment.microsecond // 1000 * 1000)


def next_run(schedule: Schedule, after: datetime) -> datetime | None:
    """The first moment of `schedule` strictly after `after`, in UTC; None if there is none
    (a single run that is not later than `after`).

    A cron is read on the wall clock of its zone: "0 9 * * *" in Europe/Stockholm is 07:00 UTC
    in summer and 08:00 UTC in winter. At the changes of daylight saving time it does what
    Debian cron does (cronsim's behaviour, relied on here and pinned by the tests):

    - A job at a fixed time (its minute and hour fields do not start with "*") whose time does
      not exist that day, 02:30 on the day clocks go from 02:00 to 03:00, runs once, at the
      first minute after the jump (03:00). One whose time happens twice, 02:30 on the day
      clocks go back from 03:00 to 02:00, runs once, at the first of the two (in summer time).
    - A job whose minute or hour field starts with "*" ("*/15 * * * *", "0 * * * *") follows
      the real clock: it runs in both passes of a repeated hour, as they are different
      moments, and not at all in a skipped one.

    Either way no moment is returned twice: iterating `next_run(s, next_run(s, t))` is
    strictly increasing.
    """
    require_aware(after, "after")
    after = after.astimezone(UTC)
    if schedule.at is not None:
        return schedule.at if schedule.at > after else None
    if schedule.cron is None or schedule.timezone is None:
        raise ValueError("a schedule has either a cron and a timezone, or an at")
    runs = CronSim(schedule.cron, after.astimezone(ZoneInfo(schedule.timezone)))
    for _ in range(_MAX_SKIPPED):
        try:
            moment = next(runs).astimezone(UTC).replace(second=0, microsecond=0)
        except StopIteration:
            return None
        if moment > after:
            return moment
    return None
