"""Validate rendered objects before anything is written to a cluster.

Checks, all of them on every object, every problem reported as ``<kind>/<name>: <field path>: <message>``:

- the Kubernetes JSON schema of the target version (strict: unknown fields are errors), from the
  ``kubernetes-validate`` package; the External Secrets Operator kinds, whose schema it does not ship, get a
  minimal structural check of our own (and their metadata the real ``ObjectMeta`` schema);
- the Pod Security Standard "restricted" plus our policy (read-only root filesystem, requests and limits, readiness
  and liveness probes) on every pod template;
- every image pinned by digest to the platform's ECR repository of its service in this account and region;
- the ownership labels, and namespaced objects in the platform's namespace.

Schemas are loaded once per process and version (warm Lambda invocations reuse them).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

import jsonschema
import referencing
import referencing.jsonschema
from kubernetes_validate import utils as kv

from controlplane import platform
from controlplane.errors import ManifestValidationError

_DEFINITIONS_ID: Final = "https://kubernetes.io/api/_definitions.json"
_OBJECT_META: Final = {"$ref": f"{_DEFINITIONS_ID}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}

# Pod Security Standards, restricted profile (https://kubernetes.io/docs/concepts/security/pod-security-standards/).
_RESTRICTED_VOLUME_TYPES: Final = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
_ALLOWED_SECCOMP: Final = frozenset({"RuntimeDefault", "Localhost"})
_ALLOWED_ADDED_CAPABILITIES: Final = frozenset({"NET_BIND_SERVICE"})

Problem = tuple[str, str]  # (field path, message)


# --- JSON schemas --------------------------------------------------------------------------------------------------


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


class _Schemas:
    """The strict schemas of one Kubernetes version, with one compiled validator per (apiVersion, kind)."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.directory = f"kubernetes-json-schema/v{version}-local-strict"
        definitions = kv.schema_contents(f"{self.directory}/_definitions.json", version)
        self.registry: referencing.Registry[Any] = (
            referencing.jsonschema.DRAFT202012.create_resource(definitions) @ referencing.Registry()
        )
        self._validators: dict[tuple[str, str], jsonschema.Draft202012Validator | None] = {}
        self.object_meta = jsonschema.Draft202012Validator(_OBJECT_META, registry=self.registry)

    def validator(self, api_version: str, kind: str) -> jsonschema.Draft202012Validator | None:
        key = (api_version, kind)
        if key not in self._validators:
            # kubernetes-validate's file naming: rbac.authorization.k8s.io/v1 -> rbac-v1; v1 -> v1.
            group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            try:
                schema = kv.schema_contents(f"{self.directory}/{kind.lower()}-{group_version}.json", self.version)
            except FileNotFoundError:
                self._validators[key] = None
            else:
                self._validators[key] = jsonschema.Draft202012Validator(schema, registry=self.registry)
        return self._validators[key]


@functools.cache
def _schemas(kubernetes_version: str) -> _Schemas:
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


def _schema_problems(validator: jsonschema.Draft202012Validator, instance: Any, prefix: str = "") -> list[Problem]:
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


def _pod_spec(obj: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    path = platform.POD_SPEC_PATHS.get(str(obj.get("kind")))
    if path is None:
        return None
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
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
    if pod_sc.get("runAsUser") == 0:
        problems.append((f"{prefix}.securityContext.runAsUser", "must not be 0 (restricted)"))
    pod_seccomp = _m(pod_sc.get("seccompProfile")).get("type")
    if pod_seccomp is not None and pod_seccomp not in _ALLOWED_SECCOMP:
        problems.append((f"{prefix}.securityContext.seccompProfile.type", "must be RuntimeDefault or Localhost"))
    for list_name, path, container in _containers(spec, prefix):
        problems.extend(_container_problems(list_name, path, container, pod_sc, image_re))
    return problems


def _container_problems(
    list_name: str, path: str, container: Mapping[str, Any], pod_sc: Mapping[str, Any], image_re: re.Pattern[str]
) -> list[Problem]:
    problems: list[Problem] = []
    sc = _m(container.get("securityContext"))
    scp = f"{path}.securityContext"
    if sc.get("privileged"):
        problems.append((f"{scp}.privileged", "must not be true (restricted)"))
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append((f"{scp}.allowPrivilegeEscalation", "must be false (restricted)"))
    capabilities = _m(sc.get("capabilities"))
    if "ALL" not in _seq(capabilities.get("drop")):
        problems.append((f"{scp}.capabilities.drop", "must include ALL (restricted)"))
    added = {str(c) for c in _seq(capabilities.get("add"))} - _ALLOWED_ADDED_CAPABILITIES
    if added:
        problems.append((f"{scp}.capabilities.add", f"may add only NET_BIND_SERVICE, not {sorted(added)} (restricted)"))
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    if non_root is not True:
        problems.append((f"{scp}.runAsNonRoot", "must be true here or in the pod securityContext (restricted)"))
    if sc.get("runAsUser") == 0:
        problems.append((f"{scp}.runAsUser", "must not be 0 (restricted)"))
    seccomp = _m(sc.get("seccompProfile")).get("type", _m(pod_sc.get("seccompProfile")).get("type"))
    if seccomp not in _ALLOWED_SECCOMP:
        problems.append(
            (f"{scp}.seccompProfile.type", "must be RuntimeDefault or Localhost, here or in the pod (restricted)")
        )
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append((f"{scp}.readOnlyRootFilesystem", "must be true (platform policy)"))
    for i, port in enumerate(_seq(container.get("ports"))):
        if isinstance(port, Mapping) and port.get("hostPort"):
            problems.append((f"{path}.ports[{i}].hostPort", "host ports are not allowed"))
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
    problems.extend(_ownership_problems(obj))
    return problems


@functools.cache
def _image_pattern(account_id: str, region: str) -> re.Pattern[str]:
    registry = re.escape(platform.ecr_registry(account_id, region))
    return re.compile(
        rf"^{registry}/{re.escape(platform.REPOSITORY_PREFIX)}(?P<service>[a-z0-9-]+)@sha256:[0-9a-f]{{64}}$"
    )


def validate_objects(
    objects: Iterable[Mapping[str, Any]], *, kubernetes_version: str = "1.32", account_id: str, region: str
) -> None:
    """Raise ``ManifestValidationError`` listing every problem of every object, one ``<kind>/<name>: <path>: <msg>``
    per line; return ``None`` when all objects pass."""
    lines: list[str] = []
    count = 0
    for obj in objects:
        count += 1
        identity = _identity(obj)
        lines.extend(
            f"{identity}: {path}: {message}"
            for path, message in object_problems(
                obj, kubernetes_version=kubernetes_version, account_id=account_id, region=region
            )
        )
    if lines:
        raise ManifestValidationError(
            f"{len(lines)} problem(s) in {count} object(s) for Kubernetes {kubernetes_version}:\n  "
            + "\n  ".join(lines)
        )
