"""Watch the release's workloads until the verdict is known or the time budget runs out, inside one invocation.

Kubernetes' "efficient detection of changes": per namespace, one list of each kind the verdict reads (the workloads'
kinds, ReplicaSets for Deployments, Pods), then one watch of each from the list's resourceVersion; every event
updates the picture and :func:`controlplane.kube.health.assess` judges it again, so a rollout that finishes is
reported healthy as soon as the API server says so, and a pod that fails definitively as soon as it is observable.

Time is the API server's, never this process's clock: the ``Date`` of its answers, and a watch that ends after its
``timeoutSeconds`` proves that much time has passed. Watches are opened in rounds that end at the next moment a
judgement could change without any event (a grace period or a readiness deadline running out, the budget's end),
so nothing waits on a clock of its own. The time used to judge is therefore a lower bound of the server's: a
failure is never declared early.

A watch whose resourceVersion the server no longer keeps (410 ``Expired``) lists its kind again and carries on.

Events are read only where they matter: once a namespace has a pod no node can run, the cluster autoscaler's Events
there (``fieldSelector=source=cluster-autoscaler``) are listed and watched too, so a ``NotTriggerScaleUp`` fails the
pod within seconds and a ``TriggeredScaleUp`` lets it wait for its node (:mod:`controlplane.kube.health`).
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.kube.client import (
    ApiClient,
    KubeClient,
    Resource,
    WatchExpiredError,
    WatchStream,
    dynamic_client,
    list_with_time,
    server_time,
    watch_objects,
)
from controlplane.kube.errors import translate_errors
from controlplane.kube.health import (
    AUTOSCALER_EVENTS,
    EVENTS,
    Judge,
    Snapshot,
    assess,
    next_judgement,
    unschedulable_pods,
    validated_refs,
    watched_kinds,
)
from controlplane.models.kube import HealthReport, ObjectRef

ROUND_SLACK_S = 30.0
"""How much longer than a round's ``timeoutSeconds`` this process waits for the server to end the watches."""


@dataclass
class _Kind:
    """One kind in one namespace: where its watch resumes, and whether it must be listed (again) first."""

    namespace: str
    resource: Resource
    version: str = ""
    stale: bool = True
    field_selector: str | None = None


@dataclass
class WatchStats:
    """What one :func:`watch_workloads` call asked the server: lists, watches (rounds times kinds), events seen."""

    lists: int = 0
    watches: int = 0
    events: int = 0
    rounds: int = 0


@dataclass
class _Clock:
    """The API server's time as far as its answers prove it (a lower bound)."""

    known: datetime

    def saw(self, moment: datetime | None) -> None:
        if moment is not None and moment > self.known:
            self.known = moment


def settled(report: HealthReport) -> bool:
    """A rollout's verdict is known: healthy, or failed."""
    return report.healthy or report.failed


def regressed(report: HealthReport) -> bool:
    """A baking release's verdict is known: it is no longer healthy (a workload no longer ready, a crash loop)."""
    return not report.healthy


@dataclass
class _Watching:
    refs: list[ObjectRef]
    dyn: KubeClient
    judge: Judge
    until: datetime
    clock: _Clock
    decided: Callable[[HealthReport], bool] = settled
    kinds: list[_Kind] = field(default_factory=list)
    snapshot: Snapshot = field(default_factory=dict)
    stats: WatchStats = field(default_factory=WatchStats)

    def relist(self) -> None:
        for kind in self.kinds:
            if not kind.stale:
                continue
            with translate_errors(f"{kind.resource.kind} in namespace {kind.namespace}"):
                listing = list_with_time(self.dyn, kind.resource, kind.namespace, field_selector=kind.field_selector)
            self.stats.lists += 1
            self.clock.saw(listing.served_at)
            objects = self.snapshot.setdefault(kind.namespace, {})
            for key in [k for k in objects if k[0] == kind.resource.kind]:
                del objects[key]
            for item in listing.items:
                objects[(kind.resource.kind, item["metadata"]["name"])] = item
            kind.version, kind.stale = listing.resource_version, False

    def apply(self, kind: _Kind, event: str, obj: dict[str, Any]) -> None:
        self.stats.events += 1
        self.clock.saw(written_at(obj))
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            kind.version = str(version)
        if event == "BOOKMARK":
            return
        key = (kind.resource.kind, obj["metadata"]["name"])
        objects = self.snapshot.setdefault(kind.namespace, {})
        if event == "DELETED":
            objects.pop(key, None)
        else:
            objects[key] = obj

    def watch_events_where_pending(self) -> bool:
        """Add the cluster autoscaler's Events of each namespace that now has an unschedulable pod (listed before
        the next round); ``True`` when a kind was added."""
        watched = {k.namespace for k in self.kinds if k.resource.kind == EVENTS[1]}
        added = False
        for namespace, objects in self.snapshot.items():
            if namespace not in watched and unschedulable_pods(objects.values()):
                with translate_errors("the Event kind"):
                    resource = self.dyn.resources.get(api_version=EVENTS[0], kind=EVENTS[1])
                self.kinds.append(_Kind(namespace, resource, field_selector=AUTOSCALER_EVENTS))
                added = True
        return added

    def round_end(self) -> datetime:
        moment = next_judgement(self.refs, self.snapshot, now=self.clock.known, judge=self.judge)
        return min(moment, self.until) if moment is not None else self.until


