"""The event pump's schedules: when each `schedule` handler runs locally.

`rate(N minute|minutes|hour|hours|day|days)` runs every N units, the first time N units after
start, as EventBridge does. `cron(...)` is not interpreted locally: it runs once every 24 hours
after start. The pump's `trigger(name)` runs any schedule now.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalice.app import ScheduledEventConfig

CRON_PERIOD_S = 24 * 3600
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class Schedule:
    """When one `schedule` handler is due next."""

    def __init__(self, source: ScheduledEventConfig, now: float) -> None:
        self.name = source.name
        expression = source.schedule_expression
        self.expression = expression if isinstance(expression, str) else expression.to_string()
        self.period = _period(self.expression)
        self.due = now + self.period

    def take_due(self, now: float) -> bool:
        if now < self.due:
            return False
        self.due = now + self.period
        return True


def _period(expression: str) -> float:
    match = _RATE.match(expression.strip())
    if match is None:
        return CRON_PERIOD_S
    value, unit = int(match.group(1)), match.group(2).rstrip("s")
    return max(1, value) * _UNIT_SECONDS[unit]
