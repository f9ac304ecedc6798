"""Releases and the payloads the deploy and rollback state machines carry between their states.

The state carries ids, digests and references only: manifests never travel through Step Functions (256 KiB limit).
Every model forbids unknown fields, so a typo in the ASL ``Parameters`` fails loudly instead of being ignored.
AWS-owned shapes (the EventBridge ECR event) ignore unknown fields: AWS adds fields without notice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from controlplane import platform
from controlplane.errors import InputValidationError, PlanError
from controlplane.models.base import StrictModel
from controlplane.models.kube import ObjectRef
from controlplane.models.lease import Lease
from controlplane.models.operator import OperatorSignature, Reason

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
_DIGEST = re.compile(DIGEST_PATTERN)
# OCI tag grammar (distribution spec): at most 128 characters, no separators, no shell metacharacters.
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"
_TAG = re.compile(TAG_PATTERN)
# ECR repository names (CreateRepository's pattern; 2..256 characters).
REPOSITORY_PATTERN = r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$"

Digest = Annotated[str, Field(pattern=DIGEST_PATTERN, description="image manifest digest, sha256:<64 hex>")]
Environment = Literal["staging", "production"]
M = TypeVar("M", bound="BaseModel")


def _known_service(name: str) -> str:
    if name not in platform.SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r}; known: {', '.join(platform.SERVICE_NAMES)}")
    return name


ServiceName = Annotated[str, AfterValidator(_known_service)]


class AwsModel(BaseModel):
    """A payload AWS owns: unknown fields are ignored, the ones we read are validated."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)


# --------------------------------------------------------------------------------------------------------------------
# Inputs of the deploy state machine
# --------------------------------------------------------------------------------------------------------------------


class EcrImageActionDetail(AwsModel):
    """``detail`` of an EventBridge ``ECR Image Action`` event."""

    result: Literal["SUCCESS"]
    action_type: Literal["PUSH"] = Field(alias="action-type")
    repository_name: str = Field(alias="repository-name", min_length=2, max_length=256, pattern=REPOSITORY_PATTERN)
    image_digest: Digest = Field(alias="image-digest")
    image_tag: str | None = Field(default=None, alias="image-tag", pattern=TAG_PATTERN)


class EcrPushEvent(AwsModel):
    """The EventBridge event ECR emits on a successful push (what the rule forwards, unchanged)."""

    version: str = Field(default="0", max_length=8)
    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    detail_type: Literal["ECR Image Action"] = Field(alias="detail-type")
    source: Literal["aws.ecr"]
    account: str = Field(pattern=r"^\d{12}$")
    time: AwareDatetime
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    resources: list[Annotated[str, Field(max_length=2048)]] = Field(default_factory=list, max_length=20)
    detail: EcrImageActionDetail

    def service_name(self) -> str:
        """The platform service the pushed repository belongs to; :class:`PlanError` for a repository we do not own."""
        try:
            return platform.service_for_repository(self.detail.repository_name).name
        except KeyError as exc:
            raise PlanError(f"unknown repository: {exc.args[0]}") from None


def _image_reference(value: str) -> str:
    if _DIGEST.match(value) or _TAG.match(value):
        return value
    shown = value if len(value) <= 80 and value.isprintable() else f"{len(value)} characters"
    raise ValueError(
        f"{shown!r} is neither a digest (sha256:<64 hex>) nor an OCI tag ([A-Za-z0-9_][A-Za-z0-9._-], <= 128)"
    )


ImageReference = Annotated[StrictStr, Field(max_length=200), AfterValidator(_image_reference)]


class ConsoleRequest(StrictModel):
    """What an operator pastes in the Step Functions console to deploy by hand.

    ``{"environment": "staging", "services": {"edc-service": "sha256:... or v1.2.3"}, "reason": "...",
    "force": false}``
    """

    environment: Environment
    services: dict[ServiceName, ImageReference] = Field(min_length=1, max_length=len(platform.SERVICE_NAMES))
    reason: Reason
    force: StrictBool = False
    operator: OperatorSignature | None = Field(
        default=None,
        description="Set by the operator API only: who asked, signed. Forcing needs it (the identity is AWS's).",
    )

    @field_validator("services", mode="before")
    @classmethod
    def _accept_repository_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k).removeprefix(platform.REPOSITORY_PREFIX): v for k, v in value.items()}
        return value


class TriggerKind(StrEnum):
    ECR_PUSH = "ecr_push"
    CONSOLE = "console"
    ROLLBACK = "rollback"


class Trigger(StrictModel):
    """Who or what started a release (kept in the ledger and the notification)."""

    kind: TriggerKind
    reason: str
    event_id: str | None = None
    repository: str | None = None
    tag: str | None = None
    force: bool = False
    requested_by: str | None = Field(default=None, description="the operator API's authenticated principal")


