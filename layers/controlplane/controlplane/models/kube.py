"""What the Kubernetes adapter reports: applied objects, diffs, rollout status, pod failures, smoke tests.

Every model is immutable (``frozen``), rejects unknown fields and survives a JSON round trip unchanged, because
these payloads cross Step Functions state boundaries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, JsonValue

ApplyAction = Literal["created", "configured", "unchanged"]
Blame = Literal["image", "platform"]
"""Who a failed rollout is on: the release's images (quarantined) or the platform around them (never quarantined)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ObjectRef(_Model):
    """Names one Kubernetes object. ``namespace`` is ``None`` for cluster-scoped kinds."""

    api_version: str
    kind: str
    namespace: str | None = None
    name: str

    @property
    def group(self) -> str:
        """The API group (``""`` for the core group), which with ``kind`` identifies the type across versions."""
        return self.api_version.rpartition("/")[0]

    @property
    def key(self) -> str:
        """``Kind.group/namespace/name`` (``Deployment.apps/clinical-trials/api-gateway``, ``Namespace/x``).

        The version is left out: one object served under two versions is still one object.
        """
        group_kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{group_kind}/{self.namespace}/{self.name}" if self.namespace else f"{group_kind}/{self.name}"

    def __str__(self) -> str:
        return self.key

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        """The reference of a JSON-shaped object (``apiVersion``, ``kind``, ``metadata.namespace/name``)."""
        meta = obj.get("metadata") or {}
        return cls(
            api_version=str(obj["apiVersion"]),
            kind=str(obj["kind"]),
            namespace=meta.get("namespace") or None,
            name=str(meta["name"]),
        )

    @classmethod
    def scale_target_of(cls, hpa: Mapping[str, Any]) -> ObjectRef:
        """The workload a HorizontalPodAutoscaler scales: ``spec.scaleTargetRef`` in the HPA's namespace."""
        target = (hpa.get("spec") or {}).get("scaleTargetRef")
        if not isinstance(target, Mapping):
            target = {}
        return cls(
            api_version=str(target.get("apiVersion") or "apps/v1"),
            kind=str(target.get("kind")),
            namespace=(hpa.get("metadata") or {}).get("namespace") or None,
            name=str(target.get("name")),
        )


def canonical_sha256(obj: Any) -> str:
    """``sha256:<hex>`` of ``obj``'s canonical JSON (sorted keys, no whitespace, UTF-8)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"sha256:{hashlib.sha256(canonical.encode()).hexdigest()}"


class AppliedObject(_Model):
    """One object after server-side apply (or its server-side dry run).

    ``sha256`` is the digest of the body that was sent (:func:`canonical_sha256`); with ``resource_version``,
    ``generation`` and ``uid`` as the server answered, it is what the next apply compares against to skip an
    object whose content did not change and which nobody changed since (see :mod:`controlplane.kube.apply`).
    ``owns_replicas``: our field manager owned ``spec.replicas`` after the apply (the HPA handover needs to know).
    """

    ref: ObjectRef
    action: ApplyAction
    resource_version: str | None = None
    generation: int | None = None
    uid: str | None = None
    sha256: str | None = None
    owns_replicas: bool = False


class ApplyResult(_Model):
    """The objects of one apply, in the order they were applied."""

    release_id: str
    dry_run: bool = False
    objects: tuple[AppliedObject, ...] = ()

    def refs(self, action: ApplyAction | None = None) -> tuple[ObjectRef, ...]:
        """References of the applied objects, optionally only those with ``action``."""
        return tuple(o.ref for o in self.objects if action is None or o.action == action)

    @property
    def changed(self) -> bool:
        return any(o.action != "unchanged" for o in self.objects)


class FieldChange(_Model):
    """One field that differs between the live object and what applying would make of it.

    ``path`` is dotted, with ``[name=x]`` for list items that have a name (containers, env, ports) and ``[i]``
    for others: ``spec.template.spec.containers[name=app].image``. ``live`` is ``None`` for ``add``, ``desired``
    is ``None`` for ``remove``.
    """

    path: str
    op: Literal["add", "remove", "replace"]
    live: JsonValue = None
    desired: JsonValue = None


class ObjectDiff(_Model):
    """Live object versus the server's dry-run result of applying the desired one."""

    ref: ObjectRef
    action: ApplyAction
    changes: tuple[FieldChange, ...] = ()


class RolloutStatus(_Model):
    """kubectl's rollout-status verdict for one workload: ``done``, still progressing, or ``failed``."""

    ref: ObjectRef | None = None
    done: bool
    failed: bool = False
    reason: str
    message: str


class PodFailure(_Model):
    """A pod of a workload's new revision in a state that will not heal by waiting."""

    namespace: str
    pod: str
    container: str | None = None
    reason: str
    message: str
    since: datetime
    restart_count: int = 0
    workload: ObjectRef | None = None
    blame: Blame = "image"
    """Who the failure is on: ``image`` (its digest is quarantined) or ``platform`` (retried or reported only)."""


class HealthReport(_Model):
    """One look at the release's workloads: healthy (all rolled out, no failures), failed, or still progressing."""

    checked_at: datetime
    healthy: bool
    workloads: tuple[RolloutStatus, ...] = ()
    failures: tuple[PodFailure, ...] = ()

    @property
    def failed(self) -> bool:
        """Waiting longer cannot help: a workload failed its progress deadline or a pod fails fast."""
        return bool(self.failures) or any(w.failed for w in self.workloads)


class SmokeResult(_Model):
    """One request to a service's health endpoint through the API server's service proxy."""

    namespace: str
    service: str
    port: int | str
    path: str
    status_code: int
    body_excerpt: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300
