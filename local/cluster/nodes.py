"""The emulator's worker nodes: managed node groups as core/v1 Node objects (``NodePool``).

Node capacity and allocatable follow the EKS AMI for the instance type (vCPU, memory, the VPC CNI's max pods,
kube-reserved); labels are those EKS puts on managed node group nodes. New nodes report ``Ready=False``
(KubeletNotReady) until their boot time has passed on the simulated clock.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class NodeGroupState:
    name: str
    desired: int
    instance_type: str
    zone: str | None
    nodes: tuple[str, ...]
    ready: int


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
        """The default for a new cluster: ``general`` with 3 t3.medium nodes, already booted."""
        self.set_group(DEFAULT_GROUP, DEFAULT_GROUP_SIZE, DEFAULT_INSTANCE_TYPE, boot_seconds=0.0)

    def set_group(
        self,
        name: str,
        desired: int,
        instance_type: str = DEFAULT_INSTANCE_TYPE,
        *,
        zone: str | None = None,
        boot_seconds: float | None = None,
    ) -> None:
        """Create, resize or (``desired=0``) empty a node group; new nodes boot for ``boot_seconds``."""
        if desired < 0:
            raise ValueError("desired size must be >= 0")
        node_resources(instance_type)  # validates the type before changing anything
        boot = self._boot_seconds if boot_seconds is None else boot_seconds
        now = self._clock.now()
        with self._lock:
            group = self._groups.setdefault(name, _Group(desired, instance_type, zone))
            group.desired, group.instance_type, group.zone = desired, instance_type, zone
            while len(group.nodes) > desired:
                node = group.nodes.pop()
                self._store.remove(NODES, "", node.name)
            while len(group.nodes) < desired:
                node = self._new_node(name, group, now, boot)
                group.nodes.append(node)
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

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
                )
                for name, g in self._groups.items()
            }

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
        capacity, allocatable = node_resources(group.instance_type)
        arch = instance_arch(group.instance_type)
        ready = boot <= 0
        node: Obj = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "uid": new_uid(),
                "creationTimestamp": fmt_time(now),
                "labels": {
                    "beta.kubernetes.io/arch": arch,
                    "beta.kubernetes.io/instance-type": group.instance_type,
                    "beta.kubernetes.io/os": "linux",
                    "eks.amazonaws.com/capacityType": "ON_DEMAND",
                    "eks.amazonaws.com/nodegroup": group_name,
                    "failure-domain.beta.kubernetes.io/region": self._region,
                    "failure-domain.beta.kubernetes.io/zone": zone,
                    "kubernetes.io/arch": arch,
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "node.kubernetes.io/instance-type": group.instance_type,
                    "topology.kubernetes.io/region": self._region,
                    "topology.kubernetes.io/zone": zone,
                },
                "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {"providerID": f"aws:///{zone}/i-{hashlib.sha256(name.encode()).hexdigest()[:17]}"},
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
        self._store.put(NODES, node)
        return _Node(name=name, ready_at=now + boot, marked_ready=ready)


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
