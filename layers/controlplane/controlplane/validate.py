"""Validate rendered objects before anything is written to a cluster.

Checks, all of them on every object, every problem reported as ``<kind>/<name>: <field path>: <message>``:

- the Kubernetes JSON schema of the target version (strict: unknown fields are errors), from the
  ``kubernetes-validate`` package; the External Secrets Operator kinds, whose schema it does not ship, get a
  minimal structural check of our own (and their metadata the real ``ObjectMeta`` schema);
- the Pod Security Standard "restricted" in full (https://kubernetes.io/docs/concepts/security/pod-security-standards/:
  host namespaces, privileged, capabilities, hostPath and the volume-type allow-list, host ports, AppArmor, SELinux,
  ``/proc`` mount type, seccomp, sysctls, privilege escalation, non-root, probe/hook hosts) plus our policy
  (read-only root filesystem, no root group, requests and limits, readiness and liveness probes, each workload
  running as its own service account and reading only its own Secret) on every pod template;
- every image pinned by digest to the platform's ECR repository of its service in this account and region;
- what a release may contain: the kinds of ``ALLOWED_KINDS`` per namespace (never a Secret: External Secrets
  writes those from Secrets Manager), ClusterIP Services only (the ALB Ingress is the entry), bindings only of the
  release's own namespaced Roles to the platform's service accounts (never cluster-admin/admin/edit/view), Roles
  without wildcards, secrets or privilege-granting verbs, and NetworkPolicies that never allow all (a rule open to
  everywhere must name ports and may not select every pod);
- the ownership labels, and namespaced objects in the platform's namespace.

Objects of a vendored add-on (``manifests/addons``, labelled ``synthetictrialstudio.io/addon``) are upstream's, not
ours: they get the schema, the ownership labels and their catalog entry instead of the release's policy - only the
kinds of ``ADDON_KINDS``, namespaced objects in the add-on's namespace, CRDs the entry ``provides``, containers
running only the entry's pinned ``images``, and no binding to cluster-admin/admin/edit/view.

The control plane's own RBAC (what a cluster admin applies at bootstrap) is not a release and is not checked here.

Schemas are loaded once per process and version (warm Lambda invocations reuse them), and so is the JSON schema
machinery (jsonschema, referencing, kubernetes-validate: ~50 ms of imports): on the first validation, not when a
handler imports this module.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from controlplane import platform
from controlplane.errors import ManifestValidationError
from controlplane.models.addons import ADDON_LABEL, ADDON_SPEC_ANNOTATION, AddonSpec

if TYPE_CHECKING:
    import referencing
    from jsonschema import Draft202012Validator

_DEFINITIONS_ID: Final = "https://kubernetes.io/api/_definitions.json"
_OBJECT_META: Final = {"$ref": f"{_DEFINITIONS_ID}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}

# Pod Security Standards, restricted profile (https://kubernetes.io/docs/concepts/security/pod-security-standards/).
_RESTRICTED_VOLUME_TYPES: Final = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
_ALLOWED_SECCOMP: Final = frozenset({"RuntimeDefault", "Localhost"})
_ALLOWED_ADDED_CAPABILITIES: Final = frozenset({"NET_BIND_SERVICE"})
_ALLOWED_APPARMOR: Final = frozenset({"RuntimeDefault", "Localhost"})
_APPARMOR_ANNOTATION_PREFIX: Final = "container.apparmor.security.beta.kubernetes.io/"
_ALLOWED_SELINUX_TYPES: Final = frozenset({"container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
# The safe sysctls (https://kubernetes.io/docs/tasks/administer-cluster/sysctl-cluster/), as of Kubernetes 1.32.
_SAFE_SYSCTLS: Final = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)

# What a release may contain, per namespace (None: cluster-scoped). No Secret anywhere (External Secrets writes
# them), no cluster-wide RBAC (the control plane's own Roles/ClusterRoles are applied by a cluster admin at
# bootstrap, outside any release).
ALLOWED_KINDS: Final[Mapping[str | None, frozenset[str]]] = {
    None: frozenset({"Namespace", "CustomResourceDefinition", "StorageClass", "ClusterSecretStore"}),
    platform.NAMESPACE: frozenset(
        {
            "ConfigMap",
            "ExternalSecret",
            "ServiceAccount",
            "Service",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "Ingress",
            "Role",
            "RoleBinding",
        }
    ),
}
ADDON_KINDS: Final = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Service",
        "Deployment",
        "DaemonSet",
        "PodDisruptionBudget",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    }
)
_BUILTIN_CLUSTER_ROLES: Final = frozenset({"cluster-admin", "admin", "edit", "view"})
_FORBIDDEN_RULE_VALUES: Final[Mapping[str, frozenset[str]]] = {
    "verbs": frozenset({"*", "escalate", "bind", "impersonate"}),
    "resources": frozenset({"*", "secrets"}),
    "apiGroups": frozenset({"*"}),
}

Problem = tuple[str, str]  # (field path, message)


# --- JSON schemas --------------------------------------------------------------------------------------------------


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


class _Schemas:
    """The strict schemas of one Kubernetes version, with one compiled validator per (apiVersion, kind)."""

    def __init__(self, version: str) -> None:
        import jsonschema  # noqa: PLC0415 - on the first validation, see the module's docstring
        import referencing.jsonschema  # noqa: PLC0415
        from kubernetes_validate import utils as kv  # noqa: PLC0415

        self.version = version
        self.directory = f"kubernetes-json-schema/v{version}-local-strict"
        self._contents = kv.schema_contents
        self._validator_class = jsonschema.Draft202012Validator
        definitions = self._contents(f"{self.directory}/_definitions.json", version)
        self.registry: referencing.Registry[Any] = (
            referencing.jsonschema.DRAFT202012.create_resource(definitions) @ referencing.Registry()
        )
        self._validators: dict[tuple[str, str], Draft202012Validator | None] = {}
        self.object_meta = self._validator_class(_OBJECT_META, registry=self.registry)

    def validator(self, api_version: str, kind: str) -> Draft202012Validator | None:
        key = (api_version, kind)
        if key not in self._validators:
            # kubernetes-validate's file naming: rbac.authorization.k8s.io/v1 -> rbac-v1; v1 -> v1.
            group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            try:
                schema = self._contents(f"{self.directory}/{kind.lower()}-{group_version}.json", self.version)
            except FileNotFoundError:
                self._validators[key] = None
            else:
                self._validators[key] = self._validator_class(schema, registry=self.registry)
        return self._validators[key]


@functools.cache
def _schemas(kubernetes_version: str) -> _Schemas:
    from kubernetes_validate import utils as kv  # noqa: PLC0415 - on the first validation

    wanted = _version_key(kubernetes_version)
    shipped = sorted(kv.all_versions(), key=_version_key)
    candidates = [v for v in shipped if _version_key(v) <= wanted]
    if len(wanted) != 2 or not candidates or _version_key(candidates[-1]) != wanted:
        raise ManifestValidationError(
            f"kubernetes_version: kubernetes-validate has no schemas for Kubernetes {kubernetes_version!r} "
            f"(it ships {', '.join(sorted({'.'.join(map(str, _version_key(v))) for v in shipped}, key=_version_key))})"
        )
    return _Schemas(candidates[-1])


def _path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(object)"


def _schema_problems(validator: Draft202012Validator, instance: Any, prefix: str = "") -> list[Problem]:
    problems = []
    for error in validator.iter_errors(instance):
        path = _path(error.absolute_path)
        problems.append((f"{prefix}.{path}" if prefix and path != "(object)" else prefix or path, error.message))
    return sorted(problems)


# --- custom resources the schema package does not know -------------------------------------------------------------


def _require(obj: Mapping[str, Any], path: str, expected: type, problems: list[Problem], prefix: str = "") -> Any:
    node: Any = obj
    for key in path.split("."):
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, expected) or (expected is str and not node):
        problems.append((f"{prefix}.{path}" if prefix else path, f"required ({expected.__name__})"))
        return None
    return node


def _only(obj: Any, path: str, allowed: set[str], problems: list[Problem]) -> None:
    if isinstance(obj, Mapping):
        problems.extend((f"{path}.{key}" if path else key, "unknown field") for key in obj if key not in allowed)


def _external_secret(obj: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    _only(obj, "", {"apiVersion", "kind", "metadata", "spec", "status"}, problems)
    spec = obj.get("spec")
    _only(spec, "spec", {"refreshInterval", "refreshPolicy", "secretStoreRef", "target", "data", "dataFrom"}, problems)
    _require(obj, "spec.secretStoreRef.name", str, problems)
    kind = _require(obj, "spec.secretStoreRef.kind", str, problems)
    if kind is not None and kind not in {"SecretStore", "ClusterSecretStore"}:
        problems.append(("spec.secretStoreRef.kind", f"{kind!r} is not SecretStore or ClusterSecretStore"))
    _require(obj, "spec.target.name", str, problems)
    data = _require(obj, "spec.data", list, problems) or []
    for i, item in enumerate(data):
        if not isinstance(item, Mapping):
            problems.append((f"spec.data[{i}]", "must be a mapping"))
            continue
        _only(item, f"spec.data[{i}]", {"secretKey", "remoteRef", "sourceRef"}, problems)
        _require(item, "secretKey", str, problems, f"spec.data[{i}]")
        _require(item, "remoteRef.key", str, problems, f"spec.data[{i}]")
    return problems


def _cluster_secret_store(obj: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    _only(obj, "", {"apiVersion", "kind", "metadata", "spec", "status"}, problems)
    _only(
        obj.get("spec"), "spec", {"provider", "conditions", "controller", "refreshInterval", "retrySettings"}, problems
    )
    aws = _require(obj, "spec.provider.aws", Mapping, problems)
    if aws is not None:
        _only(aws, "spec.provider.aws", {"service", "region", "role", "auth", "additionalRoles", "prefix"}, problems)
        service = aws.get("service")
        if service not in {"SecretsManager", "ParameterStore"}:
            problems.append(("spec.provider.aws.service", f"{service!r} is not SecretsManager or ParameterStore"))
        _require(obj, "spec.provider.aws.region", str, problems)
    return problems


_CUSTOM_CHECKS: Final[Mapping[tuple[str, str], Callable[[Mapping[str, Any]], list[Problem]]]] = {
    ("external-secrets.io/v1", "ExternalSecret"): _external_secret,
    ("external-secrets.io/v1", "ClusterSecretStore"): _cluster_secret_store,
}


# --- pod security and our workload policy --------------------------------------------------------------------------


def _m(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else empty: objects that fail the schema may have any shape."""
    return value if isinstance(value, Mapping) else {}


