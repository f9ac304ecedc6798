"""The emulator's kubelet: what happens to a pod bound to a node (``Kubelet``); the nodes are in ``nodes.py``.

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
- Init containers complete instantly; volumes and resource limits are not enforced.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from local.cluster.objects import (
    fmt_time,
    get_condition,
    name_of,
    parse_quantity,
    parse_time,
)
from local.cluster.store import Obj

BehaviourKind = Literal[
    "ready", "crash_loop", "crashes_after", "err_image_pull", "create_container_config_error", "never_ready"
]

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
    crash_after: float = 0.0
    """``crashes_after``: seconds the first run lasts (ready, healthy) before the container starts crash-looping."""
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
    def crashes_after(cls, seconds: float, *, exit_code: int = 1, ready_after: float = 2.0) -> Behaviour:
        """Turns ready like ``ready``, then exits after ``seconds`` and crash-loops from then on (a leak, a bad
        cache, a dependency that goes away): healthy at first, a regression later."""
        return cls(kind="crashes_after", crash_after=seconds, exit_code=exit_code, ready_after=ready_after)

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


def _pull_attempt(t: float) -> tuple[float, int]:
    """When (seconds after the container's start) the image pull under way at ``t`` began, and its number: attempts
    are spaced by the kubelet's back-off."""
    attempt_at, attempt = 0.0, 0
    while attempt_at + _backoff(attempt) <= t:
        attempt_at += _backoff(attempt)
        attempt += 1
    return attempt_at, attempt


def _simulate_container(
    behaviour: Behaviour, *, name: str, image: str, pod_name: str, restart_policy: str, start: float, now: float
) -> _ContainerSim:
    t = max(0.0, now - start)
    if behaviour.kind == "err_image_pull":
        attempt_at, _ = _pull_attempt(t)
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
    if behaviour.kind == "crashes_after" and t >= behaviour.crash_after:
        # a crash loop from the start whose runs last crash_after: the first ends there (ready until then, above);
        # restarts back off as any crash loop does and are not ready again (stricter than a container that is)
        first = replace(behaviour, kind="crash_loop", run_for=behaviour.crash_after)
        return _simulate_container(
            first, name=name, image=image, pod_name=pod_name, restart_policy=restart_policy, start=start, now=now
        )
    if behaviour.kind in ("ready", "crashes_after"):
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


def _next_transition(behaviour: Behaviour, *, restart_policy: str, start: float, now: float) -> float:
    """The first time after ``now`` at which :func:`_simulate_container`'s answer changes (``math.inf``: never): the
    bounds of its branches, walked the same way."""
    t = max(0.0, now - start)
    if behaviour.kind == "err_image_pull":
        attempt_at, attempt = _pull_attempt(t)
        if t - attempt_at < PULL_ERROR_SECONDS:
            return start + attempt_at + PULL_ERROR_SECONDS
        return start + attempt_at + _backoff(attempt)
    if behaviour.kind in ("create_container_config_error", "never_ready"):
        return math.inf
    if behaviour.kind == "crashes_after" and t >= behaviour.crash_after:
        first = replace(behaviour, kind="crash_loop", run_for=behaviour.crash_after)
        return _next_transition(first, restart_policy=restart_policy, start=start, now=now)
    if behaviour.kind in ("ready", "crashes_after"):
        bounds = [behaviour.ready_after]
        if behaviour.kind == "crashes_after":
            bounds.append(behaviour.crash_after)
        if restart_policy != "Always":
            if t >= behaviour.completes_after:
                return math.inf
            bounds.append(behaviour.completes_after)
        return min((start + b for b in bounds if b > t), default=math.inf)
    run_start, restarts = 0.0, 0
    while True:
        exit_at = run_start + behaviour.run_for
        if t < exit_at:
            return start + exit_at
        if restart_policy == "Never":
            return math.inf
        delay = _backoff(restarts)
        if t < exit_at + delay:
            return start + exit_at + delay
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
        start = parse_time(old.get("startTime"))
        if start is None:
            start = float(int(now))
        containers = spec.get("containers") or []
        sims = self._simulate(pod, start, now)
        statuses = [_container_status(name_of(pod), c, sim) for c, sim in zip(containers, sims, strict=False)]
        phase = _phase([s.outcome for s in sims])
        unready = [c["name"] for c, s in zip(containers, sims, strict=False) if not s.ready]
        host_ip = next(
            (a["address"] for a in node.get("status", {}).get("addresses", []) if a.get("type") == "InternalIP"),
            "",
        )
        pod_ip = old.get("podIP") or self._allocate_ip()
        status: Obj = {
            "phase": phase,
            "conditions": _pod_conditions(old, sims, unready, phase=phase, start=start, now=now),
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
            status["initContainerStatuses"] = [_init_container_status(c, start) for c in init]
        return status

    def next_change(self, pod: Obj, now: float) -> float:
        """When the status :meth:`desired_status` answers for ``pod`` next changes after ``now`` (``math.inf``: never;
        ``now`` for a pod it has not reported on yet): a pod's status is a function of the clock between these."""
        start = parse_time((pod.get("status") or {}).get("startTime"))
        if start is None:
            return now
        restart_policy = str((pod.get("spec") or {}).get("restartPolicy") or "Always")
        return min(
            (
                _next_transition(behaviour, restart_policy=restart_policy, start=start, now=now)
                for behaviour in self.behaviours(pod)
            ),
            default=math.inf,
        )

    def _simulate(self, pod: Obj, start: float, now: float) -> list[_ContainerSim]:
        spec = pod.get("spec") or {}
        restart_policy = str(spec.get("restartPolicy") or "Always")
        return [
            _simulate_container(
                behaviour,
                name=container["name"],
                image=str(container.get("image", "")),
                pod_name=name_of(pod),
                restart_policy=restart_policy,
                start=start,
                now=now,
            )
            for container, behaviour in zip(spec.get("containers") or [], self.behaviours(pod), strict=False)
        ]


def _container_status(pod_name: str, container: Obj, sim: _ContainerSim) -> Obj:
    image = str(container.get("image", ""))
    status: Obj = {
        "name": container["name"],
        "image": image,
        "imageID": image_id(image) if sim.pulled else "",
        "containerID": f"containerd://{hashlib.sha256((pod_name + container['name']).encode()).hexdigest()}",
        "ready": sim.ready,
        "started": sim.started,
        "restartCount": sim.restart_count,
        "state": sim.state,
        "lastState": sim.last_state,
    }
    if not sim.pulled or sim.outcome == "waiting":
        del status["containerID"]
    return status


def _phase(outcomes: list[str]) -> str:
    if outcomes and all(o == "succeeded" for o in outcomes):
        return "Succeeded"
    if outcomes and all(o in ("succeeded", "failed") for o in outcomes):
        return "Failed"
    if any(o == "waiting" for o in outcomes):
        return "Pending"
    return "Running"


def _pod_conditions(
    old: Obj, sims: list[_ContainerSim], unready: list[str], *, phase: str, start: float, now: float
) -> list[Obj]:
    all_ready = bool(sims) and all(s.ready for s in sims)
    terminal = phase in ("Succeeded", "Failed")
    ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
    ready_message = "" if terminal else f"containers with unready status: [{' '.join(unready)}]"
    ready_since = max((s.ready_since or now for s in sims), default=now)
    ready_extra: dict[str, str] = (
        {"since": fmt_time(ready_since)} if all_ready else {"reason": ready_reason, "message": ready_message}
    )
    scheduled = get_condition(old, "PodScheduled") or {}
    return [
        _set_condition(old, "PodReadyToStartContainers", "False" if terminal else "True", now, since=fmt_time(start)),
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


def _init_container_status(container: Obj, start: float) -> Obj:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": image_id(str(container.get("image", ""))),
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
