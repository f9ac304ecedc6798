"""PromoteImages: tagging each digest for the environment and the release."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from controlplane.models.base import StrictModel
from controlplane.models.images import Images
from controlplane.models.lease import Lease
from controlplane.models.release import Environment


class PromotionRequest(StrictModel):
    environment: Environment
    release_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$")
    images: Images
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")
    lease: Lease = Field(description="$.lock.lease: renewed before any tag is written (lost: LockLostError)")

    def tags(self, *, moving: bool = True) -> list[str]:
        """The release's own tag, and the environment's moving tag when the repository lets tags move."""
        release_tag = f"{self.environment}-{self.release_id}"
        return [self.environment, release_tag] if moving else [release_tag]


class TagOutcome(StrEnum):
    TAGGED = "TAGGED"
    UNCHANGED = "UNCHANGED"


class TagResult(StrictModel):
    service: str
    digest: str
    tag: str
    outcome: TagOutcome


class PromotionReport(StrictModel):
    environment: Environment
    release_id: str
    results: list[TagResult]
    rollout_started_at: datetime | None = Field(
        default=None, description="The last gate passed: the release's rollout deadline counts from here."
    )
    rollout_deadline_at: datetime | None = None