def written_at(obj: dict[str, Any]) -> datetime | None:
    """The latest time the server stamped on ``obj`` (managedFields, conditions, container states): the object was
    written then or later, so the server's time is at least that."""
    found = [t for t in (_parse_time(v) for v in _stamps(obj)) if t is not None]
    return max(found) if found else None


_STAMP_KEYS = ("time", "lastTransitionTime", "lastUpdateTime", "lastProbeTime", "startedAt", "finishedAt")


def _stamps(obj: dict[str, Any]) -> Iterator[str]:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    entries: list[dict[str, Any]] = [*(meta.get("managedFields") or []), *(status.get("conditions") or [])]
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        entries += _state_details(container)
    for entry in entries:
        for key in _STAMP_KEYS:
            value = entry.get(key)
            if isinstance(value, str) and value:
                yield value


def _state_details(container: dict[str, Any]) -> list[dict[str, Any]]:
    """A container status's state and last state details (``running``/``terminated``/``waiting`` bodies)."""
    details: list[dict[str, Any]] = []
    for state in (container.get("state") or {}, container.get("lastState") or {}):
        details += [d for d in state.values() if isinstance(d, dict)]
    return details


def _parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def watch_workloads(
    api: ApiClient,
    workloads: Iterable[ObjectRef],
    *,
    now: datetime,
    until: datetime,
    judge: Judge,
    stats: WatchStats | None = None,
    decided: Callable[[HealthReport], bool] = settled,
) -> HealthReport:
    """The verdict on ``workloads`` as soon as it is known (``decided``: healthy or failed for a rollout,
    :func:`regressed` for a bake), else the picture at ``until`` (the server's time; ``now`` is a lower bound of
    it). ``checked_at`` of the report is the server's time as far as its answers prove it. One list per kind and
    namespace, then watches (see the module docstring)."""
    refs = validated_refs(workloads)
    dyn = dynamic_client(api)
    watching = _Watching(refs, dyn, judge, until, _Clock(now), decided, stats=stats or WatchStats())
    with translate_errors("the workloads' kinds"):
        watching.kinds = [
            _Kind(namespace, dyn.resources.get(api_version=api_version, kind=kind))
            for namespace, kinds in sorted(watched_kinds(refs).items())
            for api_version, kind in sorted(kinds)
        ]
    while True:
        watching.relist()
        if watching.watch_events_where_pending():
            watching.relist()
        report = assess(refs, watching.snapshot, now=watching.clock.known, judge=judge)
        if decided(report) or watching.clock.known >= until:
            break
        _round(watching)
    if watching.stats.rounds:  # time passed while watching: when the verdict came, by the server's clock
        with translate_errors("the API server's time"):
            watching.clock.saw(server_time(dyn))
    return report.model_copy(update={"checked_at": watching.clock.known})


def _decided(watching: _Watching, round_end: datetime) -> bool:
    """After an event: is the verdict known, or could a judgement change before this round ends?"""
    now = watching.clock.known
    report = assess(watching.refs, watching.snapshot, now=now, judge=watching.judge)
    if watching.decided(report):
        return True
    moment = next_judgement(watching.refs, watching.snapshot, now=now, judge=watching.judge)
    return moment is not None and moment < round_end - timedelta(seconds=1)


def _timeout(end: datetime, now: datetime) -> int:
    return max(1, math.ceil((end - now).total_seconds()))


