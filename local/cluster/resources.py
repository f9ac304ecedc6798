"""The resource types the emulator serves: built-ins plus those CustomResourceDefinitions add.

A :class:`ResourceType` carries what discovery publishes (plural, singular, kind, scope, verbs, short names,
categories, subresources) and what the API layer needs (status subresource, generation, scale paths, the field
selectors the real server accepts). :class:`Registry` is thread-safe; CRD writes register and unregister types.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from local.cluster.store import GroupResource

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
NO_COLLECTION_DELETE = ("create", "delete", "get", "list", "patch", "update", "watch")
SUB_VERBS = ("get", "patch", "update")
PROXY_VERBS = ("create", "delete", "get", "patch", "update")
META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class ScalePaths:
    """Where ``/scale`` reads and writes: dotted paths; ``selector_struct`` when the selector is a LabelSelector."""

    spec_replicas: str = "spec.replicas"
    status_replicas: str = "status.replicas"
    selector: str = "spec.selector"
    selector_struct: bool = True


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    status: bool = False
    scale: ScalePaths | None = None
    proxy: bool = False
    generation: bool = False
    builtin: bool = True
    field_selectors: frozenset[str] = field(default=META_FIELDS)
    list_kind: str = ""

    @property
    def gr(self) -> GroupResource:
        return GroupResource(self.group, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind_name(self) -> str:
        return self.list_kind or f"{self.kind}List"

    def subresources(self) -> tuple[str, ...]:
        out: list[str] = []
        if self.proxy:
            out.append("proxy")
        if self.scale is not None:
            out.append("scale")
        if self.status:
            out.append("status")
        return tuple(out)

    def storage_version_hash(self) -> str:
        digest = hashlib.sha256(f"{self.group}/{self.version}/{self.kind}".encode()).digest()
        return base64.b64encode(digest[:8]).decode()

    def discovery(self) -> list[dict[str, Any]]:
        """The ``APIResource`` entries for this type and its subresources."""
        main: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        main["storageVersionHash"] = self.storage_version_hash()
        out = [main]
        if self.proxy:
            out.append(
                {
                    "name": f"{self.plural}/proxy",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": "ServiceProxyOptions",
                    "verbs": list(PROXY_VERBS),
                }
            )
        if self.scale is not None:
            out.append(
                {
                    "name": f"{self.plural}/scale",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": list(SUB_VERBS),
                }
            )
        if self.status:
            out.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": list(SUB_VERBS),
                }
            )
        return out


def _rt(group: str, version: str, plural: str, kind: str, **kw: Any) -> ResourceType:
    return ResourceType(group=group, version=version, plural=plural, singular=kind.lower(), kind=kind, **kw)


_POD_FIELDS = META_FIELDS | {
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
}
_EVENT_FIELDS = META_FIELDS | {
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
}

BUILTINS: tuple[ResourceType, ...] = (
    _rt(
        "",
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        status=True,
        verbs=NO_COLLECTION_DELETE,
        field_selectors=META_FIELDS | {"status.phase"},
    ),
    _rt("", "v1", "pods", "Pod", short_names=("po",), categories=("all",), status=True, field_selectors=_POD_FIELDS),
    _rt("", "v1", "services", "Service", short_names=("svc",), categories=("all",), status=True, proxy=True),
    _rt("", "v1", "endpoints", "Endpoints", short_names=("ep",), list_kind="EndpointsList"),
    _rt("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _rt("", "v1", "secrets", "Secret", field_selectors=META_FIELDS | {"type"}),
    _rt("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _rt("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",), status=True),
    _rt(
        "",
        "v1",
        "nodes",
        "Node",
        namespaced=False,
        short_names=("no",),
        status=True,
        field_selectors=META_FIELDS | {"spec.unschedulable"},
    ),
    _rt("", "v1", "events", "Event", short_names=("ev",), field_selectors=_EVENT_FIELDS),
    _rt(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        categories=("all",),
        status=True,
        scale=ScalePaths(),
        generation=True,
    ),
    _rt(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        short_names=("rs",),
        categories=("all",),
        status=True,
        scale=ScalePaths(),
        generation=True,
        field_selectors=META_FIELDS | {"status.replicas"},
    ),
    _rt(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        short_names=("sts",),
        categories=("all",),
        status=True,
        scale=ScalePaths(),
        generation=True,
    ),
    _rt(
        "apps", "v1", "daemonsets", "DaemonSet", short_names=("ds",), categories=("all",), status=True, generation=True
    ),
    _rt("apps", "v1", "controllerrevisions", "ControllerRevision"),
    _rt(
        "batch",
        "v1",
        "jobs",
        "Job",
        categories=("all",),
        status=True,
        generation=True,
        field_selectors=META_FIELDS | {"status.successful"},
    ),
    _rt("batch", "v1", "cronjobs", "CronJob", short_names=("cj",), categories=("all",), status=True, generation=True),
    _rt(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        short_names=("hpa",),
        categories=("all",),
        status=True,
        generation=True,
    ),
    _rt(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        short_names=("pdb",),
        status=True,
        generation=True,
    ),
    _rt("networking.k8s.io", "v1", "ingresses", "Ingress", short_names=("ing",), status=True, generation=True),
    _rt("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False),
    _rt("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",), generation=True),
    _rt("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False, short_names=("sc",)),
    _rt("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", namespaced=False, verbs=("create",)),
    _rt(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        namespaced=False,
        verbs=("create",),
    ),
    _rt(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        namespaced=False,
        verbs=("create",),
    ),
    _rt(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        namespaced=False,
        categories=("api-extensions",),
    ),
    _rt(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        namespaced=False,
        categories=("api-extensions",),
    ),
    _rt("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _rt("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _rt("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    _rt("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _rt(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        status=True,
        generation=True,
    ),
)

# Group order in /apis, as the real server lists them (legacy priority order, then CRD groups by name).
GROUP_ORDER = (
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
)

CRD_GR = GroupResource("apiextensions.k8s.io", "customresourcedefinitions")


class Registry:
    """Lookup by (group, version, plural); CRD-defined types come and go at run time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str, str], ResourceType] = {(t.group, t.version, t.plural): t for t in BUILTINS}
        self._crds: dict[str, list[ResourceType]] = {}
        self._serial = 0

    @property
    def serial(self) -> int:
        """Bumped whenever the set of types changes (discovery and OpenAPI documents change with it)."""
        return self._serial

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    def for_gr(self, gr: GroupResource) -> list[ResourceType]:
        return [t for t in self.all() if t.gr == gr]

    def preferred(self, gr: GroupResource) -> ResourceType | None:
        types = self.for_gr(gr)
        return types[0] if types else None

    def groups(self) -> list[tuple[str, list[str]]]:
        """``(group, versions)`` with the preferred version first, in discovery order (core group excluded)."""
        seen: dict[str, list[str]] = {}
        for t in self.all():
            if t.group:
                versions = seen.setdefault(t.group, [])
                if t.version not in versions:
                    versions.append(t.version)
        ordered = [g for g in GROUP_ORDER if g in seen] + sorted(g for g in seen if g not in GROUP_ORDER)
        return [(g, seen[g]) for g in ordered]

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self.all() if t.group == group and t.version == version]

    # CRDs ---------------------------------------------------------------------------------------------------
    def register_crd(self, crd: Mapping[str, Any]) -> list[ResourceType]:
        types = crd_types(crd)
        name = str(crd.get("metadata", {}).get("name", ""))
        with self._lock:
            for old in self._crds.pop(name, []):
                self._types.pop((old.group, old.version, old.plural), None)
            for t in types:
                self._types[(t.group, t.version, t.plural)] = t
            self._crds[name] = types
            self._serial += 1
        return types

    def unregister_crd(self, name: str) -> list[ResourceType]:
        with self._lock:
            gone = self._crds.pop(name, [])
            for old in gone:
                self._types.pop((old.group, old.version, old.plural), None)
            self._serial += 1
        return gone


def crd_types(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The served versions of a CRD, storage version first (it is the preferred one)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group", ""))
    plural = str(names.get("plural", ""))
    kind = str(names.get("kind", ""))
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    versions.sort(key=lambda v: not v.get("storage", False))
    out: list[ResourceType] = []
    for v in versions:
        subs = v.get("subresources") or {}
        scale_cfg = subs.get("scale")
        scale = None
        if isinstance(scale_cfg, Mapping):
            scale = ScalePaths(
                spec_replicas=str(scale_cfg.get("specReplicasPath", ".spec.replicas")).lstrip("."),
                status_replicas=str(scale_cfg.get("statusReplicasPath", ".status.replicas")).lstrip("."),
                selector=str(scale_cfg.get("labelSelectorPath", "") or "").lstrip("."),
                selector_struct=False,
            )
        out.append(
            ResourceType(
                group=group,
                version=str(v.get("name", "")),
                plural=plural,
                singular=str(names.get("singular") or kind.lower()),
                kind=kind,
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status="status" in subs,
                scale=scale,
                generation=True,
                builtin=False,
                list_kind=str(names.get("listKind") or ""),
            )
        )
    return out
