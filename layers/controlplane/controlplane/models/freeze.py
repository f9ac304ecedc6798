"""CheckFreeze: one-off and weekly freeze windows, the freeze check's request and decision."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, field_validator, model_validator

from controlplane.models.base import StrictModel
from controlplane.models.release import Environment

_DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_WEEK_MINUTES = 7 * 24 * 60
_WEEKLY_POINT = re.compile(r"^(MON|TUE|WED|THU|FRI|SAT|SUN) ([01]\d|2[0-3]):([0-5]\d)$")


class FreezeWindow(StrictModel):
    """A one-off freeze: [start, end), each time with its offset (``Z`` or ``+01:00``)."""

    start: datetime
    end: datetime
    reason: str
    environments: list[Environment] = Field(default_factory=lambda: list[Environment](["production"]))

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("freeze window times must carry a timezone (use UTC, e.g. 2025-12-24T00:00:00Z)")
        if self.end <= self.start:
            raise ValueError("freeze window end must be after start")
        return self

    def covers(self, now: datetime) -> bool:
        return self.start <= now < self.end


class WeeklyFreeze(StrictModel):
    """A weekly freeze, cron-like: ``from`` ``"FRI 18:00"`` to ``"MON 06:00"`` in ``timezone`` (an IANA name,
    ``UTC`` when not given; may wrap the week). Local time follows daylight saving: "FRI 18:00" in
    ``Europe/Berlin`` is 17:00 UTC in winter and 16:00 UTC in summer."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    from_: str = Field(alias="from", pattern=_WEEKLY_POINT.pattern)
    to: str = Field(pattern=_WEEKLY_POINT.pattern)
    reason: str
    timezone: str = Field(default="UTC", description="IANA time zone of from/to, e.g. Europe/Berlin.")
    environments: list[Environment] = Field(default_factory=lambda: list[Environment](["production"]))

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. UTC, Europe/Berlin, America/New_York)") from None
        return value

    @staticmethod
    def _minute_of_week(point: str) -> int:
        match = _WEEKLY_POINT.match(point)
        assert match is not None  # the field pattern guarantees it
        return _DAYS.index(match[1]) * 1440 + int(match[2]) * 60 + int(match[3])

    def covers(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.timezone))
        minute = local.weekday() * 1440 + local.hour * 60 + local.minute
        start, end = self._minute_of_week(self.from_), self._minute_of_week(self.to)
        if start <= end:
            return start <= minute < end
        return minute >= start or minute < end  # wraps past Sunday midnight


AnyFreeze = FreezeWindow | WeeklyFreeze


class FreezeCalendar(StrictModel):
    windows: list[AnyFreeze] = Field(default_factory=list)

    def active(self, environment: str, now: datetime) -> AnyFreeze | None:
        return next((w for w in self.windows if environment in w.environments and w.covers(now)), None)


class FreezeCheckRequest(StrictModel):
    environment: Environment
    release_id: str
    force: bool = False
    forced_by: str | None = None
    force_reason: str | None = None
    execution_arn: str = ""
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")

    @property
    def forced_by_someone(self) -> bool:
        """Forcing through a freeze needs a name (who takes responsibility); ``force`` alone does not."""
        return self.force and bool(self.forced_by)


class FreezeDecision(StrictModel):
    environment: Environment
    release_id: str
    frozen: bool
    forced: bool = False
    forced_by: str | None = None
    window_reason: str | None = None
