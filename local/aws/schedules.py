"""Schedules that fire by themselves: EventBridge Scheduler schedules and ``Schedule`` rules on the cloud's clock.

Tests fire a schedule when they want (``cloud.fire_schedule``); a long-running cloud (``make up``) runs a
:class:`ScheduleTicker` instead, which fires each enabled schedule when its expression comes due on the cloud's clock
(real time, or accelerated), in the schedule's time zone, as Scheduler does (at most once per due time; a tick that
finds several due times passed fires once, as a missed window does).

Expressions (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html): ``rate(<n> minute(s)|
hour(s)|day(s))``, ``cron(minutes hours day-of-month month day-of-week year)`` with ``*``, ``?``, lists, ranges,
``/`` steps and the JAN-DEC / SUN-SAT names (day-of-week 1 = Sunday), and ``at(yyyy-mm-ddThh:mm:ss)``. Not served:
the ``L``, ``W`` and ``#`` cron operators (such a schedule never fires here: :class:`UnsupportedExpressionError` is
logged once); Scheduler's flexible time windows (the schedule fires at the start of its window).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {
    m: i for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1)
}
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split(), 1)}  # noqa: SIM905
_LIMIT_DAYS = 366 * 5


class UnsupportedExpressionError(ValueError):
    """A schedule expression this local cloud cannot evaluate (it then never fires)."""


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    if text in {"*", "?"}:
        return frozenset(range(low, high + 1))
    if re.search(r"[LW#]", re.sub(r"[A-Z]{3}", "", text.upper()) if names else text):
        raise UnsupportedExpressionError(f"cron operator in {text!r} (L, W and # are not served locally)")
    values: set[int] = set()
    for part in text.split(","):
        base, _, step = part.partition("/")

        def number(token: str) -> int:
            return names[token.upper()] if names and token.upper() in names else int(token)

        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = number(first), number(last)
        else:
            start = number(base)
            end = high if step else start
        values.update(range(start, end + 1, int(step) if step else 1))
    return frozenset(v for v in values if low <= v <= high)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 1 = Sunday
    years: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, body: str) -> Cron:
        parts = body.split()
        if len(parts) != 6:
            raise UnsupportedExpressionError(f"cron({body}): six fields expected")
        minute, hour, day, month, weekday, year = parts
        return cls(
            minutes=_field(minute, 0, 59),
            hours=_field(hour, 0, 23),
            days=_field(day, 1, 31),
            months=_field(month, 1, 12, _MONTHS),
            weekdays=_field(weekday, 1, 7, _DAYS),
            years=_field(year, 1970, 2199),
            any_day=day in {"*", "?"},
            any_weekday=weekday in {"*", "?"},
        )

    def day_matches(self, day: dt.date) -> bool:
        weekday = day.isoweekday() % 7 + 1  # Sunday = 1
        if day.year not in self.years or day.month not in self.months:
            return False
        if self.any_day:
            return weekday in self.weekdays
        if self.any_weekday:
            return day.day in self.days
        return day.day in self.days or weekday in self.weekdays

    def next_after(self, after: dt.datetime) -> dt.datetime | None:
        """The first time strictly after ``after`` (aware, in its own zone) that matches."""
        start = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        day = start.date()
        for _ in range(_LIMIT_DAYS):
            if self.day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        moment = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=after.tzinfo)
                        if moment >= start:
                            return moment
            day += dt.timedelta(days=1)
        return None


def next_fire(expression: str, after: dt.datetime, timezone: str | None = None) -> dt.datetime | None:
    """When ``expression`` next comes due strictly after ``after`` (UTC in, UTC out); ``None``: never again."""
    expression = expression.strip()
    if match := _RATE.match(expression):
        return after + dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2).rstrip("s")])
    zone = ZoneInfo(timezone) if timezone else dt.UTC
    if expression.startswith("at(") and expression.endswith(")"):
        moment = dt.datetime.fromisoformat(expression[3:-1]).replace(tzinfo=zone).astimezone(dt.UTC)
        return moment if moment > after else None
    if expression.startswith("cron(") and expression.endswith(")"):
        found = Cron.parse(expression[5:-1]).next_after(after.astimezone(zone))
        return found.astimezone(dt.UTC) if found else None
    raise UnsupportedExpressionError(f"{expression!r} is not a rate, cron or at expression")


@dataclass
class _Due:
    name: str
    expression: str
    timezone: str | None
    next: dt.datetime | None


@dataclass
class ScheduleTicker:
    """Fires the cloud's enabled schedules as they come due (``tick(now)``; ``start()`` ticks every wall second)."""

    cloud: Any
    fired: list[tuple[str, dt.datetime]] = field(default_factory=list)
    on_error: Callable[[str, Exception], None] | None = None
    _due: dict[str, _Due] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _schedules(self) -> list[tuple[str, str, str | None, bool]]:
        """(name, expression, time zone, enabled) of every schedule and scheduled rule of the cloud."""
        found: list[tuple[str, str, str | None, bool]] = []
        for source in self.cloud.event_sources:
            if source.kind == "schedule":
                got = self.cloud.client("scheduler").get_schedule(Name=source.name, GroupName=source.bus_or_group)
                found.append(
                    (
                        source.name,
                        got["ScheduleExpression"],
                        got.get("ScheduleExpressionTimezone"),
                        got["State"] == "ENABLED",
                    )
                )
            else:
                rule = self.cloud.client("events").describe_rule(Name=source.name, EventBusName=source.bus_or_group)
                if rule.get("ScheduleExpression"):
                    found.append((source.name, rule["ScheduleExpression"], None, rule.get("State") == "ENABLED"))
        return found

    def tick(self, now: dt.datetime) -> list[str]:
        """Fire what is due at ``now``; the names fired."""
        fired: list[str] = []
        for name, expression, timezone, enabled in self._schedules():
            due = self._due.get(name)
            if due is None or (due.expression, due.timezone) != (expression, timezone):
                try:
                    due = _Due(name, expression, timezone, next_fire(expression, now, timezone))
                except UnsupportedExpressionError as exc:
                    log.warning("schedule %s never fires locally: %s", name, exc)
                    due = _Due(name, expression, timezone, None)
                self._due[name] = due
            if not enabled or due.next is None or due.next > now:
                continue
            due.next = next_fire(expression, now, timezone)
            try:
                self.cloud.fire_schedule(name)
            except Exception as exc:  # noqa: BLE001 - a failed delivery is the target's problem, as on AWS
                if self.on_error:
                    self.on_error(name, exc)
                continue
            self.fired.append((name, now))
            fired.append(name)
        return fired

    def start(self, interval_s: float = 1.0) -> None:
        def run() -> None:
            while not self._stop.wait(interval_s):
                self.tick(self.cloud.clock.utcnow())

        threading.Thread(target=run, name="schedules", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
