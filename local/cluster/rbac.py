"""Authorization as EKS does it: RBAC (Roles, ClusterRoles, bindings, aggregation) then the EKS access policies.

:class:`Authorizer` reads the RBAC objects from the store on every decision (so a binding applied a moment ago
counts, as with kube-apiserver's informers), walks ClusterRoleBindings, then the RoleBindings of the request's
namespace, then the user's access policies whose scope covers the namespace. ``aggregationRule`` ClusterRoles
get the rules of every ClusterRole their selectors match. :func:`bootstrap_objects` are the default ClusterRoles
and bindings a new cluster has (``cluster-admin``, ``system:discovery``, ``system:basic-user``,
``system:public-info-viewer``) so authenticated users can discover the API and review their own access.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from local.cluster.access import Rule, User
from local.cluster.selectors import SelectorError, label_selector_requirements, matches
from local.cluster.store import GroupResource, Store

ROLES = GroupResource("rbac.authorization.k8s.io", "roles")
CLUSTER_ROLES = GroupResource("rbac.authorization.k8s.io", "clusterroles")
ROLE_BINDINGS = GroupResource("rbac.authorization.k8s.io", "rolebindings")
CLUSTER_ROLE_BINDINGS = GroupResource("rbac.authorization.k8s.io", "clusterrolebindings")


@dataclass(frozen=True)
class Attributes:
    """What one request asks (``authorizer.Attributes``)."""

    verb: str
    resource_request: bool
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""


def _has(values: tuple[str, ...], wanted: str) -> bool:
    return "*" in values or wanted in values


def _url_matches(pattern: str, path: str) -> bool:
    if pattern in ("*", path):
        return True
    return pattern.endswith("*") and path.startswith(pattern[:-1])


def rule_allows(rule: Rule, attrs: Attributes) -> bool:
    """``rbac.RuleAllows``: verbs, API groups, resources (``*``, ``res/*``, ``*/sub``), names; or nonResourceURLs."""
    if not _has(rule.verbs, attrs.verb):
        return False
    if not attrs.resource_request:
        return any(_url_matches(u, attrs.path) for u in rule.non_resource_urls)
    if rule.non_resource_urls and not rule.resources:
        return False
    if not _has(rule.api_groups, attrs.group):
        return False
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    resource_ok = any(
        r in ("*", combined)
        or (attrs.subresource and r == f"*/{attrs.subresource}")
        or (r == f"{attrs.resource}/*" and bool(attrs.subresource))
        for r in rule.resources
    )
    if not resource_ok:
        return False
    return not rule.resource_names or attrs.name in rule.resource_names


def _subject_matches(subject: Mapping[str, Any], user: User, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    name = subject.get("name")
    if kind == "User":
        return bool(name == user.name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{ns}:{name}"
    return False


class Authorizer:
    """RBAC over the store's objects, then EKS access policies (a union: any allow wins; nothing denies)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --------------------------------------------------------------------------------------------- role rules
    def _cluster_role_rules(self, name: str, seen: frozenset[str] = frozenset()) -> list[Rule]:
        role = self.store.peek(CLUSTER_ROLES, "", name)
        if role is None:
            return []
        rules = [Rule.from_obj(r) for r in role.get("rules") or [] if isinstance(r, Mapping)]
        aggregation = role.get("aggregationRule")
        if isinstance(aggregation, Mapping):
            rules.extend(self._aggregated(aggregation, seen | {name}))
        return rules

    def _aggregated(self, aggregation: Mapping[str, Any], seen: frozenset[str]) -> Iterator[Rule]:
        selectors = []
        for raw in aggregation.get("clusterRoleSelectors") or []:
            try:
                reqs = label_selector_requirements(raw)
            except SelectorError:
                continue
            if reqs is not None:
                selectors.append(reqs)
        for other in self.store.peek_list(CLUSTER_ROLES)[0]:
            meta = other["metadata"]
            if meta["name"] in seen:
                continue
            if any(matches(sel, meta.get("labels")) for sel in selectors):
                yield from (Rule.from_obj(r) for r in other.get("rules") or [] if isinstance(r, Mapping))

    def _role_rules(self, ref: Mapping[str, Any], namespace: str) -> list[Rule]:
        kind, name = ref.get("kind"), str(ref.get("name") or "")
        if kind == "ClusterRole":
            return self._cluster_role_rules(name)
        if kind == "Role" and namespace:
            role = self.store.peek(ROLES, namespace, name)
            if role is not None:
                return [Rule.from_obj(r) for r in role.get("rules") or [] if isinstance(r, Mapping)]
        return []

    def rbac_rules(self, user: User, namespace: str) -> Iterator[Rule]:
        """Every RBAC rule that applies to ``user`` for a request in ``namespace`` ("" = cluster scope)."""
        for binding in self.store.peek_list(CLUSTER_ROLE_BINDINGS)[0]:
            if any(_subject_matches(s, user, "") for s in binding.get("subjects") or [] if isinstance(s, Mapping)):
                yield from self._role_rules(binding.get("roleRef") or {}, "")
        if not namespace:
            return
        for binding in self.store.peek_list(ROLE_BINDINGS, namespace)[0]:
            if any(
                _subject_matches(s, user, namespace) for s in binding.get("subjects") or [] if isinstance(s, Mapping)
            ):
                yield from self._role_rules(binding.get("roleRef") or {}, namespace)

    def policy_rules(self, user: User, namespace: str) -> Iterator[Rule]:
        for policy in user.policies:
            if policy.applies(namespace):
                yield from policy.rules

    # ------------------------------------------------------------------------------------------------ decisions
    def allowed(self, user: User, attrs: Attributes) -> bool:
        if "system:masters" in user.groups:
            return True
        if any(rule_allows(r, attrs) for r in self.rbac_rules(user, attrs.namespace)):
            return True
        return any(rule_allows(r, attrs) for r in self.policy_rules(user, attrs.namespace))


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "ClusterRole",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "rules": rules,
    }


