"""The emulator's worker nodes: managed node groups as core/v1 Node objects (``NodePool``).

Node capacity and allocatable follow the EKS AMI for the instance type (vCPU, memory, the VPC CNI's max pods,
kube-reserved); labels are those EKS puts on managed node group nodes plus the group's own ``labels``, taints the
group's ``taints`` (EKS's ``NO_SCHEDULE``/``NO_EXECUTE``/``PREFER_NO_SCHEDULE`` as Kubernetes effects), and
``eks.amazonaws.com/capacityType`` its capacity type. New nodes report ``Ready=False`` (KubeletNotReady) and carry
the ``node.kubernetes.io/not-ready:NoSchedule`` taint until their boot time has passed on the simulated clock. A
group's ``min_size``/``max_size`` (its scaling config) bound what the Cluster Autoscaler may resize it to;
:meth:`NodePool.template` is the node a scale-up would add.

Known deviations: label keys EKS reserves are not refused; ``eks.amazonaws.com/nodegroup-image`` and the launch
template labels are not set; a group's label or taint update applies to its nodes at once (EKS rolls it out); scale
down removes the newest nodes at once (no cordon and drain).
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from local.cluster.clock import SimClock
from local.cluster.objects import NODES, fmt_time, get_condition, new_uid
from local.cluster.store import Obj, Store


@dataclass(frozen=True)
class InstanceType:
    cpu: int
    memory_gib: float
    max_pods: int
    gpus: int = 0


# vCPU, memory and the VPC CNI's max pods (without prefix delegation) for common EKS instance types.
INSTANCE_TYPES: dict[str, InstanceType] = {
    "t3.small": InstanceType(2, 2, 11),
    "t3.medium": InstanceType(2, 4, 17),
    "t3.large": InstanceType(2, 8, 35),
    "t3.xlarge": InstanceType(4, 16, 58),
    "t3.2xlarge": InstanceType(8, 32, 58),
    "m5.large": InstanceType(2, 8, 29),
    "m5.xlarge": InstanceType(4, 16, 58),
    "m5.2xlarge": InstanceType(8, 32, 58),
    "m5.4xlarge": InstanceType(16, 64, 234),
    "c5.large": InstanceType(2, 4, 29),
    "c5.xlarge": InstanceType(4, 8, 58),
    "c5.2xlarge": InstanceType(8, 16, 58),
    "r5.large": InstanceType(2, 16, 29),
    "r5.xlarge": InstanceType(4, 32, 58),
    "g4dn.xlarge": InstanceType(4, 16, 29, 1),
    "g5.xlarge": InstanceType(4, 16, 58, 1),
    "p3.2xlarge": InstanceType(8, 61, 58, 1),
}

DEFAULT_GROUP = "general"
DEFAULT_GROUP_SIZE = 3
DEFAULT_INSTANCE_TYPE = "t3.medium"
DEFAULT_BOOT_SECONDS = 30.0


class UnknownInstanceTypeError(ValueError):
    """The node group asked for an instance type the emulator has no capacity figures for."""


def _reserved_cpu_millis(cores: int) -> int:
    """EKS AMI kube-reserved CPU: 6% of the first core, 1% of the second, 0.5% of the next two, 0.25% above."""
    millis = 60.0
    if cores >= 2:
        millis += 10
    millis += 5 * max(0, min(cores, 4) - 2)
    millis += 2.5 * max(0, cores - 4)
    return int(millis)


_SIZES: dict[str, tuple[int, int]] = {  # size -> (vCPU, VPC CNI max pods), for families not in the table
    "medium": (2, 17),
    "large": (2, 29),
    "xlarge": (4, 58),
    "2xlarge": (8, 58),
    "4xlarge": (16, 234),
    "8xlarge": (32, 234),
    "12xlarge": (48, 234),
    "16xlarge": (64, 737),
    "24xlarge": (96, 737),
}
_GIB_PER_VCPU = {"c": 2, "m": 4, "r": 8, "x": 16, "g": 4, "p": 8, "t": 4, "i": 8}
_INSTANCE_TYPE = re.compile(r"^([a-z]+)(\d+)([a-z-]*)\.([a-z0-9]+)$")


def instance_type_spec(instance_type: str) -> InstanceType:
    """Capacity of ``instance_type``: from the table, else derived from its family letter and size."""
    known = INSTANCE_TYPES.get(instance_type)
    if known is not None:
        return known
    match = _INSTANCE_TYPE.match(instance_type)
    if match is None or match.group(4) not in _SIZES or match.group(1)[0] not in _GIB_PER_VCPU:
        raise UnknownInstanceTypeError(f"unknown instance type {instance_type!r}")
    family = match.group(1)
    cpu, max_pods = _SIZES[match.group(4)]
    return InstanceType(cpu, cpu * _GIB_PER_VCPU[family[0]], max_pods, 1 if family[0] in "gp" else 0)


def instance_arch(instance_type: str) -> str:
    """``arm64`` for Graviton families (m6g, c7g, t4g...), else ``amd64``."""
    match = _INSTANCE_TYPE.match(instance_type)
    return "arm64" if match is not None and "g" in match.group(3) and match.group(1) not in ("g", "p") else "amd64"


def node_resources(instance_type: str) -> tuple[Obj, Obj]:
    """(capacity, allocatable) for a node of ``instance_type``."""
    spec = instance_type_spec(instance_type)
    memory_ki = int(spec.memory_gib * 1024 * 1024)
    reserved_ki = (11 * spec.max_pods + 255 + 100) * 1024
    capacity: Obj = {
        "cpu": str(spec.cpu),
        "memory": f"{memory_ki}Ki",
        "pods": str(spec.max_pods),
        "ephemeral-storage": "20959212Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    }
    allocatable: Obj = {
        **capacity,
        "cpu": f"{spec.cpu * 1000 - _reserved_cpu_millis(spec.cpu)}m",
        "memory": f"{memory_ki - reserved_ki}Ki",
        "ephemeral-storage": "18242267924",
    }
    if spec.gpus:
        capacity["nvidia.com/gpu"] = allocatable["nvidia.com/gpu"] = str(spec.gpus)
    return capacity, allocatable


# EKS node group taint effects (CreateNodegroup ``taints[].effect``) and the Kubernetes effects EKS applies.
EKS_TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
CAPACITY_TYPES = ("ON_DEMAND", "SPOT", "CAPACITY_BLOCK")
MAX_TAINTS = 50
NOT_READY_TAINT: Obj = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}


class InvalidNodegroupConfigError(ValueError):
    """A node group's labels, taints or capacity type break EKS's rules (EKS answers InvalidParameterException)."""


def eks_labels(labels: Mapping[str, Any] | None) -> dict[str, str]:
    """Validate node group ``labels`` as EKS does (keys and values 1 to 63 characters)."""
    out: dict[str, str] = {}
    for key, value in (labels or {}).items():
        if not 1 <= len(str(key)) <= 63 or not 1 <= len(str(value)) <= 63:
            raise InvalidNodegroupConfigError(f"labels: key {key!r} and its value must each be 1 to 63 characters long")
        out[str(key)] = str(value)
    return out


def eks_taints(taints: Sequence[Mapping[str, Any]] | None) -> list[Obj]:
    """Node group taints (the EKS API's ``{key, value, effect}`` or CloudFormation's ``{Key, Value, Effect}``) as the
    Kubernetes taints EKS puts on the group's nodes."""
    out: list[Obj] = []
    for i, taint in enumerate(taints or []):
        key = str(taint.get("key", taint.get("Key")) or "")
        value = str(taint.get("value", taint.get("Value")) or "")
        effect = str(taint.get("effect", taint.get("Effect")) or "")
        if not 1 <= len(key) <= 63 or len(value) > 63:
            raise InvalidNodegroupConfigError(f"taints[{i}]: key must be 1 to 63 characters, value at most 63")
        if effect not in EKS_TAINT_EFFECTS:
            raise InvalidNodegroupConfigError(
                f"taints[{i}].effect: {effect!r} is not one of {', '.join(sorted(EKS_TAINT_EFFECTS))}"
            )
        out.append({"key": key, **({"value": value} if value else {}), "effect": EKS_TAINT_EFFECTS[effect]})
    if len(out) > MAX_TAINTS:
        raise InvalidNodegroupConfigError(f"taints: at most {MAX_TAINTS} taints per node group, got {len(out)}")
    return out


