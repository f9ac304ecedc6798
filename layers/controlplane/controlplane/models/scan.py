"""ScanImages: the ECR scan gate's policy (severity ordering, CVE allowlist), requests and reports."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from controlplane.models.base import StrictModel
from controlplane.models.images import ImageRef, Images
from controlplane.models.lease import Lease
from controlplane.models.release import Environment


class Severity(StrEnum):
    INFORMATIONAL = "INFORMATIONAL"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)

    @classmethod
    def parse(cls, value: str | None) -> Severity | None:
        """ECR severities; ``UNDEFINED``/``UNTRIAGED`` (no rating yet) have no rank and never block."""
        try:
            return cls(str(value).upper())
        except ValueError:
            return None


class ScanPolicy(StrictModel):
    block_at: Severity = Severity.CRITICAL
    allowlist: frozenset[str] = frozenset()
    timeout_s: int = Field(default=1800, gt=0)

    def at_or_above(self, finding: Finding) -> bool:
        severity = Severity.parse(finding.severity)
        return severity is not None and severity.rank >= self.block_at.rank

    def blocks(self, finding: Finding) -> bool:
        return self.at_or_above(finding) and finding.id not in self.allowlist

    def excuses(self, finding: Finding) -> bool:
        """The finding would block, but its CVE id is allowlisted."""
        return self.at_or_above(finding) and finding.id in self.allowlist


class Finding(StrictModel):
    id: str
    severity: str
    package: str | None = None


class ScanStatus(StrEnum):
    PASSED = "PASSED"
    IN_PROGRESS = "IN_PROGRESS"


class ImageScan(StrictModel):
    image: ImageRef
    status: Literal["COMPLETE", "IN_PROGRESS", "STARTED"]
    blocking: list[Finding] = Field(default_factory=list)
    allowlisted: list[str] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)


class ScanRequest(StrictModel):
    environment: Environment
    images: Images
    deadline: datetime | None = Field(default=None, description="Set by the first check; passed back by the loop.")
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")
    lease: Lease = Field(description="$.lock.lease: renewed by every look (the scan wait keeps the lock)")


class ScanReport(StrictModel):
    status: ScanStatus
    environment: Environment
    images: list[ImageRef]
    deadline: datetime
    scans: list[ImageScan]

    @property
    def waiting_for(self) -> list[str]:
        return [s.image.service for s in self.scans if s.status != "COMPLETE"]
