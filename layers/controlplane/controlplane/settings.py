"""Configuration: the environment variables ``template.yaml`` sets, validated by one pydantic model on first use.

Nothing is read at import time. :func:`get_settings` reads the variables when a step first needs them and caches the
result per distinct set of values (several functions can share one process in local runs, each with its own
environment). A missing or malformed variable raises :class:`~controlplane.errors.ConfigurationError` naming it.
"""

from __future__ import annotations

import fnmatch
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from controlplane.errors import ConfigurationError

DEFAULT_TAG_RULES = '[{"tag": "*", "environment": "staging"}]'


class TagRule(BaseModel):
    """``{"tag": "<glob>", "environment": "staging|production"}``: a pushed tag matching ``tag`` deploys there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tag: str = Field(min_length=1)
    environment: Literal["staging", "production"]

    def matches(self, tag: str) -> bool:
        return fnmatch.fnmatchcase(tag, self.tag)


class Settings(BaseModel):
    """Every variable the control plane reads. Field aliases are the variable names."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    environment: Literal["staging", "production"] = Field(alias="ENVIRONMENT")
    region: str = Field(alias="AWS_REGION", min_length=1)
    account_id: str = Field(alias="ACCOUNT_ID", pattern=r"^\d{12}$")
    cluster_name: str = Field(alias="CLUSTER_NAME", min_length=1)
    ledger_table_name: str = Field(alias="LEDGER_TABLE_NAME", min_length=1)
    manifests_dir: Path = Field(alias="MANIFESTS_DIR", default=Path("/opt/kubernetes"))
    notification_topic_arn: str | None = Field(alias="NOTIFICATION_TOPIC_ARN", default=None)
    tag_rules: Annotated[tuple[TagRule, ...], Field(alias="TAG_RULES", min_length=1)] = ()
    deploy_deadline_seconds: int = Field(alias="DEPLOY_DEADLINE_SECONDS", default=900, ge=60, le=86_400)
    restart_threshold: int = Field(alias="RESTART_THRESHOLD", default=2, ge=0, le=100)
    failure_grace_seconds: int = Field(alias="FAILURE_GRACE_SECONDS", default=30, ge=0, le=3_600)
    prune_allow: tuple[str, ...] = Field(alias="PRUNE_ALLOW_KINDS", default=())
    # The operator path (controlplane.models.operator): who may approve, and the KMS keys that sign and hide.
    approvers: tuple[str, ...] = Field(alias="APPROVERS", default=())
    decision_key_id: str | None = Field(alias="DECISION_KEY_ID", default=None)
    approval_token_key_id: str | None = Field(alias="APPROVAL_TOKEN_KEY_ID", default=None)
    deploy_state_machine_arn: str | None = Field(alias="DEPLOY_STATE_MACHINE_ARN", default=None)
    rollback_state_machine_arn: str | None = Field(alias="ROLLBACK_STATE_MACHINE_ARN", default=None)
    offhours_state_machine_arn: str | None = Field(alias="OFFHOURS_STATE_MACHINE_ARN", default=None)

    @field_validator("tag_rules", mode="before")
    @classmethod
    def _parse_rules(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value)  # ValueError becomes a ValidationError naming TAG_RULES
        return value

    @field_validator("prune_allow", "approvers", mode="before")
    @classmethod
    def _parse_kinds(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value

    def environment_for_tag(self, tag: str) -> str | None:
        """The environment of the first rule matching ``tag``; ``None`` when no rule does."""
        for rule in self.tag_rules:
            if rule.matches(tag):
                return rule.environment
        return None

    def require(self, name: str) -> str:
        """A setting a step cannot work without; :class:`ConfigurationError` naming its variable otherwise."""
        value = getattr(self, name)
        if not value:
            alias = type(self).model_fields[name].alias or name
            raise ConfigurationError(f"{alias} is not set for this function")
        return str(value)

    def require_topic(self) -> str:
        if not self.notification_topic_arn:
            raise ConfigurationError("NOTIFICATION_TOPIC_ARN is not set for this function")
        return self.notification_topic_arn


_VARIABLES = tuple(field.alias for field in Settings.model_fields.values() if field.alias is not None)


def get_settings() -> Settings:
    """The validated settings of the current environment (cached per distinct set of values)."""
    values = tuple((name, os.environ[name]) for name in _VARIABLES if name in os.environ)
    if "TAG_RULES" not in dict(values):
        values = (*values, ("TAG_RULES", DEFAULT_TAG_RULES))
    return _load(values)


@lru_cache(maxsize=32)
def _load(values: tuple[tuple[str, str], ...]) -> Settings:
    try:
        return Settings.model_validate(dict(values))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from None
