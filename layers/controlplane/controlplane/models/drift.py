"""Drift: how the cluster differs from the last known-good release, who changed it, and what was done about it.

Payloads of the drift state machine (``statemachines/drift.asl.json``): DetectDrift takes a :class:`DriftRequest`
(what EventBridge Scheduler sends) and returns a :class:`DriftReport`; HealDrift takes the report and returns it with
the heal's progress (:class:`DriftHeal`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field, JsonValue

from controlplane.models.base import StrictModel
from controlplane.models.kube import ObjectRef

Environment = Literal["staging", "production"]


class DriftMode(StrEnum):
    REPORT = "report"
    """Record, measure and notify; change nothing."""
    HEAL = "heal"
    """Also re-apply the last known-good release through the rollback state machine (lock, apply, health, record)."""


class DriftKind(StrEnum):
    CHANGED = "changed"
    """A field of the release has another value in the cluster."""
    ADDED = "added"
    """A field (or a whole object) the release does not have."""
    DELETED = "deleted"
    """An object of the release is missing from the cluster."""


class DriftFinding(StrictModel):
    """One difference. ``path`` names the field like a diff does (``spec.template.spec.containers[name=app].image``;
    ``None`` for a whole object); ``manager`` is the field manager that wrote it (``None`` when nobody can tell: a
    deleted object leaves no managedFields)."""

    ref: ObjectRef
    kind: DriftKind
    path: str | None = None
    manager: str | None = None
    operation: str | None = None
    live: JsonValue = None
    desired: JsonValue = None
    found_by: Literal["ownership", "dry-run", "listing", "record"] = "ownership"


class DriftRequest(StrictModel):
    """What the schedule (or an operator) starts the drift state machine with."""

    environment: Environment
    now: datetime | None = None
    execution_arn: str = "unknown"


class HealStatus(StrEnum):
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DriftHeal(StrictModel):
    """The rollback execution that re-applied the last known-good release, and what the cluster looked like after."""

    execution_arn: str
    status: HealStatus = HealStatus.STARTED
    cause: str | None = None
    remaining: int | None = None
    """Findings still there after a successful heal (0: restored)."""


class DriftReport(StrictModel):
    """One drift check of one environment (``ENV#<env>`` / ``DRIFT#<checked_at>`` in the ledger, JSON in S3)."""

    environment: Environment
    checked_at: datetime
    execution_arn: str
    mode: DriftMode
    release_id: str | None = None
    """The last known-good release compared against (``None``: nothing deployed yet, nothing to compare)."""
    objects: int = 0
    addons_checked: list[str] = Field(default_factory=list)
    """The add-on objects compared (``ObjectRef.key``): a deploy trusts this check for these only (InstallAddons
    checks the live ones of the others; empty in checks made before the drift check covered the add-ons)."""
    findings: list[DriftFinding] = Field(default_factory=list)
    findings_total: int = 0
    """How many findings there were (``findings`` may hold only the first ones: a state's payload is bounded)."""
    skipped: str | None = None
    """Why nothing was compared (the lock is held: a release is being applied, its objects are in flux)."""
    report_uri: str | None = None
    heal: DriftHeal | None = None
    should_heal: bool = False
    """Drifted, in heal mode, where healing is allowed (never production: a production rollback needs an operator)."""

    @property
    def drifted_objects(self) -> int:
        return len({f.ref.key for f in self.findings})
