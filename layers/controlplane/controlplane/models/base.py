"""What every payload model shares: immutable, unknown fields refused; and the time a step acts at."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A payload we own: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


def at(now: datetime | None) -> datetime:
    """``now`` from the state machine when given (it follows the Wait states' clock), the wall clock otherwise."""
    return (now or utcnow()).astimezone(UTC)