# --------------------------------------------------------------------------------------------------------------------
# Releases
# --------------------------------------------------------------------------------------------------------------------


def release_id_for(environment: str, images: dict[str, str], bundle_hash: str) -> str:
    """Deterministic release id: the same environment, digests and manifests always give the same id."""
    material = "\n".join([environment, *(f"{k}={images[k]}" for k in sorted(images)), bundle_hash])
    return "rel-" + hashlib.sha256(material.encode()).hexdigest()[:20]


class ReleaseRef(StrictModel):
    """A release by value: enough to render it again. Small: ids and digests, no manifests."""

    release_id: str = Field(pattern=r"^rel-[0-9a-f]{20}$")
    environment: Environment
    images: dict[str, Digest] = Field(min_length=1)
    bundle_hash: str = Field(min_length=1)

    @classmethod
    def build(cls, environment: Environment, images: dict[str, str], bundle_hash: str) -> ReleaseRef:
        ordered = {k: images[k] for k in sorted(images)}
        return cls(
            release_id=release_id_for(environment, ordered, bundle_hash),
            environment=environment,
            images=ordered,
            bundle_hash=bundle_hash,
        )


class ReleaseStatus(StrEnum):
    PLANNED = "planned"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    REFUSED = "refused"
    """A gate refused the release before anything was written to the cluster (freeze, scan, approval, ...)."""


class ReleaseRecord(StrictModel):
    """One release in the ledger (one DynamoDB item, natural key = release id)."""

    release_id: str
    environment: Environment
    images: dict[str, Digest]
    bundle_hash: str
    status: ReleaseStatus
    trigger: Trigger
    execution_arn: str
    previous_release_id: str | None = None
    changed: dict[str, Digest] = Field(default_factory=dict)
    started_at: datetime
    healthy_at: datetime | None = None
    finished_at: datetime | None = None
    cause: str | None = None
    rolled_back_to: str | None = None
    applied_objects: int | None = None
    cluster_untouched: bool = False
    """True from planning until the first write to the cluster for this release (then False for good); a release
    that fails while it is still True ends "failed, nothing changed" instead of rolling back. Absent (older
    records) reads False: the safe side."""

    def ref(self) -> ReleaseRef:
        return ReleaseRef(
            release_id=self.release_id, environment=self.environment, images=self.images, bundle_hash=self.bundle_hash
        )


class Degraded(StrictModel):
    """An environment whose rollback failed (``ENV#<environment>`` / ``DEGRADED``): automatic deploys are queued, not
    applied, until an operator's rollback succeeds or an operator acknowledges."""

    environment: Environment
    since: datetime
    release_id: str | None = None
    cause: str
    execution_arn: str


class LastKnownGood(StrictModel):
    """The environment's pointer to its last known-good release."""

    environment: Environment
    release_id: str
    previous_release_id: str | None = None
    updated_at: datetime
    execution_arn: str


# --------------------------------------------------------------------------------------------------------------------
# State payloads: one input and one output model per step
# --------------------------------------------------------------------------------------------------------------------


class PlanInput(StrictModel):
    """PlanRelease: the raw execution input plus the context object's execution ARN and start time, and the lock's
    lease (the planned release is written behind it)."""

    input: dict[str, Any]
    execution_arn: str
    started_at: AwareDatetime
    lease: Lease


class PlanOutput(StrictModel):
    """The planned release, or ``action="skip"`` when this control plane has nothing to do for the input."""

    action: Literal["deploy", "skip"]
    reason: str
    execution_arn: str
    started_at: AwareDatetime
    deadline_at: AwareDatetime
    trigger: Trigger
    release: ReleaseRef | None = None
    previous_release_id: str | None = None
    changed: dict[str, Digest] = Field(default_factory=dict)
    prune: bool = Field(default=True, description="the bundle differs from the last known-good one's")


class SmokeTarget(StrictModel):
    """A Service whose health endpoint the smoke test calls through the API server's service proxy."""

    namespace: str
    service: str
    port: int | str