def _cluster_role_binding(name: str, role: str, groups: list[str]) -> dict[str, Any]:
    return {
        "kind": "ClusterRoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g} for g in groups],
    }


_DISCOVERY_URLS = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
]
_PUBLIC_INFO_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]


def bootstrap_objects() -> list[tuple[GroupResource, dict[str, Any]]]:
    """The default RBAC objects of a Kubernetes 1.32 cluster that matter here (``bootstrappolicy``)."""
    return [
        (
            CLUSTER_ROLES,
            _cluster_role(
                "cluster-admin",
                [
                    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                    {"nonResourceURLs": ["*"], "verbs": ["*"]},
                ],
            ),
        ),
        (CLUSTER_ROLES, _cluster_role("system:discovery", [{"nonResourceURLs": _DISCOVERY_URLS, "verbs": ["get"]}])),
        (
            CLUSTER_ROLES,
            _cluster_role("system:public-info-viewer", [{"nonResourceURLs": _PUBLIC_INFO_URLS, "verbs": ["get"]}]),
        ),
        (
            CLUSTER_ROLES,
            _cluster_role(
                "system:basic-user",
                [
                    {
                        "apiGroups": ["authorization.k8s.io"],
                        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                        "verbs": ["create"],
                    },
                    {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
                ],
            ),
        ),
        (CLUSTER_ROLE_BINDINGS, _cluster_role_binding("cluster-admin", "cluster-admin", ["system:masters"])),
        (
            CLUSTER_ROLE_BINDINGS,
            _cluster_role_binding("system:discovery", "system:discovery", ["system:authenticated"]),
        ),
        (
            CLUSTER_ROLE_BINDINGS,
            _cluster_role_binding("system:basic-user", "system:basic-user", ["system:authenticated"]),
        ),
        (
            CLUSTER_ROLE_BINDINGS,
            _cluster_role_binding(
                "system:public-info-viewer",
                "system:public-info-viewer",
                ["system:authenticated", "system:unauthenticated"],
            ),
        ),
    ]
