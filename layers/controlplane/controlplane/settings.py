"""Configuration: the environment variables ``template.yaml`` sets, read by one pydantic-settings model.

:class:`Settings` has a section per concern: ``deploy`` (tag rules, deadlines, rollout rules, pruning), ``gates``
(lock, scan, freeze calendar, stacks, approval) and ``offhours`` (``OFFHOURS_CONFIG``). Each section reads its own
variables (the names ``template.yaml`` sets; an empty value counts as unset) when the settings are first needed,
never at import time. :func:`get_settings` caches the result per distinct set of values: once per cold start in
Lambda, and once per function in local runs, where several functions share one process, each with its own
environment. :func:`reset_settings` forgets them (tests). A missing or malformed variable raises
:class:`~controlplane.errors.ConfigurationError` naming it.
"""

from __future__ import annotations

import fnmatch
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from controlplane.errors import ConfigurationError, InputValidationError, PlanError
from controlplane.models.drift import DriftMode
from controlplane.models.freeze import FreezeCalendar
from controlplane.models.offhours_config import OffhoursConfig
from controlplane.models.release import ConsoleRequest, Request, validation_message
from controlplane.models.scan import ScanPolicy, Severity


class TagRule(BaseModel):
    """``{"tag": "<glob>", "environment": "staging|production"}``: a pushed tag matching ``tag`` deploys there."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    tag: str = Field(min_length=1)
    environment: Literal["staging", "production"]

    def matches(self, tag: str) -> bool:
        return fnmatch.fnmatchcase(tag, self.tag)


class _Section(BaseSettings):
    """A group of variables: names as ``template.yaml`` spells them, empty means unset, unknown ones ignored."""

    # defer_build: the validators are built by the first get_settings(), as every model's on its first use, not on
    # import; the defaults below are made with model_construct (a default is not validated), so no model of theirs
    # builds one on import either.
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, case_sensitive=True, env_ignore_empty=True, defer_build=True
    )


def _json(value: Any) -> Any:
    """A JSON variable's value (a ``ValueError`` becomes a ValidationError naming the variable)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc.msg}") from None
    return value


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return value