def _open_all(watching: _Watching) -> tuple[list[WatchStream], datetime]:
    """Open one watch per kind, all ending at the round's end; the first answer's Date corrects the timeout. A kind
    whose resourceVersion expired is marked for a new list and no watch is left open (``[]``)."""
    end = watching.round_end()
    streams: list[WatchStream] = []
    for kind in watching.kinds:
        try:
            streams.append(_open(watching, kind, end, first=not streams))
        except WatchExpiredError:
            kind.stale = True
            for stream in streams:
                _discard(stream)
            return [], end
    return streams, end


def _open(watching: _Watching, kind: _Kind, end: datetime, *, first: bool) -> WatchStream:
    """A watch of ``kind`` until ``end``; the first of a round is opened again when its answer's Date shows the time
    it was asked with was stale by more than a second (its timeout would overshoot the round's end)."""
    timeout = _timeout(end, watching.clock.known)
    stream = _watch_one(watching, kind, timeout)
    if first and _timeout(end, watching.clock.known) < timeout - 1:
        _discard(stream)
        stream = _watch_one(watching, kind, _timeout(end, watching.clock.known))
    return stream


def _watch_one(watching: _Watching, kind: _Kind, timeout: int) -> WatchStream:
    with translate_errors(f"watch of {kind.resource.kind} in namespace {kind.namespace}"):
        stream = watch_objects(
            watching.dyn,
            kind.resource,
            kind.namespace,
            resource_version=kind.version,
            timeout_s=timeout,
            field_selector=kind.field_selector,
        )
    watching.stats.watches += 1
    watching.clock.saw(stream.opened_at)
    return stream


def _discard(stream: WatchStream) -> None:
    """Close a stream this round will not read and let its connection go."""
    stream.close()
    with contextlib.suppress(WatchExpiredError):
        for _ in stream:
            pass


_END = "END"
_EXPIRED = "EXPIRED"
_FAILED = "FAILED"


def _pump(index: int, stream: WatchStream, events: queue.Queue[tuple[int, str, Any]]) -> None:
    try:
        for event, obj in stream:
            events.put((index, event, obj))
    except WatchExpiredError:
        events.put((index, _EXPIRED, None))
    except Exception as e:  # noqa: BLE001 - handed to the round's thread, raised there
        events.put((index, _FAILED, e))
    else:
        events.put((index, _END, None))


def _round(watching: _Watching) -> None:
    """Watch every kind until the round's end (or a verdict, a moment that moved earlier, an expired watch)."""
    watching.stats.rounds += 1
    streams, end = _open_all(watching)
    if not streams:
        return  # a kind's resourceVersion expired: list it again first
    events: queue.Queue[tuple[int, str, Any]] = queue.Queue()
    threads = [
        threading.Thread(target=_pump, args=(i, s, events), name=f"watch-{i}", daemon=True)
        for i, s in enumerate(streams)
    ]
    for thread in threads:
        thread.start()
    failures: list[BaseException] = []
    open_streams = len(streams)
    wait = max(s.timeout_s for s in streams) + ROUND_SLACK_S
    while open_streams:
        try:
            index, event, obj = events.get(timeout=wait)
        except queue.Empty:
            break
        if _handle(watching, watching.kinds[index], streams[index], (event, obj), end=end, failures=failures):
            _close(streams)
        open_streams -= event in (_END, _EXPIRED, _FAILED)
    _close(streams)
    for thread in threads:
        thread.join(timeout=ROUND_SLACK_S)
    if failures:
        with translate_errors("watch of the workloads"):
            raise failures[0]


def _handle(
    watching: _Watching,
    kind: _Kind,
    stream: WatchStream,
    item: tuple[str, Any],
    *,
    end: datetime,
    failures: list[BaseException],
) -> bool:
    """One item a stream's reader handed over; whether the round should stop now."""
    event, obj = item
    if event == _END:
        if not stream.closed and stream.opened_at is not None:  # the server ended it: its timeout has passed
            watching.clock.saw(stream.opened_at + timedelta(seconds=stream.timeout_s))
        return False
    if event in (_EXPIRED, _FAILED):
        kind.stale = True
        if event == _FAILED:
            failures.append(obj)
        return True
    watching.apply(kind, event, obj)
    if kind.resource.kind == "Pod" and watching.watch_events_where_pending():
        return True  # a pod no node can run: end the round, list the autoscaler's Events, watch them too
    return _decided(watching, end)


def _close(streams: list[WatchStream]) -> None:
    for stream in streams:
        if not stream.closed:
            stream.close()
