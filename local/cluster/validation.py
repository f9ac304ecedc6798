"""Object validation (422 Invalid) and defaulting, with the real server's field paths and messages.

Validation covers metadata (name required, DNS-1123 subdomain names, DNS-1123 labels for namespaces and DNS-1035
labels for services, label keys and values), workloads (selector required and matching the template labels,
containers with name and image, replicas >= 0, immutable selectors), pods, jobs' restart policy, services (ports,
port ranges, types), ConfigMap/Secret keys. Defaulting fills what the client-visible behaviour depends on
(Deployment strategy/replicas/revisionHistoryLimit/progressDeadlineSeconds, container imagePullPolicy and
termination message settings, pod restart/DNS policy, service type/ports/clusterIP, namespace phase, ...).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from local.cluster.selectors import selector_matches

Obj = dict[str, Any]
Err = tuple[str, str, str]  # (field, cause reason, error body)

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

MSG_SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
MSG_LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
MSG_1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
MSG_LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
MSG_QUALIFIED = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
MSG_CONFIG_KEY = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)

# Kinds whose names are DNS-1123 labels / DNS-1035 labels rather than subdomains.
LABEL_NAMED = frozenset({"Namespace"})
DNS1035_NAMED = frozenset({"Service"})
# Names that must only be valid path segments (RBAC objects may contain ':').
PATH_SEGMENT_NAMED = frozenset({"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"})
WORKLOADS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"})


def go_value(value: Any) -> str:
    """How ``field.Invalid`` prints a value: strings quoted, maps like Go's ``%#v``-ish."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        inner = ", ".join(f'"{k}":{go_value(v)}' for k, v in sorted(value.items()))
        return f"map[string]string{{{inner}}}"
    if value is None:
        return "null"
    return str(value)


def required(path: str, detail: str = "") -> Err:
    return (path, "FieldValueRequired", f"Required value: {detail}" if detail else "Required value")


def invalid(path: str, value: Any, detail: str) -> Err:
    return (path, "FieldValueInvalid", f"Invalid value: {go_value(value)}: {detail}")


def unsupported(path: str, value: Any, supported: list[str]) -> Err:
    values = ", ".join(f'"{s}"' for s in supported)
    return (path, "FieldValueNotSupported", f"Unsupported value: {go_value(value)}: supported values: {values}")


def duplicate(path: str, value: Any) -> Err:
    return (path, "FieldValueDuplicate", f"Duplicate value: {go_value(value)}")


def forbidden(path: str, detail: str) -> Err:
    return (path, "FieldValueForbidden", f"Forbidden: {detail}")


def too_long(path: str, value: Any, limit: int) -> Err:
    del value
    return (path, "FieldValueTooLong", f"Too long: may not be more than {limit} bytes")


# ------------------------------------------------------------------------------------------------- metadata


def validate_name(kind: str, name: str, path: str = "metadata.name") -> list[Err]:
    if kind in PATH_SEGMENT_NAMED:
        if name in (".", "..") or "/" in name or "%" in name:
            return [invalid(path, name, 'may not contain "/" or "%" or be "." or ".."')]
        return []
    if kind in LABEL_NAMED:
        if len(name) > 63:
            return [too_long(path, name, 63)]
        return [] if DNS1123_LABEL.match(name) else [invalid(path, name, MSG_LABEL)]
    if kind in DNS1035_NAMED:
        if len(name) > 63:
            return [too_long(path, name, 63)]
        return [] if DNS1035_LABEL.match(name) else [invalid(path, name, MSG_1035)]
    if len(name) > 253:
        return [too_long(path, name, 253)]
    return [] if DNS1123_SUBDOMAIN.match(name) else [invalid(path, name, MSG_SUBDOMAIN)]


def validate_qualified_key(key: str, path: str) -> list[Err]:
    prefix, _, name = key.rpartition("/")
    errs: list[Err] = []
    if "/" in key and not prefix:
        errs.append(invalid(path, key, "prefix part must be non-empty"))
    elif prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        errs.append(invalid(path, key, "prefix part " + MSG_SUBDOMAIN))
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        errs.append(invalid(path, key, MSG_QUALIFIED))
    return errs


