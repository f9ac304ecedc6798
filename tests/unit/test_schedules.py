"""Schedule expressions as EventBridge Scheduler evaluates them: rate, cron (with time zones) and at."""

from __future__ import annotations

import datetime as dt

import pytest

from local.aws.schedules import UnsupportedExpressionError, next_fire

pytestmark = pytest.mark.unit

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_rate_fires_a_period_after_the_last_look() -> None:
    assert next_fire("rate(1 hour)", at("2026-12-01T10:15:00")) == at("2026-12-01T11:15:00")
    assert next_fire("rate(5 minutes)", at("2026-12-01T10:15:00")) == at("2026-12-01T10:20:00")


def test_cron_weekdays_in_a_time_zone_with_daylight_saving() -> None:
    evening = "cron(0 20 ? * MON-FRI *)"
    # Friday 2026-12-04 20:00 Berlin (CET, UTC+1) = 19:00 UTC; after it, Monday 20:00 Berlin
    assert next_fire(evening, at("2026-12-04T12:00:00"), "Europe/Berlin") == at("2026-12-04T19:00:00")
    assert next_fire(evening, at("2026-12-04T19:00:00"), "Europe/Berlin") == at("2026-12-07T19:00:00")
    # in summer (CEST, UTC+2) the same local time is 18:00 UTC
    assert next_fire(evening, at("2026-07-01T00:00:00"), "Europe/Berlin") == at("2026-07-01T18:00:00")


def test_cron_lists_ranges_steps_and_day_of_month() -> None:
    assert next_fire("cron(0/15 * * * ? *)", at("2026-12-01T10:07:00")) == at("2026-12-01T10:15:00")
    assert next_fire("cron(0 3 1 JAN,JUL ? *)", at("2026-12-01T00:00:00")) == at("2027-01-01T03:00:00")
    assert next_fire("cron(0 3 * * ? 2025)", at("2026-12-01T00:00:00")) is None


def test_at_fires_once_and_unsupported_operators_are_named() -> None:
    assert next_fire("at(2026-12-24T18:00:00)", at("2026-12-01T00:00:00")) == at("2026-12-24T18:00:00")
    assert next_fire("at(2026-12-24T18:00:00)", at("2026-12-25T00:00:00")) is None
    with pytest.raises(UnsupportedExpressionError, match="L, W and #"):
        next_fire("cron(0 3 L * ? *)", at("2026-12-01T00:00:00"))