class ApplyPurpose(StrEnum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    ADDONS = "addons"
    """Only the release's add-ons (InstallAddons), before the release itself is applied."""


class ApplyInput(StrictModel):
    release: ReleaseRef
    purpose: ApplyPurpose
    prune: bool = Field(description="delete owned objects that left the release (always on rollback)")
    execution_arn: str
    now: AwareDatetime
    lease: Lease = Field(description="$.lock.lease: every write is fenced by it")


class RolloutRef(StrictModel):
    """Where an apply left what the next states need (its workloads, its smoke targets): lists that grow with the
    platform stay in the ledger (``RELEASE#<release id>`` / ``ROLLOUT#<purpose>#<n>``); the state carries this."""

    release_id: str
    purpose: ApplyPurpose
    chunks: int = Field(ge=1, description="how many ledger items hold the lists")
    workloads: int = Field(ge=0, description="how many workloads (the CLI's live view counts them)")
    smoke_targets: int = Field(ge=0)


class Rollout(StrictModel):
    """What a :class:`RolloutRef` points at."""

    workloads: list[ObjectRef]
    smoke_targets: list[SmokeTarget]


class ApplyOutput(StrictModel):
    release_id: str
    applied: int
    pruned: int
    rollout: RolloutRef = Field(description="the workloads and smoke targets, in the ledger")
    applied_at: AwareDatetime
    source: Literal["render", "ledger"] = Field(
        description="rendered from the layer's bundle, or replayed from the ledger"
    )
    kept_changes: list[str] = Field(
        default_factory=list,
        description="A deploy's apply: fields other managers added or changed that it kept (object, path, manager); "
        "at most 50, then how many more.",
    )


class HealthInput(StrictModel):
    release_id: str
    execution_arn: str
    lease: Lease = Field(description="$.lock.lease: renewed by every look (the rollout wait keeps the lock)")
    rollout: RolloutRef | None = Field(default=None, description="the apply's workloads, in the ledger")
    workloads: list[ObjectRef] | None = Field(default=None, description="the workloads, when not by reference")
    subject: Literal["release", "addons"] = Field(
        default="release",
        description="whose workloads: the release's, or its add-ons' (CheckAddons: a failure is the platform's)",
    )
    now: AwareDatetime = Field(description="$$.State.EnteredTime")
    started_at: AwareDatetime
    deadline_at: AwareDatetime
    baking_since: AwareDatetime | None = Field(
        default=None,
        description="Bake: the release was healthy and smoke-tested since then; any regression now fails it.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> HealthInput:
        _exactly_one(self.rollout, self.workloads, "workloads")
        return self


def _exactly_one(rollout: RolloutRef | None, inline: list[Any] | None, name: str) -> None:
    if (rollout is None) == (inline is None):
        raise ValueError(f"exactly one of rollout (the apply's output, by reference) or {name} is required")


PENDING_SHOWN = 20
"""Pending workloads a health output names (the state carries it: a list that grows with the platform is cut)."""


class HealthOutput(StrictModel):
    release_id: str
    healthy: bool
    checked_at: AwareDatetime
    pending: list[str] = Field(
        default_factory=list, description=f"the first {PENDING_SHOWN} workloads still rolling out, with their reason"
    )
    pending_count: int = Field(default=0, ge=0, description="how many workloads are still rolling out")
    baked: bool = Field(default=False, description="Bake: healthy for the whole bake period (now last known-good)")
    bake_until: AwareDatetime | None = None
    wait_seconds: int = Field(
        default=0,
        description="how long the state machine waits before the next look: 0 after a watch (it looked until its "
        "budget ran out), the poll interval after one look",
    )

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        """At most :data:`PENDING_SHOWN` named; ``pending_count`` counts them all."""
        if isinstance(data, dict) and isinstance(data.get("pending"), list):
            pending = data["pending"]
            data = {**data, "pending": pending[:PENDING_SHOWN]}
            data.setdefault("pending_count", len(pending))
        return data


class SmokeInput(StrictModel):
    release_id: str
    execution_arn: str
    rollout: RolloutRef | None = Field(default=None, description="the apply's smoke targets, in the ledger")
    targets: list[SmokeTarget] | None = Field(default=None, description="the targets, when not by reference")

    @model_validator(mode="after")
    def _one_source(self) -> SmokeInput:
        _exactly_one(self.rollout, self.targets, "targets")
        return self


class SmokeOutput(StrictModel):
    release_id: str
    passed: list[str]


class StepError(BaseModel):
    """What a Catch puts at ResultPath: ``{"Error": <error class name>, "Cause": <Lambda error JSON or text>}``."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    Error: str
    Cause: str = ""

    @field_validator("Cause", mode="before")
    @classmethod
    def _cause_as_text(cls, value: Any) -> str:
        """A cause that arrives as JSON (moto parses a JSON ``cause`` of SendTaskFailure) or null is kept as text."""
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        import json  # noqa: PLC0415 - only on the failure path

        return json.dumps(value, sort_keys=True)

    def message(self) -> str:
        """The human part of the cause: Lambda's ``errorMessage`` when the cause is a Lambda error payload."""
        import json  # noqa: PLC0415 - only on the failure path

        try:
            data = json.loads(self.Cause)
        except ValueError:
            return self.Cause or self.Error
        if isinstance(data, dict) and "errorMessage" in data:
            return str(data["errorMessage"])
        return self.Cause


class OperatorRollbackRequest(StrictModel):
    """The rollback state machine's input: ``{"environment": ..., "release_id"?: ..., "reason"?: ...}``.

    ``trigger``: ``operator`` (a person, through the operator API: signed) or ``drift`` (the drift state machine's
    heal, unsigned: honoured only where ``DRIFT_MODE`` is ``heal``, and only to re-apply the last known-good release).
    """

    environment: Environment
    release_id: str | None = Field(default=None, pattern=r"^rel-[0-9a-f]{20}$")
    reason: Reason = "operator rollback"
    trigger: Literal["operator", "drift"] = "operator"
    operator: OperatorSignature | None = Field(default=None, description="Set by the operator API only (signed).")
    acknowledge: bool = Field(
        default=False,
        description="Clear the environment's degraded mark without re-applying anything (the cluster was fixed by "
        "hand); the queued pushes are deployed next. Who acknowledged is the signed operator, if any.",
    )

    @model_validator(mode="after")
    def _acknowledgement_applies_nothing(self) -> OperatorRollbackRequest:
        if self.acknowledge and self.release_id:
            raise ValueError("release_id: an acknowledgement re-applies nothing; leave release_id out")
        return self


class AutomaticRollback(StrictModel):
    """The deploy state machine's rollback after a failure past the first cluster write."""

    environment: Environment
    failed_release_id: str


class RollbackTargetInput(StrictModel):
    """ResolveRollbackTarget: exactly one of ``request`` (operator) or ``automatic`` (the deploy's rollback)."""

    now: AwareDatetime
    execution_arn: str
    lease: Lease = Field(description="$.lock.lease: an acknowledgement's write is fenced by it")
    request: OperatorRollbackRequest | None = None
    automatic: AutomaticRollback | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RollbackTargetInput:
        if (self.request is None) == (self.automatic is None):
            raise ValueError("exactly one of request (operator rollback) or automatic (deploy rollback) is required")
        return self


class RollbackTarget(StrictModel):
    found: bool
    reason: str
    started_at: AwareDatetime
    deadline_at: AwareDatetime
    release: ReleaseRef | None = None
    replaces_release_id: str | None = None
    nothing_written: bool = False
    """The failed release never wrote to the cluster: nothing to roll back, "failed, nothing changed"."""
    acknowledged: bool = False
    """An operator acknowledged the degraded environment: nothing to re-apply, queued pushes go on."""


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    ROLLBACK_FAILED = "rollback_failed"
    RESTORED = "restored"
    RESTORE_UNRECORDED = "restore_unrecorded"
    """An operator rollback the cluster took but the ledger could not record (RecordRestored failed): the compensation
    marks the environment degraded, since the last-known-good pointer no longer names what runs."""
    REFUSED = "refused"


class RecordInput(StrictModel):
    """RecordOutcome: what happened, with the references needed to write it down."""

    outcome: Outcome
    execution_arn: str
    now: AwareDatetime = Field(description="$$.State.EnteredTime")
    lease: Lease = Field(description="$.lock.lease: every ledger write is fenced by it")
    plan: PlanOutput | None = None
    health: HealthOutput | None = None
    apply: ApplyOutput | None = None
    error: StepError | None = None
    rollback: RollbackTarget | None = None
    rollback_error: StepError | None = None


class RecordOutput(StrictModel):
    release_id: str | None
    outcome: Outcome
    message: str = Field(description="the execution's Cause when it ends FAILED")


# --------------------------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------------------------


def validation_problems(exc: ValidationError, *, prefix: str = "", whole: str = "") -> list[str]:
    """``field.path: message`` for each problem, the field named the way the input spells it (``whole`` names a
    problem with the input as a whole)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-after", "function-before")))
        loc = loc or whole
        parts.append(f"{prefix}{loc}: {err['msg']}" if loc or prefix else err["msg"])
    return parts


def validation_message(exc: ValidationError, *, prefix: str = "") -> str:
    """Every problem of ``exc`` on one line (:func:`validation_problems`): the one way errors are worded."""
    return "; ".join(validation_problems(exc, prefix=prefix))


def parse(model: type[M], data: Any, *, what: str | None = None) -> M:
    """Validate ``data`` as ``model``; :class:`InputValidationError` naming every bad field otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputValidationError(f"invalid {what or model.__name__} input: {validation_message(exc)}") from None


Request = EcrPushEvent | ConsoleRequest
"""What starts a deploy: an ECR push (forwarded by the EventBridge rule) or an operator's console request."""


def parse_request(raw: Any) -> Request:
    """An ECR ``ECR Image Action`` event (has ``detail-type``) or a console request; the error names the field."""
    if not isinstance(raw, Mapping):
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(raw), "number")
        raise InputValidationError(
            f"input: the execution input must be a JSON object (a console request or an ECR event), not a JSON {kind}"
        )
    if "detail-type" in raw or "source" in raw or "detail" in raw:
        return parse(EcrPushEvent, raw, what="ECR event")
    return parse(ConsoleRequest, raw, what="console request")
