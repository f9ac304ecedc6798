"""The emulator's data plane: worker nodes (``NodePool``) and what the kubelet does to a pod (``Kubelet``).

What a container does is decided by its image (``ImageBehaviours``): become ready after a few seconds, crash and be
restarted with the kubelet's exponential back-off, fail to pull, fail to create, run but never turn ready, or be ready
but answer its health endpoint with an error. A pod's status is a pure function of its behaviour, its start time and
the simulated clock, so the same clock reading always yields the same status, whatever order reconciles happen in.

Known deviations from a real kubelet:
- Image pulls and container creation are instant (no ``ContainerCreating`` phase) unless the behaviour says they fail.
- The back-off before the first restart is already 10s (a real kubelet restarts the first crash at once), then 20s,
  40s... capped at 300s; the back-off never resets because a crashing container never runs for 10 minutes.
- Readiness is the behaviour's delay, not the pod's readinessProbe; liveness probes are not simulated.
- A pod's behaviour is fixed when the kubelet first starts it (as an image is fixed once pulled); changing the
  registry later affects new pods only. Its health answer is recorded on the pod as the annotation
  ``HEALTH_ANNOTATION`` so the service proxy can answer from the store alone.
- Init containers complete instantly; taints, volumes and resource limits are not enforced.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from local.cluster.clock import SimClock
from local.cluster.objects import (
    NODES,
    fmt_time,
    get_condition,
    name_of,
    new_uid,
    parse_quantity,
    parse_time,
)
from local.cluster.store import Obj, Store

BehaviourKind = Literal["ready", "crash_loop", "err_image_pull", "create_container_config_error", "never_ready"]

HEALTH_ANNOTATION = "emulator.synthetictrialstudio.local/health"
HEALTHY_BODY = '{"status":"healthy"}'
INITIAL_BACKOFF = 10.0
MAX_BACKOFF = 300.0
PULL_ERROR_SECONDS = 1.0


@dataclass(frozen=True)
class Behaviour:
    """What a container running this image does. Build one with the class methods."""

    kind: BehaviourKind = "ready"
    ready_after: float = 2.0
    """``ready``: seconds from start until the container turns ready."""
    run_for: float = 3.0
    """``crash_loop``: seconds each attempt runs before it exits with ``exit_code``."""
    exit_code: int = 1
    completes_after: float = 5.0
    """Run-to-completion pods (restartPolicy Never/OnFailure) with a ``ready`` image exit 0 after this long."""
    message: str = ""
    """Waiting message for pull and config errors (a realistic default is used when empty)."""
    health_status: int = 200
    health_body: str = HEALTHY_BODY

    @classmethod
    def ready(cls, after: float = 2.0, *, completes_after: float = 5.0) -> Behaviour:
        return cls(kind="ready", ready_after=after, completes_after=completes_after)

    @classmethod
    def crash_loop(cls, exit_code: int = 1, *, run_for: float = 3.0) -> Behaviour:
        return cls(kind="crash_loop", exit_code=exit_code, run_for=run_for, health_status=503, health_body="")

    @classmethod
    def err_image_pull(cls, message: str = "") -> Behaviour:
        return cls(kind="err_image_pull", message=message, health_status=503, health_body="")

    @classmethod
    def create_container_config_error(cls, message: str = 'secret "app-secrets" not found') -> Behaviour:
        return cls(kind="create_container_config_error", message=message, health_status=503, health_body="")

    @classmethod
    def never_ready(cls, *, health_status: int = 503, health_body: str = '{"status":"starting"}') -> Behaviour:
        return cls(kind="never_ready", health_status=health_status, health_body=health_body)

    @classmethod
    def unhealthy(
        cls, status: int = 500, body: str = '{"status":"unhealthy"}', *, ready_after: float = 2.0
    ) -> Behaviour:
        """Turns ready like ``ready`` but answers its health endpoint with ``status`` (fails smoke tests)."""
        return cls(kind="ready", ready_after=ready_after, health_status=status, health_body=body)

    @property
    def healthy(self) -> bool:
        return self.health_status < 400


class ImageBehaviours:
    """Registry from image to behaviour.

    ``get`` picks, in order: the exact image string; a ``sha256:…`` key the image contains; a ``:tag`` key equal to
    the image's tag; the longest key the image starts with (a repository or registry prefix); the default.
    """

    def __init__(self, default: Behaviour | None = None) -> None:
        self._lock = threading.Lock()
        self._default = default or Behaviour()
        self._rules: dict[str, Behaviour] = {}

    def set(self, image_or_digest: str, behaviour: Behaviour) -> None:
        with self._lock:
            self._rules[image_or_digest] = behaviour

    def unset(self, image_or_digest: str) -> None:
        with self._lock:
            self._rules.pop(image_or_digest, None)

    def set_default(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._default = behaviour

    def reset(self) -> None:
        with self._lock:
            self._rules.clear()
            self._default = Behaviour()

    def get(self, image: str) -> Behaviour:
        with self._lock:
            rules = dict(self._rules)
            default = self._default
        if image in rules:
            return rules[image]
        for key, behaviour in rules.items():
            if key.startswith("sha256:") and key in image:
                return behaviour
        tag = image_tag(image)
        if tag is not None and f":{tag}" in rules:
            return rules[f":{tag}"]
        prefixes = [k for k in rules if not k.startswith((":", "sha256:")) and _prefix_of(k, image)]
        if prefixes:
            return rules[max(prefixes, key=len)]
        return default


def _prefix_of(prefix: str, image: str) -> bool:
    """``prefix`` ends at a component boundary of ``image`` (so ``repo/api:v1`` is no prefix of ``repo/api:v10``)."""
    if not image.startswith(prefix):
        return False
    return len(image) == len(prefix) or prefix[-1] in "/:@" or image[len(prefix)] in "/:@"


def image_tag(image: str) -> str | None:
    """The tag of ``repo[:port]/path:tag[@digest]``, or ``None``."""
    without_digest = image.split("@", 1)[0]
    last = without_digest.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def image_id(image: str) -> str:
    """What containerd reports as imageID: ``repo@sha256:…`` (the image's own digest when it has one)."""
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)
    if ":" in last[-1]:
        repo = repo[: repo.rfind(":")]
    if "@sha256:" in image:
        return f"{repo}@{image.split('@', 1)[1]}"
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


