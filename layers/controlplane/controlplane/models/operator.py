"""Who did it: the operator API's requests, the caller's authenticated identity, and the signed records they leave.

Every human action (approve/reject, deploy by hand with or without ``force``, manual rollback, off-hours override)
goes through the operator API, a Lambda function URL with ``AuthType: AWS_IAM``: AWS authenticates the SigV4 request
and hands the handler the caller's principal in ``requestContext.authorizer.iam``. No payload field names a person.

The operator API leaves two kinds of signed material (HMAC-SHA-256 by a KMS key only its role may ``GenerateMac``
with, so ledger writers and ``StartExecution`` callers cannot forge them):

* an :class:`OperatorSignature` in the input of the executions it starts (bound to the execution's name, which a
  state machine keeps unique, and to the exact request), which PlanRelease / ResolveRollbackTarget / the off-hours
  begin step verify before they honour ``force``, a production rollback or a production off-hours override;
* a :class:`DecisionRecord` in the ledger for each approval decision, which VerifyApproval re-reads and verifies
  after the ``waitForTaskToken`` callback: the callback's payload itself proves nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from controlplane import platform

Environment = Literal["staging", "production"]

# ---------------------------------------------------------------------------------------------------------------------
# Free text: printable, no control or bidirectional-override characters
# ---------------------------------------------------------------------------------------------------------------------

# Bidi embeddings/overrides/isolates and the marks that reorder text (Trojan Source, CVE-2021-42574), zero-width and
# BOM characters that hide text in a notification.
_INVISIBLE = frozenset("\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")


def _printable(value: str) -> str:
    for index, char in enumerate(value):
        if char in _INVISIBLE:
            raise ValueError(f"character {index} is U+{ord(char):04X}, a bidirectional or invisible formatting mark")
        if not char.isprintable():
            raise ValueError(f"character {index} is U+{ord(char):04X}, a control character (one line of text only)")
    return value


Printable = AfterValidator(_printable)
"""Free text: printable characters on one line (no control or bidi characters); add a ``Field`` for its length."""
Reason = Annotated[str, Field(min_length=1, max_length=500), Printable]
Comment = Annotated[str, Field(min_length=1, max_length=500), Printable]

# ---------------------------------------------------------------------------------------------------------------------
# Principals
# ---------------------------------------------------------------------------------------------------------------------

_ASSUMED = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([\w+=,.@-]+)/([\w+=,.@-]+)$")
_IAM = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):(user|role)/(?:[\w+=,.@/-]*/)?([\w+=,.@-]+)$")
PRINCIPAL_PATTERN = r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:[A-Za-z0-9_+=,.@/-]{1,512}$"


def principal_key(arn: str) -> str:
    """Who ``arn`` is for separation of duties: ``user/<name>`` or ``role/<name>`` in its account.

    Two sessions of one role are one principal: whoever may assume a role chooses the session name, so a session name
    cannot tell two people apart. Role paths are dropped (an assumed-role ARN does not carry them).
    """
    if match := _ASSUMED.match(arn):
        partition, account, role, _session = match.groups()
        return f"arn:{partition}:iam::{account}:role/{role}"
    if match := _IAM.match(arn):
        partition, account, kind, name = match.groups()
        return f"arn:{partition}:iam::{account}:{kind}/{name}"
    return arn


def is_one_of(arn: str, principals: tuple[str, ...]) -> bool:
    """``arn`` (a user, a role, or a session of a role) is one of ``principals`` (user or role ARNs)."""
    key = principal_key(arn)
    return any(principal_key(p) == key for p in principals)


# ---------------------------------------------------------------------------------------------------------------------
# Signed material
# ---------------------------------------------------------------------------------------------------------------------


def canonical(material: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: sorted-key compact JSON, then SHA-256 (KMS ``GenerateMac`` takes <= 4 KiB)."""
    body = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(body).hexdigest().encode()


