"""Small helpers over JSON-shaped Kubernetes objects, shared by the emulator's controllers, kubelet and proxy.

Nothing here touches the store: these are pure functions over dicts (metadata, owner references,
quantities, int-or-percent values, timestamps and the pod-template hash the deployment controller names ReplicaSets
with).
"""

from __future__ import annotations

import json
import math
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from local.cluster.store import GroupResource, Obj

PODS = GroupResource("", "pods")
NODES = GroupResource("", "nodes")
SERVICES = GroupResource("", "services")
EVENTS = GroupResource("", "events")
DEPLOYMENTS = GroupResource("apps", "deployments")
REPLICASETS = GroupResource("apps", "replicasets")
STATEFULSETS = GroupResource("apps", "statefulsets")
DAEMONSETS = GroupResource("apps", "daemonsets")
CONTROLLERREVISIONS = GroupResource("apps", "controllerrevisions")
JOBS = GroupResource("batch", "jobs")
HORIZONTALPODAUTOSCALERS = GroupResource("autoscaling", "horizontalpodautoscalers")
PODDISRUPTIONBUDGETS = GroupResource("policy", "poddisruptionbudgets")
NAMESPACES = GroupResource("", "namespaces")
CONFIGMAPS = GroupResource("", "configmaps")

# The alphabet Kubernetes uses for generated name suffixes and hashes (k8s.io/apimachinery/pkg/util/rand): no
# vowels, no look-alikes, so generated names never spell words.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
CONTROLLER_REVISION_HASH = "controller-revision-hash"


# --- time ---------------------------------------------------------------------------------------------------------


def fmt_time(ts: float) -> str:
    """RFC 3339 with second precision, as metav1.Time serialises."""
    return datetime.fromtimestamp(math.floor(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


# --- names and identity -----------------------------------------------------------------------------------------


def new_uid() -> str:
    return str(uuid.uuid4())


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(SAFE_ALPHABET) for _ in range(length))


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: map each byte onto the safe alphabet."""
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in text)


def _fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def compute_hash(template: Obj, collision_count: int = 0) -> str:
    """controller.ComputeHash: fnv32a over the template (canonical JSON here), plus the collision count."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        canonical += str(collision_count).encode()
    return safe_encode(str(_fnv32a(canonical)))


def template_without_hash(template: Obj) -> Obj:
    """A pod template with the ``pod-template-hash`` label removed (EqualIgnoreHash compares these)."""
    meta = dict(template.get("metadata") or {})
    labels = dict(meta.get("labels") or {})
    labels.pop(POD_TEMPLATE_HASH, None)
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    out = dict(template)
    out["metadata"] = meta
    return out


def meta(obj: Obj) -> dict[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def name_of(obj: Obj) -> str:
    return str(meta(obj).get("name", ""))


def namespace_of(obj: Obj) -> str:
    return str(meta(obj).get("namespace", "") or "")


def uid_of(obj: Obj) -> str:
    return str(meta(obj).get("uid", "") or "")


def labels_of(obj: Obj) -> dict[str, str]:
    labels = meta(obj).get("labels")
    return labels if isinstance(labels, dict) else {}


def annotations_of(obj: Obj) -> dict[str, str]:
    annotations = meta(obj).get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def generation_of(obj: Obj) -> int:
    return int(meta(obj).get("generation") or 1)


def is_deleting(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def controller_uid(obj: Obj) -> str | None:
    """The uid of the owner reference marked ``controller: true``."""
    for ref in meta(obj).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return str(ref.get("uid", ""))
    return None


def owner_reference(owner: Obj, kind: str, api_version: str) -> Obj:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name_of(owner),
        "uid": uid_of(owner),
        "controller": True,
        "blockOwnerDeletion": True,
    }


# --- quantities and int-or-percent --------------------------------------------------------------------------------

_SUFFIXES = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]{0,2})$")


def parse_quantity(value: object) -> float:
    """resource.Quantity to a float (cores for cpu, bytes for memory). Unparseable values count as zero."""
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return 0.0
    number, suffix = match.groups()
    if suffix and suffix not in _SUFFIXES:
        return 0.0
    return float(number) * (_SUFFIXES[suffix] if suffix else 1.0)


def int_or_percent(value: object, total: int, *, round_up: bool, default: str) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    raw = default if value is None else value
    if isinstance(raw, int):
        return raw
    text = str(raw)
    if text.endswith("%"):
        scaled = int(text[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(text)


def pod_requests(pod_spec: Obj) -> tuple[float, float]:
    """(cpu cores, memory bytes) the scheduler accounts: sum over containers, at least any init container's."""

    def of(container: Obj) -> tuple[float, float]:
        resources = container.get("resources") or {}
        requests = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        return parse_quantity(requests.get("cpu", 0)), parse_quantity(requests.get("memory", 0))

    cpu = mem = 0.0
    for container in pod_spec.get("containers") or []:
        c, m = of(container)
        cpu += c
        mem += m
    for container in pod_spec.get("initContainers") or []:
        c, m = of(container)
        cpu, mem = max(cpu, c), max(mem, m)
    return cpu, mem


# --- conditions ---------------------------------------------------------------------------------------------------


def get_condition(status: Obj | None, type_: str) -> Obj | None:
    for cond in (status or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond
    return None


def condition_true(obj: Obj, type_: str) -> bool:
    cond = get_condition(obj.get("status"), type_)
    return cond is not None and cond.get("status") == "True"


def pod_ready_since(pod: Obj) -> float | None:
    """When the pod's Ready condition last became True, or ``None`` when it is not ready."""
    cond = get_condition(pod.get("status"), "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime")) or 0.0


def pod_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """podutil.IsPodAvailable."""
    since = pod_ready_since(pod)
    if since is None:
        return False
    return min_ready_seconds == 0 or since + min_ready_seconds <= now


def pod_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_active(pod: Obj) -> bool:
    """controller.IsPodActive: not terminal and not being deleted."""
    return not pod_terminal(pod) and not is_deleting(pod)


def omit_zero(status: Obj, keys: tuple[str, ...]) -> Obj:
    """Drop zero-valued ``omitempty`` integer fields, as the real API's JSON does."""
    for key in keys:
        if status.get(key) == 0:
            del status[key]
    return status