def _seq(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _walk(obj: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _pod_spec(obj: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    path = platform.POD_SPEC_PATHS.get(str(obj.get("kind")))
    if path is None:
        return None
    node = _walk(obj, path)
    return (".".join(path), node) if isinstance(node, Mapping) else None


def _containers(spec: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for list_name in ("initContainers", "containers", "ephemeralContainers"):
        for i, container in enumerate(_seq(spec.get(list_name))):
            if isinstance(container, Mapping):
                yield list_name, f"{prefix}.{list_name}[{i}]", container


def _pod_problems(obj: Mapping[str, Any], image_re: re.Pattern[str]) -> list[Problem]:
    found = _pod_spec(obj)
    if found is None:
        return []
    prefix, spec = found
    problems: list[Problem] = []
    problems.extend(
        (f"{prefix}.{host_field}", "must not be true (restricted)")
        for host_field in ("hostNetwork", "hostPID", "hostIPC")
        if spec.get(host_field)
    )
    for i, volume in enumerate(_seq(spec.get("volumes"))):
        kinds = set(volume) - {"name"} if isinstance(volume, Mapping) else set()
        problems.extend(
            (f"{prefix}.volumes[{i}].{kind}", f"{kind} volumes are not allowed (restricted)")
            for kind in sorted(kinds - _RESTRICTED_VOLUME_TYPES)
        )
    pod_sc = _m(spec.get("securityContext"))
    problems.extend(_context_problems(pod_sc, f"{prefix}.securityContext"))
    problems.extend(_pod_context_problems(pod_sc, f"{prefix}.securityContext"))
    problems.extend(_apparmor_annotation_problems(obj, prefix))
    problems.extend(_service_account_problems(obj, spec, prefix))
    problems.extend(_secret_reference_problems(obj, spec, prefix))
    for list_name, path, container in _containers(spec, prefix):
        problems.extend(_container_problems(path, container, pod_sc))
        problems.extend(_workload_problems(list_name, path, container, image_re))
    return problems


def _context_problems(sc: Mapping[str, Any], scp: str) -> list[Problem]:
    """The restricted profile's rules a pod and a container securityContext share (explicit values only)."""
    problems: list[Problem] = []
    if sc.get("runAsUser") == 0:
        problems.append((f"{scp}.runAsUser", "must not be 0 (restricted)"))
    seccomp = _m(sc.get("seccompProfile")).get("type")
    if seccomp is not None and seccomp not in _ALLOWED_SECCOMP:
        problems.append((f"{scp}.seccompProfile.type", f"{seccomp!r} is not RuntimeDefault or Localhost (restricted)"))
    apparmor = _m(sc.get("appArmorProfile")).get("type")
    if apparmor is not None and apparmor not in _ALLOWED_APPARMOR:
        problems.append((f"{scp}.appArmorProfile.type", f"{apparmor!r} is not RuntimeDefault or Localhost (baseline)"))
    selinux = _m(sc.get("seLinuxOptions"))
    if selinux.get("type") and selinux["type"] not in _ALLOWED_SELINUX_TYPES:
        problems.append(
            (
                f"{scp}.seLinuxOptions.type",
                f"{selinux['type']!r} is not one of {sorted(_ALLOWED_SELINUX_TYPES)} (baseline)",
            )
        )
    problems.extend(
        (f"{scp}.seLinuxOptions.{field}", "must not be set (baseline)")
        for field in ("user", "role")
        if selinux.get(field)
    )
    if _m(sc.get("windowsOptions")).get("hostProcess"):
        problems.append((f"{scp}.windowsOptions.hostProcess", "must not be true (baseline)"))
    return problems


def _pod_context_problems(pod_sc: Mapping[str, Any], scp: str) -> list[Problem]:
    """Pod-level only: sysctls (the safe set), and no root group (platform policy)."""
    problems: list[Problem] = []
    for i, sysctl in enumerate(_seq(pod_sc.get("sysctls"))):
        name = _m(sysctl).get("name")
        if name not in _SAFE_SYSCTLS:
            problems.append((f"{scp}.sysctls[{i}].name", f"{name!r} is not a safe sysctl (baseline)"))
    problems.extend(
        (f"{scp}.{field}", "must not be 0 (platform policy: no root group)")
        for field in ("runAsGroup", "fsGroup")
        if pod_sc.get(field) == 0
    )
    if 0 in _seq(pod_sc.get("supplementalGroups")):
        problems.append((f"{scp}.supplementalGroups", "must not contain 0 (platform policy: no root group)"))
    return problems


def _apparmor_annotation_problems(obj: Mapping[str, Any], prefix: str) -> list[Problem]:
    """The pre-1.30 AppArmor annotations on the pod template: runtime/default or localhost/* only (baseline)."""
    meta_path = [*prefix.split(".")[:-1], "metadata"]
    annotations = _m(_m(_walk(obj, meta_path)).get("annotations"))
    return [
        (
            f"{'.'.join(meta_path)}.annotations.{key}",
            f"{value!r} is not runtime/default or localhost/<profile> (baseline)",
        )
        for key, value in annotations.items()
        if str(key).startswith(_APPARMOR_ANNOTATION_PREFIX)
        and not (value == "runtime/default" or str(value).startswith("localhost/"))
    ]


def _service_account_problems(obj: Mapping[str, Any], spec: Mapping[str, Any], prefix: str) -> list[Problem]:
    """Each workload runs as its own ServiceAccount, named after it (never another service's, never ``default``)."""
    name = _m(obj.get("metadata")).get("name")
    problems: list[Problem] = []
    for field in ("serviceAccountName", "serviceAccount"):
        account = spec.get(field)
        if account is None and field == "serviceAccount":
            continue
        if account != name:
            problems.append(
                (
                    f"{prefix}.{field}",
                    (
                        f"{account!r} is not this workload's own service account {name!r} (platform policy: one "
                        "service account per workload)"
                    ),
                )
            )
    return problems


def _secret_references(spec: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    """Every (field path, Secret name) a pod spec refers to: env, envFrom, secret and projected volumes."""
    for _, path, container in _containers(spec, prefix):
        for i, source in enumerate(_seq(container.get("envFrom"))):
            if "secretRef" in _m(source):
                yield f"{path}.envFrom[{i}].secretRef.name", _m(source["secretRef"]).get("name")
        for i, variable in enumerate(_seq(container.get("env"))):
            ref = _m(_m(_m(variable).get("valueFrom")).get("secretKeyRef"))
            if ref:
                yield f"{path}.env[{i}].valueFrom.secretKeyRef.name", ref.get("name")
    for i, volume in enumerate(_seq(spec.get("volumes"))):
        if "secret" in _m(volume):
            yield f"{prefix}.volumes[{i}].secret.secretName", _m(volume["secret"]).get("secretName")
        for j, source in enumerate(_seq(_m(_m(volume).get("projected")).get("sources"))):
            if "secret" in _m(source):
                yield f"{prefix}.volumes[{i}].projected.sources[{j}].secret.name", _m(source["secret"]).get("name")


def _secret_reference_problems(obj: Mapping[str, Any], spec: Mapping[str, Any], prefix: str) -> list[Problem]:
    """Each workload reads only its own Secret, ``<workload>-secrets`` (the one its ExternalSecret writes)."""
    own = f"{_m(obj.get('metadata')).get('name')}-secrets"
    return [
        (path, f"{name!r} is not this workload's own Secret {own!r} (platform policy: one Secret per workload)")
        for path, name in _secret_references(spec, prefix)
        if name != own
    ]


def _container_problems(path: str, container: Mapping[str, Any], pod_sc: Mapping[str, Any]) -> list[Problem]:
    """The restricted profile on one container, with the pod's securityContext as the default where it applies."""
    sc = _m(container.get("securityContext"))
    scp = f"{path}.securityContext"
    problems = _context_problems(sc, scp)
    if sc.get("privileged"):
        problems.append((f"{scp}.privileged", "must not be true (restricted)"))
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append((f"{scp}.allowPrivilegeEscalation", "must be false (restricted)"))
    if sc.get("procMount") not in (None, "Default"):
        problems.append((f"{scp}.procMount", f"{sc.get('procMount')!r} is not Default (baseline)"))
    capabilities = _m(sc.get("capabilities"))
    if "ALL" not in _seq(capabilities.get("drop")):
        problems.append((f"{scp}.capabilities.drop", "must include ALL (restricted)"))
    added = {str(c) for c in _seq(capabilities.get("add"))} - _ALLOWED_ADDED_CAPABILITIES
    if added:
        problems.append((f"{scp}.capabilities.add", f"may add only NET_BIND_SERVICE, not {sorted(added)} (restricted)"))
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
        problems.append((f"{scp}.runAsNonRoot", "must be true here or in the pod securityContext (restricted)"))
    if _m(sc.get("seccompProfile")).get("type", _m(pod_sc.get("seccompProfile")).get("type")) is None:
        problems.append(
            (f"{scp}.seccompProfile.type", "must be RuntimeDefault or Localhost, here or in the pod (restricted)")
        )
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append((f"{scp}.readOnlyRootFilesystem", "must be true (platform policy)"))
    if sc.get("runAsGroup") == 0:
        problems.append((f"{scp}.runAsGroup", "must not be 0 (platform policy: no root group)"))
    for i, port in enumerate(_seq(container.get("ports"))):
        if _m(port).get("hostPort"):
            problems.append((f"{path}.ports[{i}].hostPort", "host ports are not allowed (baseline)"))
    problems.extend(_handler_host_problems(container, path))
    return problems


def _handler_host_problems(container: Mapping[str, Any], path: str) -> list[Problem]:
    """Probes and lifecycle hooks may not aim at another host (baseline, Kubernetes 1.34)."""
    handlers = [(probe, _m(container.get(probe))) for probe in ("livenessProbe", "readinessProbe", "startupProbe")]
    lifecycle = _m(container.get("lifecycle"))
    handlers += [(f"lifecycle.{hook}", _m(lifecycle.get(hook))) for hook in ("postStart", "preStop")]
    return [
        (f"{path}.{where}.{action}.host", "must not be set (baseline: probes and hooks target the pod itself)")
        for where, handler in handlers
        for action in ("httpGet", "tcpSocket")
        if _m(handler.get(action)).get("host")
    ]


def _workload_problems(
    list_name: str, path: str, container: Mapping[str, Any], image_re: re.Pattern[str]
) -> list[Problem]:
    """Our policy beyond pod security: requests and limits, probes, images pinned to our ECR by digest."""
    problems: list[Problem] = []
    if list_name != "ephemeralContainers":
        resources = _m(container.get("resources"))
        problems.extend(
            (f"{path}.resources.{section}.{resource}", "required (platform policy)")
            for section in ("requests", "limits")
            for resource in ("cpu", "memory")
            if not _m(resources.get(section)).get(resource)
        )
    if list_name == "containers":
        problems.extend(
            (f"{path}.{probe}", "required (platform policy)")
            for probe in ("readinessProbe", "livenessProbe")
            if not container.get(probe)
        )
    image = container.get("image")
    match = image_re.match(image) if isinstance(image, str) else None
    if match is None or match["service"] not in platform.SERVICE_NAMES:
        problems.append(
            (
                f"{path}.image",
                (
                    f"{image!r} is not pinned by digest to this account's ECR repository of a platform service "
                    f"({image_re.pattern})"
                ),
            )
        )
    return problems


# --- what a release may contain: kinds, Services, RBAC, NetworkPolicies --------------------------------------------


def _scope(obj: Mapping[str, Any]) -> str | None:
    if obj.get("kind") in platform.CLUSTER_SCOPED_KINDS:
        return None
    namespace = _m(obj.get("metadata")).get("namespace")
    return str(namespace) if namespace else None


def _kind_problems(obj: Mapping[str, Any]) -> list[Problem]:
    kind = str(obj.get("kind"))
    if kind == "Secret":
        return [("kind", "a release never carries a Secret: secrets come from AWS Secrets Manager (ExternalSecret)")]
    scope = _scope(obj)
    allowed = ALLOWED_KINDS.get(scope, frozenset())
    if kind in allowed:
        return []
    where = "cluster-scoped" if scope is None else f"in namespace {scope!r}"
    return [("kind", f"{kind} is not allowed {where} (allowed: {', '.join(sorted(allowed)) or 'nothing'})")]


def _namespace_problems(obj: Mapping[str, Any]) -> list[Problem]:
    name = _m(obj.get("metadata")).get("name")
    if name != platform.NAMESPACE:
        return [("metadata.name", f"the release may create only namespace {platform.NAMESPACE!r}, not {name!r}")]
    return []


def _service_problems(obj: Mapping[str, Any]) -> list[Problem]:
    """ClusterIP only: the ALB Ingress is the way in (no LoadBalancer, NodePort, ExternalName, external IPs)."""
    spec = _m(obj.get("spec"))
    problems: list[Problem] = []
    service_type = spec.get("type", "ClusterIP")
    if service_type != "ClusterIP":
        problems.append(("spec.type", f"{service_type!r} is not allowed: ClusterIP only, the ALB Ingress is the entry"))
    if spec.get("externalIPs"):
        problems.append(("spec.externalIPs", "must not be set: the ALB Ingress is the entry"))
    problems.extend(
        (f"spec.ports[{i}].nodePort", "must not be set: ClusterIP only")
        for i, port in enumerate(_seq(spec.get("ports")))
        if _m(port).get("nodePort")
    )
    return problems


def _binding_problems(obj: Mapping[str, Any]) -> list[Problem]:
    """A binding grants one of the release's own namespaced Roles to the platform's own service accounts."""
    role_ref = _m(obj.get("roleRef"))
    problems: list[Problem] = []
    if role_ref.get("kind") != "Role":
        builtin = " (a built-in cluster-wide role)" if _is_builtin_role(role_ref.get("name")) else ""
        problems.append(
            (
                "roleRef.name",
                (
                    f"binds {role_ref.get('kind')} {role_ref.get('name')!r}{builtin}: a release may bind only its "
                    "own namespaced Roles, never cluster-wide roles (cluster-admin, admin, edit, view, system:*)"
                ),
            )
        )
    for i, raw in enumerate(_seq(obj.get("subjects"))):
        subject = _m(raw)
        if subject.get("kind") != "ServiceAccount" or subject.get("namespace") != platform.NAMESPACE:
            who = f"{subject.get('kind')} {subject.get('name')!r}"
            problems.append((f"subjects[{i}]", f"{who}: only ServiceAccounts of {platform.NAMESPACE!r} may be bound"))
    return problems


def _is_builtin_role(name: Any) -> bool:
    return isinstance(name, str) and (name in _BUILTIN_CLUSTER_ROLES or name.startswith("system:"))


def _role_problems(obj: Mapping[str, Any]) -> list[Problem]:
    """No wildcards, no privilege-granting verbs, no access to Secrets."""
    problems: list[Problem] = []
    for i, rule in enumerate(_seq(obj.get("rules"))):
        for field, forbidden in _FORBIDDEN_RULE_VALUES.items():
            bad = sorted({str(v) for v in _seq(_m(rule).get(field))} & forbidden)
            if bad:
                problems.append((f"rules[{i}].{field}", f"must not contain {bad} (platform policy)"))
    return problems


def _empty_selector(selector: Any) -> bool:
    """True for a selector that selects everything (``{}``, or no labels and no expressions)."""
    selector = _m(selector)
    return not _m(selector.get("matchLabels")) and not _seq(selector.get("matchExpressions"))


def _open_peer(peer: Any) -> bool:
    """A peer that matches everywhere: a /0 ipBlock, or every pod of every namespace."""
    peer = _m(peer)
    cidr = _m(peer.get("ipBlock")).get("cidr")
    if isinstance(cidr, str):
        try:
            return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
        except ValueError:
            return False
    return (
        "namespaceSelector" in peer
        and _empty_selector(peer["namespaceSelector"])
        and _empty_selector(peer.get("podSelector"))
    )


def _network_policy_problems(obj: Mapping[str, Any]) -> list[Problem]:
    """No rule lets everything in or out: a rule open to everywhere (no peers, a /0 block, every namespace) must
    name ports, and never on a policy that selects every pod of the namespace."""
    spec = _m(obj.get("spec"))
    every_pod = _empty_selector(spec.get("podSelector"))
    problems: list[Problem] = []
    for direction, peer_key in (("ingress", "from"), ("egress", "to")):
        for i, raw in enumerate(_seq(spec.get(direction))):
            rule = _m(raw)
            peers = _seq(rule.get(peer_key))
            open_at = [j for j, peer in enumerate(peers) if _open_peer(peer)]
            if peers and not open_at:
                continue
            where = f"spec.{direction}[{i}].{peer_key}" + (f"[{open_at[0]}]" if open_at else "")
            if not _seq(rule.get("ports")):
                problems.append(
                    (where, f"allows all traffic {'from' if peer_key == 'from' else 'to'} everywhere on every port")
                )
            elif every_pod:
                problems.append((where, "opens every pod of the namespace (podSelector {}) to everywhere"))
    return problems


def _ingress_problems(obj: Mapping[str, Any]) -> list[Problem]:
    """The Ingress is the way in to the API gateway only: every backend is its Service (no resource backends)."""
    spec = _m(obj.get("spec"))
    backends = [("spec.defaultBackend", spec["defaultBackend"])] if "defaultBackend" in spec else []
    for i, rule in enumerate(_seq(spec.get("rules"))):
        for j, path in enumerate(_seq(_m(_m(rule).get("http")).get("paths"))):
            backends.append((f"spec.rules[{i}].http.paths[{j}].backend", _m(path).get("backend")))
    problems: list[Problem] = []
    for where, backend in backends:
        service = _m(_m(backend).get("service")).get("name")
        if service != platform.EDGE_SERVICE:
            problems.append(
                (f"{where}.service.name", f"{service!r}: the Ingress may route only to {platform.EDGE_SERVICE!r}")
            )
    return problems


def _external_secret_target_problems(obj: Mapping[str, Any]) -> list[Problem]:
    """An ExternalSecret writes only its own workload's Secret, ``<name>-secrets``."""
    own = f"{_m(obj.get('metadata')).get('name')}-secrets"
    target = _m(_m(obj.get("spec")).get("target")).get("name")
    if target is not None and target != own:
        return [("spec.target.name", f"{target!r} is not {own!r}: an ExternalSecret writes only its own Secret")]
    return []


_KIND_CHECKS: Final[Mapping[str, Callable[[Mapping[str, Any]], list[Problem]]]] = {
    "ExternalSecret": _external_secret_target_problems,
    "Namespace": _namespace_problems,
    "Service": _service_problems,
    "Ingress": _ingress_problems,
    "RoleBinding": _binding_problems,
    "ClusterRoleBinding": _binding_problems,
    "Role": _role_problems,
    "ClusterRole": _role_problems,
    "NetworkPolicy": _network_policy_problems,
}


def _policy_problems(obj: Mapping[str, Any]) -> list[Problem]:
    check = _KIND_CHECKS.get(str(obj.get("kind")))
    return _kind_problems(obj) + (check(obj) if check else [])


# --- labels and namespace ------------------------------------------------------------------------------------------


def _ownership_problems(obj: Mapping[str, Any]) -> list[Problem]:
    metadata = _m(obj.get("metadata"))
    labels = _m(metadata.get("labels"))
    problems: list[Problem] = []
    for key, value in ((platform.LABEL_MANAGED_BY, platform.MANAGED_BY), (platform.LABEL_PART_OF, platform.PART_OF)):
        if labels.get(key) != value:
            problems.append((f"metadata.labels.{key}", f"must be {value!r}"))
    if not labels.get(platform.LABEL_ENVIRONMENT):
        problems.append((f"metadata.labels.{platform.LABEL_ENVIRONMENT}", "required"))
    namespace = metadata.get("namespace")
    if obj.get("kind") in platform.CLUSTER_SCOPED_KINDS:
        if namespace:
            problems.append(("metadata.namespace", f"{obj.get('kind')} is cluster-scoped: no namespace"))
    elif namespace != platform.NAMESPACE:
        problems.append(("metadata.namespace", f"must be {platform.NAMESPACE!r}"))
    return problems


# --- entry point ---------------------------------------------------------------------------------------------------


def _identity(obj: Any) -> str:
    if not isinstance(obj, Mapping):
        return "?/?"
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return f"{obj.get('kind') or '?'}/{name or '?'}"


def object_problems(
    obj: Mapping[str, Any], *, kubernetes_version: str = "1.32", account_id: str, region: str
) -> list[Problem]:
    """Every problem of one object as (field path, message); empty when it is fine."""
    schemas = _schemas(kubernetes_version)
    image_re = _image_pattern(account_id, region)
    if not isinstance(obj, Mapping):
        return [("(object)", "must be a mapping")]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return [("apiVersion" if not isinstance(api_version, str) else "kind", "required")]
    problems: list[Problem] = []
    validator = schemas.validator(api_version, kind)
    custom = _CUSTOM_CHECKS.get((api_version, kind))
    if validator is not None:
        problems.extend(_schema_problems(validator, obj))
    elif custom is not None:
        problems.extend(_schema_problems(schemas.object_meta, obj.get("metadata"), "metadata"))
        problems.extend(custom(obj))
    else:
        problems.append(("apiVersion", f"no schema for {api_version} {kind} in Kubernetes {schemas.version}"))
    problems.extend(_pod_problems(obj, image_re))
    problems.extend(_policy_problems(obj))
    problems.extend(_ownership_problems(obj))
    return problems


def _addon_scope_problems(obj: Mapping[str, Any], name: str, spec: AddonSpec) -> list[Problem]:
    metadata = _m(obj.get("metadata"))
    kind = str(obj.get("kind"))
    problems: list[Problem] = []
    if kind not in ADDON_KINDS:
        problems.append(("kind", f"{kind} is not a kind an add-on may install ({', '.join(sorted(ADDON_KINDS))})"))
    if kind == "Namespace" and metadata.get("name") != spec.namespace:
        problems.append(("metadata.name", f"add-on {name} may create only its namespace {spec.namespace!r}"))
    if kind == "CustomResourceDefinition" and metadata.get("name") not in spec.provides:
        problems.append(("metadata.name", f"add-on {name} provides only the CRDs {sorted(spec.provides)}"))
    if kind in platform.CLUSTER_SCOPED_KINDS:
        if metadata.get("namespace"):
            problems.append(("metadata.namespace", f"{kind} is cluster-scoped: no namespace"))
    elif metadata.get("namespace") != spec.namespace:
        problems.append(("metadata.namespace", f"must be add-on {name}'s namespace {spec.namespace!r}"))
    if kind in {"RoleBinding", "ClusterRoleBinding"} and _is_builtin_role(_m(obj.get("roleRef")).get("name")):
        problems.append(("roleRef.name", "an add-on may not bind a built-in role"))
    for _, path, container in _containers_of(obj):
        if container.get("image") not in spec.images:
            problems.append((f"{path}.image", f"add-on {name} runs only {spec.images}"))
    return problems


def _containers_of(obj: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    found = _pod_spec(obj)
    if found is not None:
        yield from _containers(found[1], found[0])


@functools.lru_cache(maxsize=256)
def _addon_problems_cached(text: str, name: str, spec_json: str, kubernetes_version: str) -> tuple[Problem, ...]:
    obj = json.loads(text)
    spec = AddonSpec.model_validate_json(spec_json)
    schemas = _schemas(kubernetes_version)
    validator = schemas.validator(str(obj.get("apiVersion")), str(obj.get("kind")))
    problems: list[Problem] = []
    if validator is None:
        problems.append(("apiVersion", f"no schema for {obj.get('apiVersion')} {obj.get('kind')}"))
    else:
        problems.extend(_schema_problems(validator, obj))
    problems.extend(_addon_scope_problems(obj, name, spec))
    problems.extend(p for p in _ownership_problems(obj) if p[0] != "metadata.namespace")
    return tuple(problems)


def addon_problems(
    obj: Mapping[str, Any], addons: Mapping[str, AddonSpec] | None, *, kubernetes_version: str = "1.32"
) -> list[Problem]:
    """Every problem of one add-on object (see the module docstring), against ``addons[<its add-on>]``, or, for a
    release replayed from the ledger (``addons`` None; its objects were verified by digest), against the catalog entry
    stamped on it when it was rendered. Cached per object content (vendored objects, the CRDs above all, are large
    and the same on every deploy)."""
    metadata = _m(obj.get("metadata"))
    name = str(_m(metadata.get("labels")).get(ADDON_LABEL))
    stamped = _m(metadata.get("annotations")).get(ADDON_SPEC_ANNOTATION)
    where = f"metadata.annotations.{ADDON_SPEC_ANNOTATION}"
    if addons is not None:
        spec = addons.get(name)
        if spec is None:
            return [(f"metadata.labels.{ADDON_LABEL}", f"{name!r} is not an add-on of the catalog ({sorted(addons)})")]
        if stamped != spec.model_dump_json():
            return [(where, f"must be add-on {name}'s catalog entry")]
    elif not isinstance(stamped, str):
        return [(where, "required on an add-on object")]
    text = json.dumps(obj, sort_keys=True)
    try:
        return list(_addon_problems_cached(text, name, stamped, kubernetes_version))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return [(where, f"not a catalog entry: {str(exc).splitlines()[0]}")]


@functools.cache
def _image_pattern(account_id: str, region: str) -> re.Pattern[str]:
    registry = re.escape(platform.ecr_registry(account_id, region))
    return re.compile(
        rf"^{registry}/{re.escape(platform.REPOSITORY_PREFIX)}(?P<service>[a-z0-9-]+)@sha256:[0-9a-f]{{64}}$"
    )


def validate_objects(
    objects: Iterable[Mapping[str, Any]],
    *,
    kubernetes_version: str = "1.32",
    account_id: str,
    region: str,
    addons: Mapping[str, AddonSpec] | None = None,
) -> None:
    """Raise ``ManifestValidationError`` listing every problem of every object, one ``<kind>/<name>: <path>: <msg>``
    per line; return ``None`` when all objects pass. ``addons`` is the add-on catalog the add-on objects are checked
    against; ``None`` for objects replayed from the ledger (see :func:`addon_problems`)."""
    lines: list[str] = []
    count = 0
    for obj in objects:
        count += 1
        identity = _identity(obj)
        labels = _m(_m(obj.get("metadata")).get("labels")) if isinstance(obj, Mapping) else {}
        problems = (
            addon_problems(obj, addons, kubernetes_version=kubernetes_version)
            if ADDON_LABEL in labels
            else object_problems(obj, kubernetes_version=kubernetes_version, account_id=account_id, region=region)
        )
        lines.extend(f"{identity}: {path}: {message}" for path, message in problems)
    if lines:
        raise ManifestValidationError(
            f"{len(lines)} problem(s) in {count} object(s) for Kubernetes {kubernetes_version}:\n  "
            + "\n  ".join(lines)
        )