class OperatorAction(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    OFFHOURS = "offhours"
    UNQUARANTINE = "unquarantine"


class OperatorSignature(BaseModel):
    """``operator`` in an execution's input: who asked, signed over the request and the execution's name."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    principal: str = Field(pattern=PRINCIPAL_PATTERN)
    action: OperatorAction
    signed_at: AwareDatetime
    mac: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9+/=]+$")

    def material(self, *, execution_name: str, request: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "kind": "operator-request",
            "execution_name": execution_name,
            "action": self.action.value,
            "principal": self.principal,
            "signed_at": self.signed_at.isoformat(),
            "request": {k: v for k, v in request.items() if k != "operator"},
        }


UNSIGNED_ROLLBACK = (
    "a {environment} rollback needs an authenticated operator; start it through the operator API "
    '({{"action": "rollback", "environment": "{environment}", ...}}) or the CLI (trialstudio rollback), not on the '
    "state machine directly"
)
"""Why an unsigned rollback is refused (``.format(environment=...)``): AcquireLock and ResolveRollbackTarget."""


class DecisionStatus(StrEnum):
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class DecisionRecord(BaseModel):
    """The signed answer to one approval request: what was approved, for which execution, by whom."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    release_id: str = Field(pattern=r"^rel-[0-9a-f]{20}$")
    environment: Environment
    execution_arn: str = Field(min_length=1, max_length=2048)
    images: dict[str, str]
    bundle_hash: str = Field(min_length=1)
    status: DecisionStatus
    approver: str = Field(pattern=PRINCIPAL_PATTERN)
    requested_by: str | None = None
    comment: str = ""
    decided_at: datetime

    def material(self) -> dict[str, Any]:
        return {"kind": "approval-decision", **self.model_dump(mode="json")}


class SignedDecision(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    record: DecisionRecord
    mac: str


# ---------------------------------------------------------------------------------------------------------------------
# The operator API: function URL events and the JSON bodies it accepts
# ---------------------------------------------------------------------------------------------------------------------


class IamAuthorizer(BaseModel):
    """``requestContext.authorizer.iam`` of a function URL request with ``AuthType: AWS_IAM`` (set by AWS)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)

    access_key: str = Field(alias="accessKey", default="")
    account_id: str = Field(alias="accountId", pattern=r"^\d{12}$")
    caller_id: str = Field(alias="callerId", default="")
    user_arn: str = Field(alias="userArn", pattern=PRINCIPAL_PATTERN)
    user_id: str = Field(alias="userId", default="")


class OperatorCaller(BaseModel):
    """The authenticated caller and the request, as AWS delivered them."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    principal: str
    request_id: str
    body: Any


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class DecideBody(_Body):
    """``{"action": "approve"|"reject", "release_id": "rel-...", "comment"?: "..."}``."""

    action: Literal["approve", "reject"]
    release_id: str = Field(pattern=r"^rel-[0-9a-f]{20}$")
    comment: Comment | None = None


class DeployBody(_Body):
    """``{"action": "deploy", "environment", "services": {service: tag|digest}, "reason", "force"?: bool}``."""

    action: Literal["deploy"]
    environment: Environment
    services: dict[str, str] = Field(min_length=1, max_length=len(platform.SERVICE_NAMES))
    reason: Reason
    force: bool = False


class RollbackBody(_Body):
    """``{"action": "rollback", "environment", "release_id"?: "rel-...", "reason"?, "acknowledge"?: bool}``.

    ``acknowledge`` clears a degraded environment's mark without re-applying anything (the cluster was fixed by hand).
    """

    action: Literal["rollback"]
    environment: Environment
    release_id: str | None = Field(default=None, pattern=r"^rel-[0-9a-f]{20}$")
    reason: Reason = "operator rollback"
    acknowledge: bool = False


class OffHoursBody(_Body):
    """``{"action": "offhours", "environment", "mode": "down"|"up"|"stay_awake", "until"?: RFC 3339, "reason"?}``."""

    action: Literal["offhours"]
    environment: Environment
    mode: Literal["down", "up", "stay_awake"]
    until: str | None = Field(default=None, max_length=40)
    reason: Reason | None = None


def _known_service(name: str) -> str:
    if name not in platform.SERVICE_NAMES:
        raise ValueError(f"unknown service {name[:63]!r} (one of {', '.join(platform.SERVICE_NAMES)})")
    return name


class UnquarantineBody(_Body):
    """``{"action": "unquarantine", "environment", "service", "digest": "sha256:...", "reason"}``."""

    action: Literal["unquarantine"]
    environment: Environment
    service: Annotated[str, AfterValidator(_known_service)]
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    reason: Reason


class ResendBody(_Body):
    """``{"action": "resend", "environment", "event": {...}}``: an ECR push event EventBridge could not deliver
    (a message of PushDeadLetterQueue), started on the deploy state machine as the push rule would have."""

    action: Literal["resend"]
    environment: Environment
    event: dict[str, Any]


OperatorBody = Annotated[
    DecideBody | DeployBody | RollbackBody | OffHoursBody | UnquarantineBody | ResendBody,
    Field(discriminator="action"),
]


class OperatorResponse(BaseModel):
    """What the operator API answers (the HTTP body); ``error`` names the refusal's type, ``message`` the field."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    ok: bool
    action: str | None = None
    principal: str | None = None
    release_id: str | None = None
    status: str | None = None
    execution_arn: str | None = None
    error: str | None = None
    message: str | None = None