def validate_labels(labels: Any, path: str) -> list[Err]:
    if labels is None:
        return []
    if not isinstance(labels, Mapping):
        return [invalid(path, labels, "must be a map of strings")]
    errs: list[Err] = []
    for k, v in labels.items():
        errs.extend(validate_qualified_key(str(k), path))
        if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
            errs.append(invalid(path, v, MSG_LABEL_VALUE))
    return errs


def validate_metadata(kind: str, obj: Mapping[str, Any]) -> list[Err]:
    meta = obj.get("metadata") or {}
    errs: list[Err] = []
    name = meta.get("name")
    if not name:
        errs.append(required("metadata.name", "name or generateName is required"))
    else:
        errs.extend(validate_name(kind, str(name)))
    errs.extend(validate_labels(meta.get("labels"), "metadata.labels"))
    annotations = meta.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, Mapping):
            errs.append(invalid("metadata.annotations", annotations, "must be a map of strings"))
        else:
            for k in annotations:
                errs.extend(validate_qualified_key(str(k), "metadata.annotations"))
    return errs


# ----------------------------------------------------------------------------------------------- pod specs


def _validate_container(c: Any, cpath: str, names: set[str]) -> list[Err]:
    if not isinstance(c, Mapping):
        return [invalid(cpath, c, "must be an object")]
    errs: list[Err] = []
    cname = c.get("name")
    if not cname:
        errs.append(required(f"{cpath}.name"))
    elif not DNS1123_LABEL.match(str(cname)) or len(str(cname)) > 63:
        errs.append(invalid(f"{cpath}.name", cname, MSG_LABEL))
    elif cname in names:
        errs.append(duplicate(f"{cpath}.name", cname))
    else:
        names.add(str(cname))
    if not c.get("image"):
        errs.append(required(f"{cpath}.image"))
    for j, p in enumerate(c.get("ports") or []):
        port = p.get("containerPort") if isinstance(p, Mapping) else None
        if port is None:
            errs.append(required(f"{cpath}.ports[{j}].containerPort"))
        elif not isinstance(port, int) or not 1 <= port <= 65535:
            errs.append(invalid(f"{cpath}.ports[{j}].containerPort", port, "must be between 1 and 65535, inclusive"))
    for j, e in enumerate(c.get("env") or []):
        ename = e.get("name") if isinstance(e, Mapping) else None
        if not ename:
            errs.append(required(f"{cpath}.env[{j}].name"))
        elif not ENV_NAME.match(str(ename)):
            errs.append(
                invalid(
                    f"{cpath}.env[{j}].name",
                    ename,
                    "a valid environment variable name must consist of alphabetic characters, "
                    "digits, '_', '-', or '.', and must not start with a digit",
                )
            )
    return errs


TAINT_EFFECTS = ["NoExecute", "NoSchedule", "PreferNoSchedule"]
NODE_SELECTOR_OPERATORS = ["DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn"]


def _validate_toleration(t: Any, path: str) -> list[Err]:
    """validation.validateTolerations for one toleration."""
    if not isinstance(t, Mapping):
        return [invalid(path, t, "must be an object")]
    errs: list[Err] = []
    key, operator, value = t.get("key") or "", t.get("operator") or "", t.get("value") or ""
    effect = t.get("effect") or ""
    if not key and operator != "Exists":
        detail = 'operator must be Exists when `key` is empty, which means "match all values and all keys"'
        errs.append(invalid(f"{path}.operator", operator, detail))
    if operator == "Exists" and value:
        errs.append(invalid(f"{path}.operator", t.get("value"), "value must be empty when `operator` is 'Exists'"))
    elif operator not in ("", "Equal", "Exists"):
        errs.append(unsupported(f"{path}.operator", operator, ["Equal", "Exists"]))
    if t.get("tolerationSeconds") is not None and effect != "NoExecute":
        detail = "effect must be 'NoExecute' when `tolerationSeconds` is set"
        errs.append(invalid(f"{path}.effect", effect, detail))
    if effect and effect not in TAINT_EFFECTS:
        errs.append(unsupported(f"{path}.effect", effect, TAINT_EFFECTS))
    return errs