def _flag(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return value


DEFAULT_TAG_RULES = (TagRule.model_construct(tag="*", environment="staging"),)


DEFAULT_BAKE_SECONDS = {"staging": 120, "production": 600}
"""The bake period per environment when ``BAKE_SECONDS`` is unset: a few minutes, longer where customers are."""


class DeploySettings(_Section):
    """How a release is planned, applied and judged."""

    tag_rules: Annotated[tuple[TagRule, ...], NoDecode] = Field(
        default=DEFAULT_TAG_RULES, validation_alias="TAG_RULES", min_length=1
    )
    manifests_dir: Path = Field(default=Path("/opt/kubernetes"), validation_alias="MANIFESTS_DIR")
    deadline_seconds: int = Field(default=900, validation_alias="DEPLOY_DEADLINE_SECONDS", ge=60, le=86_400)
    restart_threshold: int = Field(default=2, validation_alias="RESTART_THRESHOLD", ge=0, le=100)
    failure_grace_seconds: int = Field(default=30, validation_alias="FAILURE_GRACE_SECONDS", ge=0, le=3_600)
    # Pods that run but never pass their readiness probe fail the release after this long (well under the 600 s
    # progress deadline); a service's environment values may set its own (readiness_deadline_seconds).
    readiness_deadline_seconds: int = Field(default=120, validation_alias="READINESS_DEADLINE_SECONDS", ge=10, le=3_600)
    definitive_grace_seconds: int = Field(default=5, validation_alias="DEFINITIVE_GRACE_SECONDS", ge=0, le=3_600)
    """How long an image that cannot be found or pulled (not a registry's 429/5xx), an invalid image name or a missing
    Secret/ConfigMap may last before the release fails (a Secret the External Secrets Operator writes a moment
    later still counts); a registry's own failures and unschedulable pods get ``failure_grace_seconds``."""
    watch_budget_seconds: int = Field(default=90, validation_alias="WATCH_BUDGET_SECONDS", ge=0, le=840)
    """How long one CheckHealth invocation watches the rollout for a verdict (capped by the invocation's remaining
    time); 0: one look per invocation, the state machine's Wait (10 s) between looks."""
    prune_allow: Annotated[tuple[str, ...], NoDecode] = Field(default=(), validation_alias="PRUNE_ALLOW_KINDS")
    drift_trust_seconds: int = Field(default=3_900, validation_alias="DRIFT_TRUST_SECONDS", ge=0, le=86_400)
    """A deploy skips unchanged objects on the ledger's record alone (re-applying what the environment's latest drift
    check found) when that check is at most this old (default: the hourly drift schedule and 5 minutes); otherwise,
    or 0, it lists the live objects to find what changed since the last apply."""
    bake_seconds: int | None = Field(default=None, validation_alias="BAKE_SECONDS", ge=0, le=86_400)
    """How long a release must stay healthy after its smoke test before it becomes last known-good; unset (or
    empty): the environment's default (:data:`DEFAULT_BAKE_SECONDS`)."""

    parse_tag_rules = field_validator("tag_rules", mode="before")(_json)
    parse_prune_allow = field_validator("prune_allow", mode="before")(_comma_list)

    @field_validator("bake_seconds", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    def bake_for(self, environment: str) -> int:
        """The bake period of ``environment`` in seconds."""
        if self.bake_seconds is not None:
            return self.bake_seconds
        return DEFAULT_BAKE_SECONDS.get(environment, max(DEFAULT_BAKE_SECONDS.values()))

    def environment_for_tag(self, tag: str) -> str | None:
        """The environment of the first rule matching ``tag``; ``None`` when no rule does."""
        return next((rule.environment for rule in self.tag_rules if rule.matches(tag)), None)


class GateSettings(_Section):
    """The deploy gates: lock, scan, freeze calendar, platform stacks, approval."""

    project_name: str = Field(default="synthetictrialstudio", validation_alias="PROJECT_NAME")
    lock_ttl_s: int = Field(default=4 * 3600, gt=0, validation_alias="LOCK_TTL_SECONDS")
    handoff_grace_s: int = Field(default=300, gt=0, validation_alias="HANDOFF_GRACE_SECONDS")
    scan_block_at: Severity = Field(default=Severity.CRITICAL, validation_alias="SCAN_BLOCK_SEVERITY")
    scan_allowlist: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(), validation_alias="SCAN_CVE_ALLOWLIST"
    )
    scan_timeout_s: int = Field(default=1800, gt=0, validation_alias="SCAN_TIMEOUT_SECONDS")
    stacks_file: str = Field(
        default="manifests/stacks.yaml",
        validation_alias="STACKS_FILE",
        description="Templates sit in its template_dir.",
    )
    artifacts_bucket: str | None = Field(default=None, validation_alias="ARTIFACTS_BUCKET")
    provision_timeout_s: int = Field(default=3 * 3600, gt=0, validation_alias="PROVISION_TIMEOUT_SECONDS")
    provision_lock_wait_s: int = Field(
        default=2 * 3600,
        gt=0,
        validation_alias="PROVISION_LOCK_WAIT_SECONDS",
        description="How long provisioning waits for a running deploy, rollback or scaling to release the lock.",
    )
    approval_topic_arn: str | None = Field(default=None, validation_alias="APPROVAL_TOPIC_ARN")
    approval_bucket: str | None = Field(default=None, validation_alias="APPROVAL_BUCKET")
    freeze_calendar: Annotated[FreezeCalendar, NoDecode] = Field(
        default=FreezeCalendar.model_construct(), validation_alias="FREEZE_CALENDAR"
    )
    staging_ledger_table_name: str | None = Field(
        default=None,
        validation_alias="STAGING_LEDGER_TABLE_NAME",
        description="Production: the staging control plane's ledger (where staging health is recorded).",
    )
    stack_inputs: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, validation_alias="STACK_INPUTS", description="JSON {Parameter: value}."
    )
    stack_role_arn: str | None = Field(
        default=None,
        validation_alias="STACK_ROLE_ARN",
        description="The role CloudFormation assumes to change the platform stacks.",
    )
    deploy_state_machine_arn: str | None = Field(
        default=None,
        validation_alias="DEPLOY_STATE_MACHINE_ARN",
        description="Where queued pushes are deployed (a rollback may hold the lock).",
    )

    @field_validator("scan_block_at", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    parse_allowlist = field_validator("scan_allowlist", mode="before")(_comma_list)

    @field_validator("freeze_calendar", mode="before")
    @classmethod
    def _calendar(cls, value: Any) -> Any:
        value = _json(value)
        return {"windows": value} if isinstance(value, list) else value

    @field_validator("stack_inputs", mode="before")
    @classmethod
    def _inputs(cls, value: Any) -> Any:
        value = _json(value)
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else value

    @property
    def scan_policy(self) -> ScanPolicy:
        return ScanPolicy(block_at=self.scan_block_at, allowlist=self.scan_allowlist, timeout_s=self.scan_timeout_s)


class OffhoursSettings(_Section):
    """Off-hours: ``OFFHOURS_CONFIG`` (JSON, :class:`OffhoursConfig`), ``OFFHOURS_WAKE_ON_DEPLOY`` and
    ``OFFHOURS_SCHEDULED`` (whether this environment's schedules run: only then is a schedule's unsigned request
    honoured)."""

    config: Annotated[OffhoursConfig, NoDecode] = Field(
        default=OffhoursConfig.model_construct(), validation_alias="OFFHOURS_CONFIG"
    )
    wake_on_deploy: Annotated[bool | None, NoDecode] = Field(default=None, validation_alias="OFFHOURS_WAKE_ON_DEPLOY")
    scheduled: Annotated[bool, NoDecode] = Field(default=False, validation_alias="OFFHOURS_SCHEDULED")

    @field_validator("config", mode="before")
    @classmethod
    def _config(cls, value: Any) -> Any:
        value = _json(value)
        if not isinstance(value, dict | OffhoursConfig):
            raise ValueError("must be a JSON object")  # noqa: TRY004 - a ValueError names the variable
        return value

    parse_flags = field_validator("wake_on_deploy", "scheduled", mode="before")(_flag)

    @property
    def rules(self) -> OffhoursConfig:
        """The configuration, with ``OFFHOURS_WAKE_ON_DEPLOY`` when it is set."""
        if self.wake_on_deploy is None:
            return self.config
        return self.config.model_copy(update={"wake_on_deploy": self.wake_on_deploy})


class Settings(_Section):
    """Every variable the control plane reads: what it manages, where it records, and a section per concern."""

    environment: Literal["staging", "production"] = Field(validation_alias="ENVIRONMENT")
    region: str = Field(validation_alias="AWS_REGION", min_length=1)
    account_id: str = Field(validation_alias="ACCOUNT_ID", pattern=r"^\d{12}$")
    cluster_name: str = Field(validation_alias="CLUSTER_NAME", min_length=1)
    ledger_table_name: str = Field(validation_alias="LEDGER_TABLE_NAME", min_length=1)
    notification_topic_arn: str | None = Field(default=None, validation_alias="NOTIFICATION_TOPIC_ARN")
    # The operator path (controlplane.models.operator): who may approve, and the KMS keys that sign and hide.
    approvers: Annotated[tuple[str, ...], NoDecode] = Field(default=(), validation_alias="APPROVERS")
    decision_key_id: str | None = Field(default=None, validation_alias="DECISION_KEY_ID")
    approval_token_key_id: str | None = Field(default=None, validation_alias="APPROVAL_TOKEN_KEY_ID")
    deploy_state_machine_arn: str | None = Field(default=None, validation_alias="DEPLOY_STATE_MACHINE_ARN")
    rollback_state_machine_arn: str | None = Field(default=None, validation_alias="ROLLBACK_STATE_MACHINE_ARN")
    offhours_state_machine_arn: str | None = Field(default=None, validation_alias="OFFHOURS_STATE_MACHINE_ARN")
    # Drift detection (controlplane.steps.drift): report only, or heal through the rollback state machine.
    drift_mode: DriftMode = Field(default=DriftMode.REPORT, validation_alias="DRIFT_MODE")
    drift_bucket: str | None = Field(default=None, validation_alias="DRIFT_BUCKET")
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    gates: GateSettings = Field(default_factory=GateSettings)
    offhours: OffhoursSettings = Field(default_factory=OffhoursSettings)

    parse_approvers = field_validator("approvers", mode="before")(_comma_list)

    def target_environment(self, request: Request) -> str:
        """The environment ``request`` deploys to: the console's choice, or the first tag rule matching the push."""
        if isinstance(request, ConsoleRequest):
            return request.environment
        if request.account != self.account_id or request.region != self.region:
            raise PlanError(
                f"ECR event from account {request.account} in {request.region}: this control plane deploys images "
                f"of account {self.account_id} in {self.region}"
            )
        tag = request.detail.image_tag or ""
        environment = self.deploy.environment_for_tag(tag)
        if environment is None:
            rules = ", ".join(f"{r.tag!r}->{r.environment}" for r in self.deploy.tag_rules)
            raise PlanError(f"tag {tag!r} of {request.detail.repository_name} matches no TAG_RULES rule ({rules})")
        return environment

    def require_environment(self, environment: str) -> None:
        """Refuse a request for an environment this control plane does not manage (one control plane each)."""
        if environment != self.environment:
            raise InputValidationError(
                f"environment: {environment!r} is not deployed by this control plane (it deploys "
                f"{self.environment!r}); start the {environment} control plane's state machine instead"
            )

    def require(self, name: str) -> str:
        """A setting a step cannot work without; :class:`ConfigurationError` naming its variable otherwise."""
        value = getattr(self, name)
        if not value:
            alias = type(self).model_fields[name].validation_alias or name
            raise ConfigurationError(f"{alias} is not set for this function")
        return str(value)

    def require_topic(self) -> str:
        if not self.notification_topic_arn:
            raise ConfigurationError("NOTIFICATION_TOPIC_ARN is not set for this function")
        return self.notification_topic_arn


def _variables(model: type[BaseSettings]) -> list[str]:
    """Every variable ``model`` reads, its sections' included."""
    names: list[str] = []
    for field in model.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.append(alias)
        elif isinstance(field.annotation, type) and issubclass(field.annotation, _Section):
            names += _variables(field.annotation)
    return names


_VARIABLES = tuple(dict.fromkeys(_variables(Settings)))


def get_settings() -> Settings:
    """The validated settings of the current environment (read once per distinct set of values)."""
    return _load(tuple((name, os.environ[name]) for name in _VARIABLES if name in os.environ))


def reset_settings() -> None:
    """Forget every settings object read so far (tests change the environment between cases)."""
    _load.cache_clear()


@lru_cache(maxsize=32)
def _load(values: tuple[tuple[str, str], ...]) -> Settings:
    """``values`` is the cache key only: the sections read the same variables from the environment."""
    del values
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(f"invalid configuration: {validation_message(exc)}") from None
