"""Payloads and configuration of the deploy gates: lock, scan, provision, promote, approval, freeze.

Every model that crosses a state boundary forbids extra fields, so a typo in the ASL's ``Parameters`` fails loudly.
Pure decision logic that needs nothing but these models (severity ordering, freeze calendars, tag rules, push
coalescing) lives here too, so the adapters and steps stay thin.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from controlplane import platform
from controlplane.errors import ConfigurationError, NotHealthyInStagingError
from controlplane.models.release import Digest, Environment, ReleaseRef, ServiceName


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


def at(now: datetime | None) -> datetime:
    """``now`` from the state machine when given (it follows the Wait states' clock), the wall clock otherwise."""
    return (now or utcnow()).astimezone(UTC)


# ---------------------------------------------------------------------------------------------------------------------
# Images and pushes
# ---------------------------------------------------------------------------------------------------------------------


class ImageRef(_Model):
    """One service's image, pinned by digest."""

    service: ServiceName
    digest: Digest

    @property
    def repository(self) -> str:
        return f"{platform.REPOSITORY_PREFIX}{self.service}"


def images_of(images: Mapping[str, str]) -> list[ImageRef]:
    """``service -> digest`` as image references, ordered by service."""
    return [ImageRef(service=s, digest=images[s]) for s in sorted(images)]


def _images_from_mapping(value: Any) -> Any:
    """The state machine passes a release's ``images`` as ``{service: digest}``; the gates take a list."""
    if isinstance(value, Mapping):
        return [{"service": str(s), "digest": value[s]} for s in sorted(value)]
    return value


Images = Annotated[list[ImageRef], BeforeValidator(_images_from_mapping)]
"""A list of image references, also accepted as ``{service: digest}`` (a release's ``images``)."""


class Push(_Model):
    """A requested image waiting to be deployed: a digest (or, from the console, a tag resolved when planned).

    ``sequence`` orders the pushes of one service: the larger one is newer (event time in epoch milliseconds).
    """

    service: ServiceName
    reference: str = Field(min_length=1)
    sequence: int = Field(ge=0)


def coalesce(pushes: Iterable[Push]) -> dict[str, Push]:
    """The newest push of each service (largest sequence; on a tie the later one in ``pushes`` wins)."""
    newest: dict[str, Push] = {}
    for push in pushes:
        current = newest.get(push.service)
        if current is None or push.sequence >= current.sequence:
            newest[push.service] = push
    return dict(sorted(newest.items()))


# ---------------------------------------------------------------------------------------------------------------------
# Lock
# ---------------------------------------------------------------------------------------------------------------------


class LockPurpose(StrEnum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    SCALE = "scale"


class LockOutcome(StrEnum):
    ACQUIRED = "ACQUIRED"
    """This execution owns the environment: go on."""
    QUEUED = "QUEUED"
    """Another execution owns it; this execution's pushes are recorded for it to deploy next. End cleanly."""
    HELD = "HELD"
    """Another execution owns it and nothing was queued (rollback, scaling): wait and try again."""
    SKIPPED = "SKIPPED"
    """The request is for another environment's control plane: nothing to lock (planning skips it too)."""


class LockRequest(_Model):
    environment: Environment
    owner: str = Field(min_length=1, description="The execution ARN that will own the lock.")
    purpose: LockPurpose = LockPurpose.DEPLOY
    pushes: list[Push] = Field(default_factory=list)

    @model_validator(mode="after")
    def _pushes_only_for_deploys(self) -> Self:
        if self.pushes and self.purpose is not LockPurpose.DEPLOY:
            raise ValueError("only deploys carry pushes")
        return self


class AcquireLockInput(_Model):
    """AcquireLock: the execution's raw input (an ECR push event or a console request) and its context."""

    input: Any = Field(default_factory=dict, description="any JSON: a non-object is refused by name, not by type")
    execution_arn: str = Field(min_length=1, description="$$.Execution.Id")
    started_at: datetime = Field(description="$$.Execution.StartTime")
    purpose: LockPurpose = LockPurpose.DEPLOY
    environment: Environment | None = Field(default=None, description="Rollback/scaling: the environment to lock.")
    owner: str | None = Field(default=None, description="Lock on behalf of another execution (a parent deploy).")
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime")


class LockResult(_Model):
    outcome: LockOutcome
    environment: Environment
    owner: str
    holder: str | None = Field(default=None, description="Who holds the lock when it was not acquired.")
    expires_at: int | None = Field(default=None, description="Epoch seconds after which the lock is stale.")
    cleared_orphan: str | None = Field(default=None, description="A lock owner whose execution had ended.")
    queued: list[str] = Field(default_factory=list, description="Services whose pushes were queued.")


class FollowUp(_Model):
    """The deploy the lock holder hands the environment to: the coalesced queued pushes, newest per service."""

    execution_name: str
    execution_arn: str
    environment: Environment
    pushes: list[Push]
    after: str = Field(description="The execution that handed the lock over.")

    def execution_input(self) -> dict[str, Any]:
        """A console-request-shaped input (what PlanRelease accepts), so the follow-up is an ordinary deploy."""
        services = {p.service: p.reference for p in self.pushes}
        return {
            "environment": self.environment,
            "services": dict(sorted(services.items())),
            "reason": f"queued pushes of {', '.join(sorted(services))} after {self.after.rpartition(':')[2]}",
            "force": False,
        }


class ReleaseLockInput(_Model):
    environment: Environment
    owner: str = Field(min_length=1, description="The execution releasing the lock ($$.Execution.Id).")
    outcome: str = Field(default="SUCCEEDED", description="Why: SUCCEEDED, FAILED, ABORTED, TIMED_OUT, ...")
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")


class ReleaseLockResult(_Model):
    environment: Environment
    released: bool = Field(description="False when this execution did not own the lock (already released).")
    follow_up: FollowUp | None = None


class LockRecord(_Model):
    """The lock item as stored (one per environment)."""

    environment: Environment
    owner: str
    purpose: LockPurpose
    acquired_at: int
    expires_at: int
    version: int = 0
    pending: dict[str, Push] = Field(default_factory=dict)
    carried: dict[str, Push] = Field(
        default_factory=dict, description="After a hand-off: the pushes the follow-up (the owner) deploys."
    )
    handed_off_by: str | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at <= int(now.timestamp())


def follow_up_name(environment: str, previous_owner: str, pushes: Iterable[Push]) -> str:
    """A deterministic execution name (so a retried hand-off starts the same execution once)."""
    body = json.dumps([previous_owner, [p.model_dump(mode="json") for p in pushes]], sort_keys=True)
    return f"{environment}-queued-{hashlib.sha256(body.encode()).hexdigest()[:24]}"


def execution_arn(state_machine_arn: str, name: str) -> str:
    """``arn:aws:states:r:a:stateMachine:sm`` + name -> ``arn:aws:states:r:a:execution:sm:name``."""
    prefix, _, machine = state_machine_arn.rpartition(":stateMachine:")
    if not prefix:
        raise ConfigurationError(f"not a state machine ARN: {state_machine_arn!r}")
    return f"{prefix}:execution:{machine}:{name}"


# ---------------------------------------------------------------------------------------------------------------------
# Scan
# ---------------------------------------------------------------------------------------------------------------------


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


class ScanPolicy(_Model):
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


class Finding(_Model):
    id: str
    severity: str
    package: str | None = None


class ScanStatus(StrEnum):
    PASSED = "PASSED"
    IN_PROGRESS = "IN_PROGRESS"


class ImageScan(_Model):
    image: ImageRef
    status: Literal["COMPLETE", "IN_PROGRESS", "STARTED"]
    blocking: list[Finding] = Field(default_factory=list)
    allowlisted: list[str] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)


class ScanRequest(_Model):
    environment: Environment
    images: Images
    deadline: datetime | None = Field(default=None, description="Set by the first check; passed back by the loop.")
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")


class ScanReport(_Model):
    status: ScanStatus
    environment: Environment
    images: list[ImageRef]
    deadline: datetime
    scans: list[ImageScan]

    @property
    def waiting_for(self) -> list[str]:
        return [s.image.service for s in self.scans if s.status != "COMPLETE"]


# ---------------------------------------------------------------------------------------------------------------------
# Provision: CloudFormation stacks
# ---------------------------------------------------------------------------------------------------------------------


class StackSpec(_Model):
    """One platform stack of ``manifests/stacks.yaml``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    suffix: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    template: str = Field(min_length=1)
    scope: Literal["environment", "account"] = "environment"
    capabilities: list[str] = Field(default_factory=list)
    inputs: list[str] = Field(default_factory=list)
    wiring: dict[str, str] = Field(default_factory=dict, description="Parameter -> '<stack suffix>.<Output>'")
    bootstrap: bool = False

    def resolve_parameters(
        self,
        *,
        common: Mapping[str, str],
        inputs: Mapping[str, str],
        outputs: Mapping[str, Mapping[str, str]],
        declared: Iterable[str] | None = None,
    ) -> dict[str, str]:
        """Common parameters, the declared inputs that are configured, and the wired outputs of earlier stacks.

        ``declared`` (the template's Parameters) filters the common ones: a template need not declare them all.
        """
        names = set(declared) if declared is not None else None
        resolved = {k: v for k, v in common.items() if names is None or k in names}
        resolved |= {k: inputs[k] for k in self.inputs if k in inputs}
        for name, source in self.wiring.items():
            stack, _, output = source.partition(".")
            try:
                resolved[name] = outputs[stack][output]
            except KeyError:
                raise ConfigurationError(
                    f"stack {self.suffix!r} parameter {name!r} needs output {output!r} of stack {stack!r}, "
                    "which has not provided it"
                ) from None
        return dict(sorted(resolved.items()))


class StackCatalog(_Model):
    """``manifests/stacks.yaml``: the platform's stacks in dependency order, and how they are named and wired."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: int = 1
    template_dir: str = "cloudformation"
    inline_template_limit_bytes: int = 51_200
    stack_names: dict[str, str] = Field(
        default_factory=lambda: {"environment": "{project}-{environment}-{suffix}", "account": "{project}-{suffix}"}
    )
    common_parameters: list[str] = Field(default_factory=lambda: ["Environment", "ProjectName"])
    stacks: list[StackSpec]

    @model_validator(mode="after")
    def _wired_from_earlier(self) -> Self:
        seen: set[str] = set()
        for spec in self.stacks:
            for name, source in spec.wiring.items():
                stack, dot, output = source.partition(".")
                if not dot or not output:
                    raise ValueError(f"{spec.suffix}.{name}: wiring {source!r} is not '<stack>.<Output>'")
                if stack not in seen:
                    raise ValueError(f"{spec.suffix}.{name}: wired from {stack!r}, which is not listed before it")
            if spec.suffix in seen:
                raise ValueError(f"stack {spec.suffix!r} is listed twice")
            seen.add(spec.suffix)
        return self

    def stack_name(self, spec: StackSpec, *, project: str, environment: str) -> str:
        return self.stack_names[spec.scope].format(project=project, environment=environment, suffix=spec.suffix)


def template_hash(template_body: str, parameters: Mapping[str, str]) -> str:
    """What decides whether a stack needs a change set: the template text and the resolved parameters."""
    digest = hashlib.sha256(template_body.encode())
    digest.update(json.dumps(dict(sorted(parameters.items())), separators=(",", ":")).encode())
    return digest.hexdigest()


class StackPhase(StrEnum):
    PENDING = "PENDING"
    DELETING = "DELETING"
    CHANGE_SET = "CHANGE_SET"
    EXECUTING = "EXECUTING"
    DONE = "DONE"
    NO_CHANGES = "NO_CHANGES"
    SKIPPED = "SKIPPED"


class StackProgress(_Model):
    suffix: str
    stack_name: str
    phase: StackPhase = StackPhase.PENDING
    template_hash: str | None = None
    change_set_name: str | None = None
    started_at: datetime | None = None
    outputs: dict[str, str] = Field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.phase in {StackPhase.DONE, StackPhase.NO_CHANGES, StackPhase.SKIPPED}


class ProvisionStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETE = "COMPLETE"


class ProvisionRequest(_Model):
    environment: Environment
    release_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$")
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")


class ProvisionState(_Model):
    """The provisioning loop's state: the ASL passes it back into each ``AdvanceStacks`` call after a Wait."""

    environment: Environment
    release_id: str
    status: ProvisionStatus = ProvisionStatus.IN_PROGRESS
    deadline: datetime
    stacks: list[StackProgress]

    @property
    def current(self) -> StackProgress | None:
        return next((s for s in self.stacks if not s.finished), None)

    def outputs(self) -> dict[str, dict[str, str]]:
        return {s.suffix: dict(s.outputs) for s in self.stacks if s.finished}


class AdvanceStacksInput(_Model):
    provision: ProvisionState
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")


PROTECTED_RESOURCE_TYPES = ("AWS::RDS::*", "AWS::ElastiCache::*", "AWS::S3::Bucket")


def stack_policy() -> dict[str, Any]:
    """Updates are allowed, except replacing or deleting the platform's data: RDS, ElastiCache, S3."""
    return {
        "Statement": [
            {"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": ["Update:Replace", "Update:Delete"],
                "Principal": "*",
                "Resource": "*",
                "Condition": {
                    "StringLike": {"ResourceType": ["AWS::RDS::*", "AWS::ElastiCache::*", "AWS::S3::Bucket"]}
                },
            },
        ]
    }


# ---------------------------------------------------------------------------------------------------------------------
# Promotion
# ---------------------------------------------------------------------------------------------------------------------


class PromotionRequest(_Model):
    environment: Environment
    release_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$")
    images: Images
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")

    def tags(self, *, moving: bool = True) -> list[str]:
        """The release's own tag, and the environment's moving tag when the repository lets tags move."""
        release_tag = f"{self.environment}-{self.release_id}"
        return [self.environment, release_tag] if moving else [release_tag]


class TagOutcome(StrEnum):
    TAGGED = "TAGGED"
    UNCHANGED = "UNCHANGED"


class TagResult(_Model):
    service: str
    digest: str
    tag: str
    outcome: TagOutcome


class PromotionReport(_Model):
    environment: Environment
    release_id: str
    results: list[TagResult]
    rollout_started_at: datetime | None = Field(
        default=None, description="The last gate passed: the release's rollout deadline counts from here."
    )
    rollout_deadline_at: datetime | None = None


def require_healthy_in_staging(images: Iterable[ImageRef], healthy: Mapping[str, set[str]]) -> None:
    """Production deploys only digests that were healthy in staging (``healthy``: service -> digests)."""
    missing = [f"{i.service}@{i.digest}" for i in images if i.digest not in healthy.get(i.service, set())]
    if missing:
        raise NotHealthyInStagingError(f"never healthy in staging: {', '.join(missing)}")


# ---------------------------------------------------------------------------------------------------------------------
# Approval
# ---------------------------------------------------------------------------------------------------------------------


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class ApprovalStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    TIMED_OUT = "TIMED_OUT"


class ApprovalRequest(_Model):
    """Input of the ``waitForTaskToken`` task that asks for approval."""

    task_token: str = Field(min_length=1, repr=False)
    environment: Environment
    release_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$")
    execution_arn: str
    images: Images
    bundle_hash: str = Field(min_length=1)
    requested_by: str | None = Field(default=None, description="the authenticated requester (operator API)")
    timeout_s: int = Field(default=86_400, gt=0)
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")


class ApprovalNotice(_Model):
    release_id: str
    diff_uri: str
    message_id: str


class StagingHealthInput(_Model):
    """Production: the release's images, and optionally the staging release they come from."""

    images: Images
    source_release_id: str | None = None


class StagingHealth(_Model):
    healthy: bool
    staging_release_ids: list[str]


class ApprovalOutcome(_Model):
    release_id: str
    status: ApprovalStatus
    approver: str | None = None
    comment: str = ""
    decided_at: datetime | None = None


class VerifyApprovalInput(_Model):
    """VerifyApproval: the execution's own plan, to compare with the signed decision (not the callback's payload)."""

    release: ReleaseRef
    execution_arn: str = Field(min_length=1, description="$$.Execution.Id")
    requested_by: str | None = Field(default=None, description="$.plan.trigger.requested_by (authenticated)")


class ApprovalTimeoutRequest(_Model):
    release_id: str
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")


# ---------------------------------------------------------------------------------------------------------------------
# Freeze windows
# ---------------------------------------------------------------------------------------------------------------------

_DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_WEEK_MINUTES = 7 * 24 * 60
_WEEKLY_POINT = re.compile(r"^(MON|TUE|WED|THU|FRI|SAT|SUN) ([01]\d|2[0-3]):([0-5]\d)$")


class FreezeWindow(_Model):
    """A one-off freeze: [start, end) in UTC."""

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


class WeeklyFreeze(_Model):
    """A weekly freeze, cron-like: ``from_`` ``"FRI 18:00"`` to ``"MON 06:00"`` (UTC; may wrap the week)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: str = Field(alias="from", pattern=_WEEKLY_POINT.pattern)
    to: str = Field(pattern=_WEEKLY_POINT.pattern)
    reason: str
    environments: list[Environment] = Field(default_factory=lambda: list[Environment](["production"]))

    @staticmethod
    def _minute_of_week(point: str) -> int:
        match = _WEEKLY_POINT.match(point)
        assert match is not None  # the field pattern guarantees it
        return _DAYS.index(match[1]) * 1440 + int(match[2]) * 60 + int(match[3])

    def covers(self, now: datetime) -> bool:
        now = now.astimezone(UTC)
        minute = now.weekday() * 1440 + now.hour * 60 + now.minute
        start, end = self._minute_of_week(self.from_), self._minute_of_week(self.to)
        if start <= end:
            return start <= minute < end
        return minute >= start or minute < end  # wraps past Sunday midnight


AnyFreeze = FreezeWindow | WeeklyFreeze


class FreezeCalendar(_Model):
    windows: list[AnyFreeze] = Field(default_factory=list)

    def active(self, environment: str, now: datetime) -> AnyFreeze | None:
        return next((w for w in self.windows if environment in w.environments and w.covers(now)), None)


class FreezeCheckRequest(_Model):
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


class FreezeDecision(_Model):
    environment: Environment
    release_id: str
    frozen: bool
    forced: bool = False
    forced_by: str | None = None
    window_reason: str | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------------


class GateSettings(_Model):
    """The gates' configuration, from environment variables that template.yaml sets (read on first use)."""

    project_name: str = "synthetictrialstudio"
    lock_ttl_s: int = Field(default=4 * 3600, gt=0)
    handoff_grace_s: int = Field(default=300, gt=0)
    scan_policy: ScanPolicy = ScanPolicy()
    stacks_file: str = Field(default="manifests/stacks.yaml", description="Templates sit in its template_dir.")
    artifacts_bucket: str | None = None
    provision_timeout_s: int = Field(default=3 * 3600, gt=0)
    approval_topic_arn: str | None = None
    approval_bucket: str | None = None
    freeze_calendar: FreezeCalendar = FreezeCalendar()
    staging_ledger_table_name: str | None = Field(
        default=None, description="Production: the staging control plane's ledger (where staging health is recorded)."
    )
    stack_inputs: dict[str, str] = Field(default_factory=dict, description="STACK_INPUTS: JSON {Parameter: value}.")
    stack_role_arn: str | None = Field(
        default=None, description="STACK_ROLE_ARN: the role CloudFormation assumes to change the platform stacks."
    )
    deploy_state_machine_arn: str | None = Field(
        default=None,
        description="DEPLOY_STATE_MACHINE_ARN: where queued pushes are deployed (a rollback may hold the lock).",
    )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> GateSettings:
        def get(name: str) -> str | None:
            value = environ.get(name)
            return value if value else None

        def json_env(name: str) -> Any:
            raw = get(name)
            if raw is None:
                return None
            try:
                return json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"{name} is not valid JSON: {exc.msg}") from None

        values: dict[str, Any] = {}
        optional = {
            "project_name": "PROJECT_NAME",
            "lock_ttl_s": "LOCK_TTL_SECONDS",
            "stacks_file": "STACKS_FILE",
            "artifacts_bucket": "ARTIFACTS_BUCKET",
            "provision_timeout_s": "PROVISION_TIMEOUT_SECONDS",
            "approval_topic_arn": "APPROVAL_TOPIC_ARN",
            "approval_bucket": "APPROVAL_BUCKET",
            "staging_ledger_table_name": "STAGING_LEDGER_TABLE_NAME",
            "stack_role_arn": "STACK_ROLE_ARN",
            "deploy_state_machine_arn": "DEPLOY_STATE_MACHINE_ARN",
        }
        for field, env in optional.items():
            if (value := get(env)) is not None:
                values[field] = value
        if (inputs := json_env("STACK_INPUTS")) is not None:
            values["stack_inputs"] = {str(k): str(v) for k, v in dict(inputs).items()}
        policy: dict[str, Any] = {}
        if (severity := get("SCAN_BLOCK_SEVERITY")) is not None:
            policy["block_at"] = severity.upper()
        if (allow := get("SCAN_CVE_ALLOWLIST")) is not None:
            policy["allowlist"] = frozenset(a.strip() for a in allow.split(",") if a.strip())
        if (timeout := get("SCAN_TIMEOUT_SECONDS")) is not None:
            policy["timeout_s"] = timeout
        values["scan_policy"] = policy
        if (calendar := json_env("FREEZE_CALENDAR")) is not None:
            values["freeze_calendar"] = {"windows": calendar} if isinstance(calendar, list) else calendar
        try:
            return cls.model_validate(values)
        except ValueError as exc:
            raise ConfigurationError(f"invalid gate settings: {exc}") from None


@cache
def _cached_settings(items: tuple[tuple[str, str], ...]) -> GateSettings:
    return GateSettings.from_environ(dict(items))


def gate_settings() -> GateSettings:
    """The settings for the current environment variables (parsed once per distinct environment)."""
    relevant = tuple(sorted((k, v) for k, v in os.environ.items() if k.isupper()))
    return _cached_settings(relevant)
