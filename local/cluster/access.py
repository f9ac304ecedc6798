"""EKS authentication -> Kubernetes identity: IAM principals, access entries and EKS access policies.

On EKS a bearer token is a presigned STS ``GetCallerIdentity`` URL; EKS learns the caller's ARN from STS,
canonicalises an assumed-role ARN (``arn:aws:sts::ACCT:assumed-role/NAME/SESSION`` ->
``arn:aws:iam::ACCT:role/NAME``, the role's path dropped as aws-iam-authenticator does), looks the principal up in
the cluster's access entries and authenticates it as the entry's username with the entry's Kubernetes groups (plus
``system:authenticated``). A principal without an access entry is ``401 Unauthorized``. The entry's access policies
(cluster or namespace scope) authorize next to RBAC (``rbac.py``).

:data:`ACCESS_POLICIES` holds the rules AWS documents for each policy ("Review access policy permissions" in the
EKS user guide): each row of each table is one rule.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

POLICY_PREFIX = "arn:aws:eks::aws:cluster-access-policy/"
AUTHENTICATED = "system:authenticated"

_ASSUMED = re.compile(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/(.+)$")
_ROLE = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/(?:.*/)?([^/]+)$")
_POLICY_ARN = re.compile(r"^arn:aws[a-z-]*:eks::aws:cluster-access-policy/([A-Za-z]+)$")


@dataclass(frozen=True)
class Rule:
    """One RBAC PolicyRule (``apiGroups``/``resources``/``resourceNames``/``verbs`` or ``nonResourceURLs``)."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any]) -> Rule:
        def strs(key: str) -> tuple[str, ...]:
            value = obj.get(key) or ()
            return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()

        return cls(
            verbs=strs("verbs"),
            api_groups=strs("apiGroups"),
            resources=strs("resources"),
            resource_names=strs("resourceNames"),
            non_resource_urls=strs("nonResourceURLs"),
        )

    def to_obj(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verbs": list(self.verbs)}
        if self.non_resource_urls:
            out["nonResourceURLs"] = list(self.non_resource_urls)
            return out
        out["apiGroups"] = list(self.api_groups)
        out["resources"] = list(self.resources)
        if self.resource_names:
            out["resourceNames"] = list(self.resource_names)
        return out


_WRITE = ("create", "delete", "deletecollection", "patch", "update")
_READ = ("get", "list", "watch")


def _rules(*rows: tuple[str, str, tuple[str, ...]]) -> tuple[Rule, ...]:
    """Rows of AWS's tables: (API group, comma-separated resources, verbs)."""
    return tuple(
        Rule(verbs=verbs, api_groups=(group,), resources=tuple(r.strip() for r in resources.split(",")))
        for group, resources, verbs in rows
    )


_APPS_WRITE = "daemonsets, deployments, deployments/rollback, deployments/scale, replicasets, replicasets/scale, "
_APPS_WRITE += "statefulsets, statefulsets/scale"
_APPS_READ = "controllerrevisions, daemonsets, daemonsets/status, deployments, deployments/scale, deployments/status, "
_APPS_READ += (
    "replicasets, replicasets/scale, replicasets/status, statefulsets, statefulsets/scale, statefulsets/status"
)
_EXT_WRITE = "daemonsets, deployments, deployments/rollback, deployments/scale, ingresses, networkpolicies, "
_EXT_WRITE += "replicasets, replicasets/scale, replicationcontrollers/scale"
_EXT_READ = "daemonsets, daemonsets/status, deployments, deployments/scale, deployments/status, ingresses, "
_EXT_READ += "ingresses/status, networkpolicies, replicasets, replicasets/scale, replicasets/status, "
_EXT_READ += "replicationcontrollers/scale"
_CORE_READ = "configmaps, endpoints, persistentvolumeclaims, persistentvolumeclaims/status, pods, "
_CORE_READ += "replicationcontrollers, replicationcontrollers/scale, serviceaccounts, services, services/status"
_CORE_STATUS = (
    "bindings, events, limitranges, namespaces/status, pods/log, pods/status, replicationcontrollers/status, "
)
_CORE_STATUS += "resourcequotas, resourcequotas/status"
_CORE_WRITE = "configmaps, events, persistentvolumeclaims, replicationcontrollers, replicationcontrollers/scale, "
_CORE_WRITE += "secrets, serviceaccounts, services, services/proxy"
_POD_SUBS = "pods/attach, pods/exec, pods/portforward, pods/proxy, secrets, services/proxy"

_VIEW = _rules(
    ("apps", _APPS_READ, _READ),
    ("autoscaling", "horizontalpodautoscalers, horizontalpodautoscalers/status", _READ),
    ("batch", "cronjobs, cronjobs/status, jobs, jobs/status", _READ),
    ("discovery.k8s.io", "endpointslices", _READ),
    ("extensions", _EXT_READ, _READ),
    ("networking.k8s.io", "ingresses, ingresses/status, networkpolicies", _READ),
    ("policy", "poddisruptionbudgets, poddisruptionbudgets/status", _READ),
    ("", _CORE_READ, _READ),
    ("", _CORE_STATUS, _READ),
    ("", "namespaces", _READ),
)
_EDIT = (
    *_VIEW,
    *_rules(
        ("apps", _APPS_WRITE, _WRITE),
        ("autoscaling", "horizontalpodautoscalers", _WRITE),
        ("batch", "cronjobs, jobs", _WRITE),
        ("extensions", _EXT_WRITE, _WRITE),
        ("networking.k8s.io", "ingresses, networkpolicies", _WRITE),
        ("policy", "poddisruptionbudgets", _WRITE),
        ("", _POD_SUBS, _READ),
        ("", "serviceaccounts", ("impersonate",)),
        ("", "pods, pods/attach, pods/exec, pods/portforward, pods/proxy", _WRITE),
        ("", _CORE_WRITE, _WRITE),
    ),
)
_ADMIN = (
    *_EDIT,
    *_rules(
        ("authorization.k8s.io", "localsubjectaccessreviews", ("create",)),
        ("rbac.authorization.k8s.io", "rolebindings, roles", (*_WRITE, *_READ)),
    ),
)

ACCESS_POLICIES: dict[str, tuple[Rule, ...]] = {
    "AmazonEKSClusterAdminPolicy": (
        Rule(verbs=("*",), api_groups=("*",), resources=("*",)),
        Rule(verbs=("*",), non_resource_urls=("*",)),
    ),
    "AmazonEKSAdminPolicy": _ADMIN,
    "AmazonEKSEditPolicy": _EDIT,
    "AmazonEKSViewPolicy": _VIEW,
    "AmazonEKSAdminViewPolicy": (Rule(verbs=_READ, api_groups=("*",), resources=("*",)),),
    "AmazonEKSSecretReaderPolicy": _rules(("", "secrets", _READ)),
}


def policy_name(policy_arn: str) -> str:
    """``AmazonEKSEditPolicy`` from its ARN; ValueError naming the ARN when it is not an EKS access policy."""
    match = _POLICY_ARN.match(policy_arn)
    if match is None or match.group(1) not in ACCESS_POLICIES:
        raise ValueError(f"unknown EKS access policy {policy_arn!r} (known: {', '.join(sorted(ACCESS_POLICIES))})")
    return match.group(1)


@dataclass(frozen=True)
class AccessPolicy:
    """An access policy associated with an entry: cluster scope (``namespaces=None``) or some namespaces."""

    policy_arn: str
    namespaces: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        policy_name(self.policy_arn)
        if self.namespaces is not None:
            object.__setattr__(self, "namespaces", tuple(self.namespaces))
            if not self.namespaces:
                raise ValueError(f"{self.policy_arn}: a namespace access scope needs at least one namespace")

    @property
    def rules(self) -> tuple[Rule, ...]:
        return ACCESS_POLICIES[policy_name(self.policy_arn)]

    def applies(self, namespace: str) -> bool:
        """Whether the policy's scope covers a request in ``namespace`` ("" = cluster-scoped request)."""
        return self.namespaces is None or (namespace != "" and namespace in self.namespaces)


@dataclass(frozen=True)
class AccessEntry:
    principal_arn: str
    username: str
    kubernetes_groups: tuple[str, ...] = ()
    policies: tuple[AccessPolicy, ...] = ()


@dataclass(frozen=True)
class User:
    """An authenticated Kubernetes user (``user.Info``) and the access policies EKS evaluates for it."""

    name: str
    groups: tuple[str, ...]
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    policies: tuple[AccessPolicy, ...] = ()


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


def canonical_principal(arn: str) -> str:
    """The access-entry key of a caller ARN: assumed-role session -> its role, role path dropped."""
    match = _ASSUMED.match(arn)
    if match is not None:
        partition, account, role, _ = match.groups()
        return f"arn:{partition}:iam::{account}:role/{role}"
    match = _ROLE.match(arn)
    if match is not None:
        partition, account, role = match.groups()
        return f"arn:{partition}:iam::{account}:role/{role}"
    return arn


def _default_username(principal_arn: str) -> str:
    """EKS's default username: ``arn:aws:sts::ACCT:assumed-role/NAME/{{SessionName}}`` for a role."""
    match = _ROLE.match(principal_arn)
    if match is not None:
        partition, account, role = match.groups()
        return f"arn:{partition}:sts::{account}:assumed-role/{role}/{{{{SessionName}}}}"
    return principal_arn


def _render_username(template: str, caller_arn: str, access_key_id: str) -> str:
    session = ""
    match = _ASSUMED.match(caller_arn)
    if match is not None:
        session = match.group(4)
    account = caller_arn.split(":")[4] if caller_arn.count(":") >= 5 else ""
    return (
        template.replace("{{SessionName}}", session)
        .replace("{{AccessKeyID}}", access_key_id)
        .replace("{{AccountID}}", account)
    )


class AccessEntries:
    """The cluster's access entries (``eks:CreateAccessEntry`` + ``AssociateAccessPolicy``), by principal ARN."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, AccessEntry] = {}

    def put(
        self,
        principal_arn: str,
        *,
        kubernetes_groups: Iterable[str] = (),
        username: str | None = None,
        policies: Iterable[AccessPolicy] = (),
    ) -> AccessEntry:
        groups = tuple(kubernetes_groups)
        for group in groups:
            if group.startswith("system:"):
                raise ValueError(f"kubernetes group {group!r}: EKS refuses groups starting with 'system:'")
        entry = AccessEntry(
            principal_arn=principal_arn,
            username=username or _default_username(principal_arn),
            kubernetes_groups=groups,
            policies=tuple(policies),
        )
        with self._lock:
            self._entries[principal_arn] = entry
        return entry

    def remove(self, principal_arn: str) -> None:
        with self._lock:
            self._entries.pop(principal_arn, None)

    def get(self, principal_arn: str) -> AccessEntry | None:
        with self._lock:
            return self._entries.get(principal_arn)

    def from_cloudformation(self, properties: Mapping[str, Any]) -> AccessEntry:
        """Register an ``AWS::EKS::AccessEntry``'s resolved Properties (as written in eks.yaml, after ``!Ref``)."""
        principal = properties.get("PrincipalArn")
        if not isinstance(principal, str) or not principal.startswith("arn:"):
            raise ValueError(f"AccessEntry PrincipalArn must be a resolved ARN, got {principal!r}")
        entry_type = properties.get("Type", "STANDARD")
        if entry_type != "STANDARD":
            raise ValueError(f"AccessEntry Type {entry_type!r}: only STANDARD entries map to Kubernetes users")
        policies: list[AccessPolicy] = []
        for i, raw in enumerate(properties.get("AccessPolicies") or []):
            scope = raw.get("AccessScope") or {}
            scope_type = scope.get("Type")
            if scope_type == "cluster":
                policies.append(AccessPolicy(str(raw.get("PolicyArn")), None))
            elif scope_type == "namespace":
                policies.append(AccessPolicy(str(raw.get("PolicyArn")), tuple(scope.get("Namespaces") or ())))
            else:
                raise ValueError(f"AccessPolicies[{i}].AccessScope.Type must be cluster or namespace: {scope_type!r}")
        return self.put(
            principal,
            kubernetes_groups=properties.get("KubernetesGroups") or (),
            username=properties.get("Username"),
            policies=policies,
        )

    def authenticate(self, caller_arn: str, access_key_id: str) -> User | None:
        """The Kubernetes user for a caller ARN (None: no access entry, 401)."""
        entry = self.get(canonical_principal(caller_arn))
        if entry is None:
            return None
        return User(
            name=_render_username(entry.username, caller_arn, access_key_id),
            groups=(*entry.kubernetes_groups, AUTHENTICATED),
            uid=f"aws-iam-authenticator:{caller_arn.split(':')[4] if caller_arn.count(':') >= 5 else ''}:"
            f"{access_key_id}",
            extra={
                "arn": (caller_arn,),
                "canonicalArn": (entry.principal_arn,),
                "accessKeyId": (access_key_id,),
            },
            policies=entry.policies,
        )


class Identities:
    """Access key id -> the ARN STS ``GetCallerIdentity`` returns for it.

    ``resolve`` is replaceable (``LocalCloud`` sets it to its own STS view); keys given to :meth:`register` answer
    first, whatever ``resolve`` is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, str] = {}
        self.resolve: Callable[[str], str | None] = self._registered

    def register(self, access_key_id: str, arn: str) -> None:
        with self._lock:
            self._keys[access_key_id] = arn

    def _registered(self, access_key_id: str) -> str | None:
        with self._lock:
            return self._keys.get(access_key_id)

    def lookup(self, access_key_id: str) -> str | None:
        return self._registered(access_key_id) or self.resolve(access_key_id)