@dataclass(frozen=True)
class NodeGroupState:
    name: str
    desired: int
    instance_type: str
    zone: str | None
    nodes: tuple[str, ...]
    ready: int
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Obj, ...] = ()
    capacity_type: str = "ON_DEMAND"
    min_size: int = 0
    max_size: int = 0
    booting: tuple[str, ...] = ()
    """The group's nodes not Ready yet (launched, still booting)."""


@dataclass
class _Node:
    name: str
    ready_at: float
    marked_ready: bool = False


@dataclass
class _Group:
    desired: int
    instance_type: str
    zone: str | None
    nodes: list[_Node] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    capacity_type: str = "ON_DEMAND"
    min_size: int = 0
    max_size: int = 0


class NodePool:
    """Worker nodes derived from managed node group sizes, stored as core/v1 Node objects.

    New nodes report ``Ready=False`` (KubeletNotReady) until ``boot_seconds`` of simulated time have passed; the
    controller manager calls :meth:`tick` to flip them. Scaling down removes the newest nodes first.
    """

    def __init__(
        self,
        store: Store,
        clock: SimClock,
        *,
        region: str = "us-east-1",
        boot_seconds: float = DEFAULT_BOOT_SECONDS,
        kubelet_version: str = "v1.32.3-eks-473151a",
    ) -> None:
        self._store = store
        self._clock = clock
        self._region = region
        self._boot_seconds = boot_seconds
        self._kubelet_version = kubelet_version
        self._lock = threading.RLock()
        self._groups: dict[str, _Group] = {}
        self._counter = 0
        self._listeners: list[Callable[[], None]] = []

    @property
    def region(self) -> str:
        return self._region

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (no arguments) after a group changes size."""
        with self._lock:
            self._listeners.append(listener)

    def add_default_group(self) -> None:
        """The default for a new cluster: ``general`` with 3 t3.medium nodes, already booted, labelled as the eks
        stack's GeneralNodeGroup (``workload-class: general``, what the add-ons select)."""
        self.set_group(
            DEFAULT_GROUP,
            DEFAULT_GROUP_SIZE,
            DEFAULT_INSTANCE_TYPE,
            boot_seconds=0.0,
            labels={"workload-class": DEFAULT_GROUP},
        )

    def set_group(
        self,
        name: str,
        desired: int,
        instance_type: str = DEFAULT_INSTANCE_TYPE,
        *,
        zone: str | None = None,
        boot_seconds: float | None = None,
        labels: Mapping[str, Any] | None = None,
        taints: Sequence[Mapping[str, Any]] | None = None,
        capacity_type: str | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
    ) -> None:
        """Create, resize or (``desired=0``) empty a node group; new nodes boot for ``boot_seconds``.

        ``labels``, ``taints`` (EKS's shape, effect ``NO_SCHEDULE``...) and ``capacity_type`` are the node group's
        configuration as EKS applies it to every node of the group, existing ones included; ``None`` keeps what the
        group has (nothing, ``ON_DEMAND`` for a new group). ``min_size``/``max_size`` are its scaling bounds (what
        the cluster autoscaler may resize it within); ``None`` keeps the group's, widened to take ``desired`` (a new
        group's are ``desired``). Everything is validated before anything changes.
        """
        if desired < 0:
            raise ValueError("desired size must be >= 0")
        if min_size is not None and max_size is not None and not 0 <= min_size <= desired <= max_size:
            raise InvalidNodegroupConfigError(
                f"scalingConfig: minSize {min_size} <= desiredSize {desired} <= maxSize {max_size} does not hold"
            )
        node_resources(instance_type)  # validates the type before changing anything
        new_labels = None if labels is None else eks_labels(labels)
        new_taints = None if taints is None else eks_taints(taints)
        if capacity_type is not None and capacity_type not in CAPACITY_TYPES:
            raise InvalidNodegroupConfigError(
                f"capacityType: {capacity_type!r} is not one of {', '.join(CAPACITY_TYPES)}"
            )
        boot = self._boot_seconds if boot_seconds is None else boot_seconds
        now = self._clock.now()
        with self._lock:
            group = self._groups.setdefault(
                name, _Group(desired, instance_type, zone, min_size=desired, max_size=desired)
            )
            group.desired, group.instance_type, group.zone = desired, instance_type, zone
            group.min_size = min(desired, group.min_size) if min_size is None else min_size
            group.max_size = max(desired, group.max_size) if max_size is None else max_size
            old_labels = dict(group.labels)
            reconfigured = self._configure(group, new_labels, new_taints, capacity_type)
            while len(group.nodes) > desired:
                node = group.nodes.pop()
                self._store.remove(NODES, "", node.name)
            if reconfigured:
                for node in group.nodes:
                    self._apply_config(name, group, node.name, old_labels)
            while len(group.nodes) < desired:
                node = self._new_node(name, group, now, boot)
                group.nodes.append(node)
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    @staticmethod
    def _configure(
        group: _Group, labels: dict[str, str] | None, taints: list[Obj] | None, capacity_type: str | None
    ) -> bool:
        """Take the new configuration; ``True`` when it differs from the group's."""
        before = (dict(group.labels), list(group.taints), group.capacity_type)
        if labels is not None:
            group.labels = labels
        if taints is not None:
            group.taints = taints
        if capacity_type is not None:
            group.capacity_type = capacity_type
        return before != (group.labels, group.taints, group.capacity_type)

    @staticmethod
    def _group_labels(group_name: str, group: _Group) -> dict[str, str]:
        """The group's own labels and the two EKS always sets (which a group's labels cannot override)."""
        return {
            **group.labels,
            "eks.amazonaws.com/capacityType": group.capacity_type,
            "eks.amazonaws.com/nodegroup": group_name,
        }

    def _apply_config(self, group_name: str, group: _Group, node_name: str, old_labels: dict[str, str]) -> None:
        """Put the group's labels and taints on an existing node (EKS updates a node group's nodes in place)."""
        with self._store.lock:
            current = self._store.get(NODES, "", node_name)
            if current is None:
                return
            meta = current["metadata"]
            labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in old_labels}
            labels.update(self._group_labels(group_name, group))
            meta["labels"] = dict(sorted(labels.items()))
            spec = current.setdefault("spec", {})
            kept = [t for t in spec.get("taints") or [] if t.get("key") == NOT_READY_TAINT["key"]]
            taints = [*_stamped(group.taints, spec.get("taints") or [], self._clock.now()), *kept]
            if taints:
                spec["taints"] = taints
            else:
                spec.pop("taints", None)
            self._store.put(NODES, current)

    def remove_group(self, name: str) -> None:
        self.set_group(name, 0, self._groups[name].instance_type if name in self._groups else DEFAULT_INSTANCE_TYPE)
        with self._lock:
            self._groups.pop(name, None)

    def groups(self) -> dict[str, NodeGroupState]:
        now = self._clock.now()
        with self._lock:
            return {
                name: NodeGroupState(
                    name=name,
                    desired=g.desired,
                    instance_type=g.instance_type,
                    zone=g.zone,
                    nodes=tuple(n.name for n in g.nodes),
                    ready=sum(1 for n in g.nodes if n.ready_at <= now),
                    labels=dict(g.labels),
                    taints=tuple(copy.deepcopy(g.taints)),
                    capacity_type=g.capacity_type,
                    min_size=g.min_size,
                    max_size=g.max_size,
                    booting=tuple(n.name for n in g.nodes if n.ready_at > now),
                )
                for name, g in self._groups.items()
            }

    def template(self, name: str) -> Obj:
        """A Ready node of group ``name`` as it would boot (labels, taints, capacity; not stored): what the cluster
        autoscaler simulates a scale-up with (for a managed node group it reads them from DescribeNodegroup)."""
        with self._lock:
            group = self._groups[name]
            return self._node_object(
                name, group, f"template-node-for-{name}", zone=self._zones()[0], now=self._clock.now(), ready=True
            )

    def next_ready(self) -> float:
        """When the next booting node is due to turn Ready (``math.inf``: none is booting)."""
        with self._lock:
            return min(
                (n.ready_at for g in self._groups.values() for n in g.nodes if not n.marked_ready), default=math.inf
            )

    def tick(self, now: float) -> bool:
        """Mark booted nodes Ready; ``True`` when a node changed."""
        with self._lock:
            due = [n for g in self._groups.values() for n in g.nodes if n.ready_at <= now and not n.marked_ready]
        changed = False
        for node in due:
            node.marked_ready = True
            with self._store.lock:
                current = self._store.get(NODES, "", node.name)
                if current is None:
                    continue
                ready = get_condition(current.get("status"), "Ready")
                if ready is not None and ready.get("status") == "True":
                    continue
                current["status"]["conditions"] = _node_conditions(now, ready=True)
                spec = current.setdefault("spec", {})
                taints = [t for t in spec.get("taints") or [] if t != NOT_READY_TAINT]
                if taints:
                    spec["taints"] = taints
                else:
                    spec.pop("taints", None)
                self._store.put(NODES, current)
                changed = True
        return changed

    def _zones(self) -> list[str]:
        return [f"{self._region}{suffix}" for suffix in "abc"]

    def _new_node(self, group_name: str, group: _Group, now: float, boot: float) -> _Node:
        self._counter += 1
        n = self._counter
        zones = self._zones()
        zone = group.zone or zones[(n - 1) % len(zones)]
        subnet = zones.index(zone) + 1 if zone in zones else 9
        ip = f"10.0.{subnet * 32 + (n // 250) % 32}.{n % 250 + 4}"
        domain = "ec2.internal" if self._region == "us-east-1" else f"{self._region}.compute.internal"
        name = f"ip-{ip.replace('.', '-')}.{domain}"
        ready = boot <= 0
        node = self._node_object(group_name, group, name, zone=zone, now=now, ready=ready, ip=ip)
        self._store.put(NODES, node)
        return _Node(name=name, ready_at=now + boot, marked_ready=ready)

    def _node_object(
        self, group_name: str, group: _Group, name: str, *, zone: str, now: float, ready: bool, ip: str = "10.0.0.4"
    ) -> Obj:
        capacity, allocatable = node_resources(group.instance_type)
        arch = instance_arch(group.instance_type)
        taints = [*_stamped(group.taints, [], now), *([] if ready else [dict(NOT_READY_TAINT)])]
        node: Obj = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "uid": new_uid(),
                "creationTimestamp": fmt_time(now),
                "labels": dict(
                    sorted(
                        {
                            **self._group_labels(group_name, group),
                            "beta.kubernetes.io/arch": arch,
                            "beta.kubernetes.io/instance-type": group.instance_type,
                            "beta.kubernetes.io/os": "linux",
                            "failure-domain.beta.kubernetes.io/region": self._region,
                            "failure-domain.beta.kubernetes.io/zone": zone,
                            "kubernetes.io/arch": arch,
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "node.kubernetes.io/instance-type": group.instance_type,
                            "topology.kubernetes.io/region": self._region,
                            "topology.kubernetes.io/zone": zone,
                        }.items()
                    )
                ),
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {
                "providerID": f"aws:///{zone}/i-{hashlib.sha256(name.encode()).hexdigest()[:17]}",
                **({"taints": taints} if taints else {}),
            },
            "status": {
                "capacity": capacity,
                "allocatable": allocatable,
                "conditions": _node_conditions(now, ready=ready),
                "addresses": [
                    {"type": "InternalIP", "address": ip},
                    {"type": "InternalDNS", "address": name},
                    {"type": "Hostname", "address": name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "architecture": arch,
                    "bootID": new_uid(),
                    "containerRuntimeVersion": "containerd://1.7.27",
                    "kernelVersion": "6.1.132-147.221.amzn2023.x86_64",
                    "kubeProxyVersion": self._kubelet_version,
                    "kubeletVersion": self._kubelet_version,
                    "machineID": hashlib.md5(name.encode(), usedforsecurity=False).hexdigest(),
                    "operatingSystem": "linux",
                    "osImage": "Amazon Linux 2023.7.20250414",
                    "systemUUID": new_uid(),
                },
            },
        }
        return node


def _stamped(taints: list[Obj], current: list[Obj], now: float) -> list[Obj]:
    """``taints`` for a node, NoExecute ones with ``timeAdded`` (kept from the node's current taint when it has it)."""
    out = []
    for taint in copy.deepcopy(taints):
        if taint["effect"] == "NoExecute":
            same = next((t for t in current if {**t, "timeAdded": None} == {**taint, "timeAdded": None}), None)
            taint["timeAdded"] = (same or {}).get("timeAdded") or fmt_time(now)
        out.append(taint)
    return out


def _node_conditions(now: float, *, ready: bool) -> list[Obj]:
    stamp = fmt_time(now)

    def cond(type_: str, status: str, reason: str, message: str) -> Obj:
        return {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }

    return [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")
        if ready
        else cond(
            "Ready", "False", "KubeletNotReady", "container runtime network not ready: cni plugin not initialized"
        ),
    ]


def node_ready(node: Obj) -> bool:
    cond = get_condition(node.get("status"), "Ready")
    return cond is not None and cond.get("status") == "True"