def validate_tolerations(tolerations: Any, path: str) -> list[Err]:
    errs: list[Err] = []
    for i, t in enumerate(tolerations or []):
        errs.extend(_validate_toleration(t, f"{path}[{i}]"))
    return errs


def _validate_node_requirement(expr: Any, path: str) -> list[Err]:
    """validation.ValidateNodeSelectorRequirement."""
    if not isinstance(expr, Mapping):
        return [invalid(path, expr, "must be an object")]
    operator, values = expr.get("operator"), list(expr.get("values") or [])
    if operator in ("In", "NotIn") and not values:
        return [required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'")]
    if operator in ("Exists", "DoesNotExist") and values:
        return [forbidden(f"{path}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")]
    if operator in ("Gt", "Lt") and (len(values) != 1 or not str(values[0]).lstrip("-").isdigit()):
        return [required(f"{path}.values", "must be specified single value when `operator` is 'Lt' or 'Gt'")]
    if operator not in NODE_SELECTOR_OPERATORS:
        return [unsupported(f"{path}.operator", operator, NODE_SELECTOR_OPERATORS)]
    return []


def _validate_node_term(term: Any, path: str) -> list[Err]:
    if not isinstance(term, Mapping):
        return [invalid(path, term, "must be an object")]
    errs: list[Err] = []
    for i, expr in enumerate(term.get("matchExpressions") or []):
        errs.extend(_validate_node_requirement(expr, f"{path}.matchExpressions[{i}]"))
    for i, expr in enumerate(term.get("matchFields") or []):
        if isinstance(expr, Mapping) and expr.get("key") != "metadata.name":
            errs.append(invalid(f"{path}.matchFields[{i}].key", expr.get("key"), "not a valid field selector key"))
        else:
            errs.extend(_validate_node_requirement(expr, f"{path}.matchFields[{i}]"))
    return errs


def validate_node_affinity(affinity: Any, path: str) -> list[Err]:
    """Required terms (at least one) and preferred terms (weight 1 to 100) of ``affinity.nodeAffinity``."""
    node_affinity = (affinity or {}).get("nodeAffinity") if isinstance(affinity, Mapping) else None
    if not isinstance(node_affinity, Mapping):
        return []
    errs: list[Err] = []
    required_selector = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if isinstance(required_selector, Mapping):
        rpath = f"{path}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
        terms = required_selector.get("nodeSelectorTerms") or []
        if not terms:
            errs.append(required(rpath, "must have at least one node selector term"))
        for i, term in enumerate(terms):
            errs.extend(_validate_node_term(term, f"{rpath}[{i}]"))
    ppath = f"{path}.preferredDuringSchedulingIgnoredDuringExecution"
    for i, pref in enumerate(node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []):
        weight = pref.get("weight") if isinstance(pref, Mapping) else None
        if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 100:
            errs.append(invalid(f"{ppath}[{i}].weight", weight, "must be in the range 1-100"))
        preference = pref.get("preference") if isinstance(pref, Mapping) else None
        errs.extend(_validate_node_term(preference or {}, f"{ppath}[{i}].preference"))
    return errs


def validate_pod_spec(spec: Any, path: str, *, restart_policies: tuple[str, ...] | None = None) -> list[Err]:
    if not isinstance(spec, Mapping):
        return [required(f"{path}.containers")]
    errs: list[Err] = []
    containers = spec.get("containers")
    if not containers:
        errs.append(required(f"{path}.containers"))
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            errs.extend(_validate_container(c, f"{path}.{group}[{i}]", names))
    errs.extend(validate_tolerations(spec.get("tolerations"), f"{path}.tolerations"))
    errs.extend(validate_node_affinity(spec.get("affinity"), f"{path}.affinity.nodeAffinity"))
    policy = spec.get("restartPolicy")
    allowed = restart_policies or ("Always", "OnFailure", "Never")
    if policy is not None and policy not in allowed:
        errs.append(unsupported(f"{path}.restartPolicy", policy, list(allowed)))
    return errs


def _validate_selector(selector: Any, labels: Mapping[str, Any]) -> list[Err]:
    if not selector:
        return [required("spec.selector")]
    if not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return [invalid("spec.selector", selector, "empty selector is invalid for deployment")]
    if not selector_matches(selector, labels):
        return [invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")]
    return []


def validate_workload(kind: str, obj: Mapping[str, Any]) -> list[Err]:
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return [required("spec.selector"), required("spec.template.spec.containers")]
    errs: list[Err] = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if kind != "Job" or selector is not None:
        errs.extend(_validate_selector(selector, labels))
    errs.extend(validate_labels(labels, "spec.template.metadata.labels"))
    if kind == "Job":
        errs.extend(
            validate_pod_spec(template.get("spec"), "spec.template.spec", restart_policies=("OnFailure", "Never"))
        )
        policy = (template.get("spec") or {}).get("restartPolicy")
        if policy is None:
            errs.append(required("spec.template.spec.restartPolicy", 'valid values: "OnFailure", "Never"'))
    elif kind in WORKLOADS:
        errs.extend(validate_pod_spec(template.get("spec"), "spec.template.spec", restart_policies=("Always",)))
    for fld in ("replicas", "revisionHistoryLimit", "minReadySeconds", "parallelism", "completions", "backoffLimit"):
        value = spec.get(fld)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            errs.append(invalid(f"spec.{fld}", value, "must be greater than or equal to 0"))
    if kind == "Deployment":
        strategy = (spec.get("strategy") or {}).get("type")
        if strategy is not None and strategy not in ("Recreate", "RollingUpdate"):
            errs.append(unsupported("spec.strategy.type", strategy, ["Recreate", "RollingUpdate"]))
    if kind == "StatefulSet" and not spec.get("serviceName") and spec.get("serviceName") is not None:
        errs.append(required("spec.serviceName"))
    return errs


def validate_service(obj: Mapping[str, Any]) -> list[Err]:
    spec = obj.get("spec") or {}
    errs: list[Err] = []
    stype = spec.get("type", "ClusterIP")
    types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
    if stype not in types:
        errs.append(unsupported("spec.type", stype, types))
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    if not ports and stype != "ExternalName" and not headless:
        errs.append(required("spec.ports"))
    if stype == "ExternalName" and not spec.get("externalName"):
        errs.append(required("spec.externalName"))
    seen: set[tuple[Any, Any]] = set()
    names: set[str] = set()
    for i, p in enumerate(ports):
        errs.extend(_validate_service_port(p, f"spec.ports[{i}]", named=len(ports) > 1, seen=seen, names=names))
    return errs


def _validate_service_port(p: Any, path: str, *, named: bool, seen: set[tuple[Any, Any]], names: set[str]) -> list[Err]:
    if not isinstance(p, Mapping):
        return [invalid(path, p, "must be an object")]
    errs: list[Err] = []
    port = p.get("port")
    if port is None:
        errs.append(required(f"{path}.port"))
    elif not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        errs.append(invalid(f"{path}.port", port, "must be between 1 and 65535, inclusive"))
    target = p.get("targetPort")
    if isinstance(target, int) and not 1 <= target <= 65535:
        errs.append(invalid(f"{path}.targetPort", target, "must be between 1 and 65535, inclusive"))
    node_port = p.get("nodePort")
    if isinstance(node_port, int) and not 0 <= node_port <= 65535:
        errs.append(invalid(f"{path}.nodePort", node_port, "must be between 1 and 65535, inclusive"))
    protocol = p.get("protocol", "TCP")
    if protocol not in ("TCP", "UDP", "SCTP"):
        errs.append(unsupported(f"{path}.protocol", protocol, ["SCTP", "TCP", "UDP"]))
    name = p.get("name")
    if named and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        if not DNS1123_LABEL.match(str(name)):
            errs.append(invalid(f"{path}.name", name, MSG_LABEL))
        elif name in names:
            errs.append(duplicate(f"{path}.name", name))
        names.add(str(name))
    if (port, protocol) in seen:
        errs.append(duplicate(path, {"port": port, "protocol": protocol}))
    seen.add((port, protocol))
    return errs


def validate_data_keys(obj: Mapping[str, Any]) -> list[Err]:
    errs: list[Err] = []
    for fld in ("data", "binaryData", "stringData"):
        data = obj.get(fld)
        if data is None:
            continue
        if not isinstance(data, Mapping):
            errs.append(invalid(fld, data, "must be a map"))
            continue
        errs.extend(
            invalid(f"{fld}[{k}]", k, MSG_CONFIG_KEY) for k in data if not CONFIG_KEY.match(str(k)) or len(str(k)) > 253
        )
    return errs


def validate(kind: str, obj: Mapping[str, Any], *, builtin: bool = True) -> list[Err]:
    """Every validation error of ``obj`` (a ``kind`` object) as ``(field, reason, body)``."""
    errs = validate_metadata(kind, obj)
    if not builtin:
        return errs
    if kind in WORKLOADS or kind == "Job":
        errs.extend(validate_workload(kind, obj))
    elif kind == "Pod":
        errs.extend(validate_pod_spec(obj.get("spec"), "spec"))
    elif kind == "Service":
        errs.extend(validate_service(obj))
    elif kind in ("ConfigMap", "Secret"):
        errs.extend(validate_data_keys(obj))
    elif kind == "CustomResourceDefinition":
        errs.extend(validate_crd(obj))
    return errs


def validate_crd(obj: Mapping[str, Any]) -> list[Err]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    errs: list[Err] = []
    group = spec.get("group")
    if not group:
        errs.append(required("spec.group"))
    if not names.get("plural"):
        errs.append(required("spec.names.plural"))
    if not names.get("kind"):
        errs.append(required("spec.names.kind"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errs.append(unsupported("spec.scope", spec.get("scope"), ["Cluster", "Namespaced"]))
    versions = spec.get("versions") or []
    if not versions:
        errs.append(required("spec.versions", "must have exactly one version marked as storage version"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        errs.append(
            invalid(
                "spec.versions",
                [v.get("name") for v in versions],
                "must have exactly one version marked as storage version",
            )
        )
    name = (obj.get("metadata") or {}).get("name")
    if group and names.get("plural") and name != f"{names['plural']}.{group}":
        errs.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    return errs


def validate_update(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Err]:
    """Immutable fields: workload selectors, a Service's clusterIP, a CRD's group and scope."""
    errs: list[Err] = []
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    if kind in WORKLOADS or kind == "Job":
        if old_spec.get("selector") != new_spec.get("selector"):
            errs.append(invalid("spec.selector", new_spec.get("selector"), "field is immutable"))
    elif kind == "Service":
        if old_spec.get("clusterIP") not in (None, "") and new_spec.get("clusterIP") != old_spec.get("clusterIP"):
            errs.append(invalid("spec.clusterIPs[0]", new_spec.get("clusterIP"), "may not change once set"))
    elif kind == "CustomResourceDefinition":
        if old_spec.get("group") != new_spec.get("group"):
            errs.append(invalid("spec.group", new_spec.get("group"), "field is immutable"))
        if old_spec.get("scope") != new_spec.get("scope"):
            errs.append(invalid("spec.scope", new_spec.get("scope"), "field is immutable"))
    return errs


def validate_secret_data(obj: Mapping[str, Any]) -> str | None:
    """A decoding error for ``data`` values that are not base64 (the real decoder answers 400)."""
    for key, value in (obj.get("data") or {}).items():
        if not isinstance(value, str):
            return f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at key {key}'
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 0'
    return None


# ---------------------------------------------------------------------------------------------- defaulting


def _default_container(c: Obj) -> None:
    image = str(c.get("image", ""))
    if "imagePullPolicy" not in c and image:
        tail = image.rsplit("/", 1)[-1]
        tag = tail.split(":", 1)[1] if ":" in tail and "@" not in tail else ""
        c["imagePullPolicy"] = "Always" if (tag in ("", "latest") and "@" not in image) else "IfNotPresent"
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        pr = c.get(probe)
        if isinstance(pr, dict):
            pr.setdefault("timeoutSeconds", 1)
            pr.setdefault("periodSeconds", 10)
            pr.setdefault("successThreshold", 1)
            pr.setdefault("failureThreshold", 3)
            http = pr.get("httpGet")
            if isinstance(http, dict):
                http.setdefault("scheme", "HTTP")
                http.setdefault("path", "/")


def default_pod_spec(spec: Obj, *, restart_policy: str | None = "Always") -> None:
    for group in ("initContainers", "containers"):
        for c in spec.get(group) or []:
            if isinstance(c, dict):
                _default_container(c)
    if restart_policy is not None:
        spec.setdefault("restartPolicy", restart_policy)
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    if "serviceAccountName" in spec and "serviceAccount" not in spec:
        spec["serviceAccount"] = spec["serviceAccountName"]
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        for src in ("configMap", "secret"):
            if isinstance(v.get(src), dict):
                v[src].setdefault("defaultMode", 420)


def _template_spec(obj: Obj) -> Obj | None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return None
    template = spec.get("template")
    if not isinstance(template, dict):
        return None
    tspec = template.get("spec")
    return tspec if isinstance(tspec, dict) else None


def _default_deployment(spec: Obj) -> None:
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            if isinstance(ru, dict):
                ru.setdefault("maxUnavailable", "25%")
                ru.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)


def _default_replicaset(spec: Obj) -> None:
    spec.setdefault("replicas", 1)


def _default_statefulset(spec: Obj) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
    if isinstance(us, dict) and us.get("type", "RollingUpdate") == "RollingUpdate":
        us.setdefault("type", "RollingUpdate")
        us.setdefault("rollingUpdate", {"partition": 0})
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})


def _default_daemonset(spec: Obj) -> None:
    us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
    if isinstance(us, dict) and us.get("type") == "RollingUpdate":
        us.setdefault("rollingUpdate", {"maxUnavailable": 1, "maxSurge": 0})
    spec.setdefault("revisionHistoryLimit", 10)


def _default_job(spec: Obj) -> None:
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)


def _default_service(spec: Obj) -> None:
    spec.setdefault("type", "ClusterIP")
    if spec["type"] != "ExternalName":
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    for p in spec.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
            if "targetPort" not in p and "port" in p:
                p["targetPort"] = p["port"]


def _default_pvc(spec: Obj) -> None:
    spec.setdefault("volumeMode", "Filesystem")


def _default_pod(spec: Obj) -> None:
    default_pod_spec(spec)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    if "serviceAccountName" not in spec:
        spec["serviceAccountName"] = "default"
        spec["serviceAccount"] = "default"


_SPEC_DEFAULTS = {
    "Deployment": _default_deployment,
    "ReplicaSet": _default_replicaset,
    "StatefulSet": _default_statefulset,
    "DaemonSet": _default_daemonset,
    "Job": _default_job,
    "Service": _default_service,
    "PersistentVolumeClaim": _default_pvc,
}


# Status fields without ``omitempty`` in the Go types: the API server's JSON always carries them (0 when unset).
REQUIRED_STATUS_INTS: dict[str, tuple[str, ...]] = {
    "ReplicaSet": ("replicas",),
    "StatefulSet": ("replicas", "availableReplicas"),
    "DaemonSet": ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"),
    "HorizontalPodAutoscaler": ("desiredReplicas",),
    "PodDisruptionBudget": ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"),
}


def apply_defaults(kind: str, obj: Obj) -> None:
    """Default ``obj`` in place (a subset of the real ``SetDefaults_*`` functions) and give its status the fields
    the Go types always serialise."""
    spec = obj.get("spec")
    required_status = REQUIRED_STATUS_INTS.get(kind)
    if required_status is not None and isinstance(obj.setdefault("status", {}), dict):
        for name in required_status:
            obj["status"].setdefault(name, 0)
    defaults = _SPEC_DEFAULTS.get(kind)
    if defaults is not None and isinstance(spec, dict):
        defaults(spec)
    elif kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        status = obj.setdefault("status", {})
        if isinstance(status, dict):
            status.setdefault("phase", "Active")
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
    tspec = _template_spec(obj) if kind in WORKLOADS or kind == "Job" else None
    if tspec is not None:
        default_pod_spec(tspec, restart_policy=None if kind == "Job" else "Always")
    if kind == "Pod" and isinstance(spec, dict):
        _default_pod(spec)