# --- container simulation ---------------------------------------------------------------------------------------


@dataclass
class _ContainerSim:
    state: Obj
    last_state: Obj = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    ready_since: float | None = None
    pulled: bool = True
    outcome: Literal["running", "waiting", "succeeded", "failed"] = "running"


def _backoff(attempt: int) -> float:
    return float(min(INITIAL_BACKOFF * 2**attempt, MAX_BACKOFF))


def _simulate_container(
    behaviour: Behaviour, *, name: str, image: str, pod_name: str, restart_policy: str, start: float, now: float
) -> _ContainerSim:
    t = max(0.0, now - start)
    if behaviour.kind == "err_image_pull":
        attempt_at, attempt = 0.0, 0
        while attempt_at + _backoff(attempt) <= t:
            attempt_at += _backoff(attempt)
            attempt += 1
        if t - attempt_at < PULL_ERROR_SECONDS:
            message = behaviour.message or (
                f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
                f'failed to resolve reference "{image}": {image}: not found'
            )
            waiting = {"reason": "ErrImagePull", "message": message}
        else:
            waiting = {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
        return _ContainerSim(state={"waiting": waiting}, pulled=False, outcome="waiting")
    if behaviour.kind == "create_container_config_error":
        waiting = {"reason": "CreateContainerConfigError", "message": behaviour.message}
        return _ContainerSim(state={"waiting": waiting}, outcome="waiting")
    if behaviour.kind == "never_ready":
        return _ContainerSim(state={"running": {"startedAt": fmt_time(start)}}, started=True)
    if behaviour.kind == "ready":
        if restart_policy != "Always" and t >= behaviour.completes_after:
            terminated = {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": fmt_time(start),
                "finishedAt": fmt_time(start + behaviour.completes_after),
            }
            return _ContainerSim(state={"terminated": terminated}, outcome="succeeded")
        ready = t >= behaviour.ready_after
        return _ContainerSim(
            state={"running": {"startedAt": fmt_time(start)}},
            ready=ready,
            started=True,
            ready_since=start + behaviour.ready_after if ready else None,
        )
    # crash_loop: run, exit, back off, restart...
    run_start, restarts = 0.0, 0
    last: Obj = {}
    while True:
        exit_at = run_start + behaviour.run_for
        terminated = {
            "exitCode": behaviour.exit_code,
            "reason": "Error",
            "startedAt": fmt_time(start + run_start),
            "finishedAt": fmt_time(start + exit_at),
        }
        if t < exit_at:
            running = {"running": {"startedAt": fmt_time(start + run_start)}}
            return _ContainerSim(state=running, last_state=last, started=True, restart_count=restarts)
        if restart_policy == "Never":
            return _ContainerSim(state={"terminated": terminated}, restart_count=restarts, outcome="failed")
        delay = _backoff(restarts)
        if t < exit_at + delay:
            message = f"back-off {int(delay)}s restarting failed container={name} pod={pod_name}"
            backing_off: Obj = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
            return _ContainerSim(state=backing_off, last_state={"terminated": terminated}, restart_count=restarts)
        last = {"terminated": terminated}
        run_start = exit_at + delay
        restarts += 1


def _set_condition(old_status: Obj, type_: str, status: str, now: float, **extra: str) -> Obj:
    old = get_condition(old_status, type_)
    since = extra.pop("since", None)
    if old is not None and old.get("status") == status:
        transition = old.get("lastTransitionTime")
    else:
        transition = since or fmt_time(now)
    cond: Obj = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": transition}
    cond.update({k: v for k, v in extra.items() if v})
    return cond


class Kubelet:
    """Computes the status of pods bound to a node from their images' behaviours."""

    def __init__(self, images: ImageBehaviours) -> None:
        self._images = images
        self._lock = threading.Lock()
        self._pinned: dict[str, tuple[Behaviour, ...]] = {}
        self._next_ip = 0

    def forget(self, uid: str) -> None:
        with self._lock:
            self._pinned.pop(uid, None)

    def retain(self, uids: set[str]) -> None:
        """Forget every pod not in ``uids`` (pods deleted behind the controllers' back)."""
        with self._lock:
            for uid in [u for u in self._pinned if u not in uids]:
                del self._pinned[uid]

    def behaviours(self, pod: Obj) -> tuple[Behaviour, ...]:
        uid = str(pod["metadata"].get("uid", ""))
        containers = pod.get("spec", {}).get("containers") or []
        with self._lock:
            pinned = self._pinned.get(uid)
            if pinned is None or len(pinned) != len(containers):
                pinned = tuple(self._images.get(str(c.get("image", ""))) for c in containers)
                self._pinned[uid] = pinned
            return pinned

    def _allocate_ip(self) -> str:
        with self._lock:
            n = self._next_ip
            self._next_ip += 1
        return f"10.0.{128 + (n // 250) % 120}.{n % 250 + 2}"

    def health_annotation(self, pod: Obj) -> str:
        behaviours = self.behaviours(pod)
        main = behaviours[0] if behaviours else Behaviour()
        return json.dumps({"status": main.health_status, "body": main.health_body}, separators=(",", ":"))

    def desired_status(self, pod: Obj, node: Obj, now: float) -> Obj:
        """The status the kubelet would report for ``pod`` running on ``node`` at ``now``."""
        old: Obj = pod.get("status") or {}
        spec = pod.get("spec") or {}
        pod_name = name_of(pod)
        start = parse_time(old.get("startTime"))
        if start is None:
            start = float(int(now))
        restart_policy = str(spec.get("restartPolicy") or "Always")
        containers = spec.get("containers") or []
        statuses: list[Obj] = []
        sims: list[_ContainerSim] = []
        for container, behaviour in zip(containers, self.behaviours(pod), strict=False):
            image = str(container.get("image", ""))
            sim = _simulate_container(
                behaviour,
                name=container["name"],
                image=image,
                pod_name=pod_name,
                restart_policy=restart_policy,
                start=start,
                now=now,
            )
            sims.append(sim)
            statuses.append(
                {
                    "name": container["name"],
                    "image": image,
                    "imageID": image_id(image) if sim.pulled else "",
                    "containerID": f"containerd://{hashlib.sha256((pod_name + container['name']).encode()).hexdigest()}"
                    if sim.pulled and sim.outcome != "waiting"
                    else "",
                    "ready": sim.ready,
                    "started": sim.started,
                    "restartCount": sim.restart_count,
                    "state": sim.state,
                    "lastState": sim.last_state,
                }
            )
        for s in statuses:
            if not s["containerID"]:
                del s["containerID"]
        outcomes = [s.outcome for s in sims]
        if outcomes and all(o == "succeeded" for o in outcomes):
            phase = "Succeeded"
        elif outcomes and all(o in ("succeeded", "failed") for o in outcomes):
            phase = "Failed"
        elif any(o == "waiting" for o in outcomes):
            phase = "Pending"
        else:
            phase = "Running"
        all_ready = bool(sims) and all(s.ready for s in sims)
        unready = [c["name"] for c, s in zip(containers, sims, strict=False) if not s.ready]
        terminal = phase in ("Succeeded", "Failed")
        ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
        ready_message = "" if terminal else f"containers with unready status: [{' '.join(unready)}]"
        ready_since = max((s.ready_since or now for s in sims), default=now)
        ready_extra: dict[str, str] = (
            {"since": fmt_time(ready_since)} if all_ready else {"reason": ready_reason, "message": ready_message}
        )
        scheduled = get_condition(old, "PodScheduled") or {}
        conditions = [
            _set_condition(
                old, "PodReadyToStartContainers", "False" if terminal else "True", now, since=fmt_time(start)
            ),
            _set_condition(old, "Initialized", "True", now, since=fmt_time(start)),
            _set_condition(old, "Ready", "True" if all_ready else "False", now, **ready_extra),
            _set_condition(old, "ContainersReady", "True" if all_ready else "False", now, **ready_extra),
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": scheduled.get("lastTransitionTime") or fmt_time(start),
            },
        ]
        host_ip = next(
            (a["address"] for a in node.get("status", {}).get("addresses", []) if a.get("type") == "InternalIP"),
            "",
        )
        pod_ip = old.get("podIP") or self._allocate_ip()
        status: Obj = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": fmt_time(start),
            "containerStatuses": statuses,
            "qosClass": old.get("qosClass") or qos_class(spec),
        }
        init = spec.get("initContainers") or []
        if init:
            status["initContainerStatuses"] = [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": image_id(str(c.get("image", ""))),
                    "ready": True,
                    "started": False,
                    "restartCount": 0,
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": fmt_time(start),
                            "finishedAt": fmt_time(start),
                        }
                    },
                    "lastState": {},
                }
                for c in init
            ]
        return status


def qos_class(spec: Obj) -> str:
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests = [(c.get("resources") or {}).get("requests") or {} for c in containers]
    limits = [(c.get("resources") or {}).get("limits") or {} for c in containers]
    if not any(requests) and not any(limits):
        return "BestEffort"
    guaranteed = all(
        lim.get(r) is not None and parse_quantity(lim[r]) == parse_quantity(req.get(r, lim[r]))
        for req, lim in zip(requests, limits, strict=True)
        for r in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


# --- nodes ------------------------------------------------------------------------------------------------------


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


def health_of(pod: Obj) -> tuple[int, bytes]:
    """The (status, body) a pod's health endpoint answers with, from the kubelet's annotation."""
    raw = (pod.get("metadata", {}).get("annotations") or {}).get(HEALTH_ANNOTATION)
    if not raw:
        return 200, HEALTHY_BODY.encode()
    try:
        data: Any = json.loads(raw)
        return int(data["status"]), str(data.get("body", "")).encode()
    except (ValueError, KeyError, TypeError):
        return 200, HEALTHY_BODY.encode()
