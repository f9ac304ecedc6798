"""StartStacks / AdvanceStacks: the platform's CloudFormation stacks (``manifests/stacks.yaml``), the provisioning
loop's state and the stack policy that protects the platform's data."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from controlplane.errors import ConfigurationError
from controlplane.models.base import StrictModel
from controlplane.models.lease import Lease
from controlplane.models.release import Environment


class StackSpec(StrictModel):
    """One platform stack of ``manifests/stacks.yaml``."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    suffix: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    template: str = Field(min_length=1)
    scope: Literal["environment", "account"] = "environment"
    capabilities: list[str] = Field(default_factory=list)
    inputs: list[str] = Field(default_factory=list)
    wiring: dict[str, str] = Field(default_factory=dict, description="Parameter -> '<stack suffix>.<Output>'")
    bootstrap: bool = False
    holds_data: bool = Field(
        default=False,
        description="Created protected (termination protection, stack policy) by CreateStack; never deleted.",
    )

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


class StackCatalog(StrictModel):
    """``manifests/stacks.yaml``: the platform's stacks in dependency order, and how they are named and wired."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

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


class StackProgress(StrictModel):
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


class ProvisionRequest(StrictModel):
    environment: Environment
    release_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,64}$")
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")


class ProvisionState(StrictModel):
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


class StartStacksInput(ProvisionRequest):
    """StartStacks: the request, and the lock's lease of the execution (deploy or provisioning) that holds it."""

    lease: Lease = Field(description="$.lock.lease: renewed first; the stacks' ledger records are written behind it")


class AdvanceStacksInput(StrictModel):
    provision: ProvisionState
    now: datetime | None = Field(default=None, description="$$.State.EnteredTime (the clock the Wait states follow).")
    lease: Lease = Field(description="$.lock.lease: renewed first; the stacks' ledger records are written behind it")


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
