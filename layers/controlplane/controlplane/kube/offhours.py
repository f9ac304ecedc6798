"""Off-hours scaling on the Kubernetes side: take inventory, scale workloads through ``/scale``, pin HPA bounds,
mark what sleeps, count Ready nodes.

How an HPA'd workload sleeps honestly: ``minReplicas`` cannot be 0 (``HPAScaleToZero`` is alpha), but the HPA
controller leaves a target at 0 replicas alone (``scale.Spec.Replicas == 0 && minReplicas != 0``: condition
``ScalingActive=False``, reason ``ScalingDisabled``). So the workload goes to 0 through its ``/scale`` subresource and
the HPA is left untouched; with a non-zero off-hours size its bounds are pinned to that size. Both are restored
exactly from the snapshot.

Field ownership: writes here are merge patches (``Update`` operations) under :data:`OFFHOURS_FIELD_MANAGER`.
Changing ``spec.replicas`` moves its ownership from the deploy's server-side apply manager to ours, so a deploy that
applies ``spec.replicas`` again (with ``force``) takes it back and sets its value: a deploy while asleep must
therefore apply the sleeping size (:func:`keep_asleep_objects`), and the next scale-up sets the
snapshot's size through ``/scale`` again. A value that is already right is not written (no ownership churn).

Every object that sleeps carries :data:`ASLEEP_ANNOTATION` (why it is at 0, since when, what it wakes to) so a person
running ``kubectl get -o yaml`` sees why; :data:`EXCLUDE_ANNOTATION` ``"true"`` on a workload or its namespace keeps
off-hours scaling away from it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controlplane.errors import KubernetesNotFoundError
from controlplane.kube.apply import FIELD_MANAGER
from controlplane.kube.client import ApiClient, KubeClient, dynamic_client, list_objects, request_json
from controlplane.kube.errors import translate_errors
from controlplane.models.kube import ObjectRef
from controlplane.models.offhours import (
    SCALABLE_KINDS,
    Exclusion,
    HpaSnapshot,
    Snapshot,
    WorkloadSnapshot,
)
from controlplane.models.offhours_config import OffhoursConfig

OFFHOURS_FIELD_MANAGER = f"{FIELD_MANAGER}-offhours"
ASLEEP_ANNOTATION = "offhours.synthetictrialstudio.io/asleep"
EXCLUDE_ANNOTATION = "offhours.synthetictrialstudio.io/exclude"
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
HPA_API_VERSION = "autoscaling/v2"
MERGE_PATCH = "application/merge-patch+json"
SLEEP_REASON = "off-hours scale-down: restored by the next scale-up (statemachines/offhours.asl.json)"

Excluded = Callable[[str, str], bool]
"""``(namespace, name) -> bool``: configuration says leave it alone (the namespace alone when name is ``""``)."""


@dataclass(frozen=True)
class LiveWorkload:
    ref: ObjectRef
    replicas: int
    annotations: Mapping[str, str]

    @property
    def asleep_note(self) -> dict[str, Any] | None:
        return _note(self.annotations)


@dataclass(frozen=True)
class LiveHpa:
    ref: ObjectRef
    target: ObjectRef
    min_replicas: int | None
    max_replicas: int
    annotations: Mapping[str, str]

    @property
    def asleep_note(self) -> dict[str, Any] | None:
        return _note(self.annotations)


@dataclass
class Inventory:
    """The environment's scalable objects, split into those off-hours scaling manages and those it must not touch."""

    workloads: list[LiveWorkload] = field(default_factory=list)
    hpas: list[LiveHpa] = field(default_factory=list)
    excluded: list[Exclusion] = field(default_factory=list)
    missing_namespaces: list[str] = field(default_factory=list)


def _note(annotations: Mapping[str, str]) -> dict[str, Any] | None:
    raw = annotations.get(ASLEEP_ANNOTATION)
    if not raw:
        return None
    try:
        note = json.loads(raw)
    except ValueError:
        return None
    return note if isinstance(note, dict) else None


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _opted_out(annotations: Mapping[str, str]) -> bool:
    return str(annotations.get(EXCLUDE_ANNOTATION, "")).strip().lower() == "true"


def inventory(api: ApiClient, namespaces: Iterable[str], *, excluded: Excluded) -> Inventory:
    """Deployments, StatefulSets and HPAs of ``namespaces``; exclusions by annotation (object or namespace) and
    by configuration are listed with their reason and nothing else is done with them.

    Requests: per namespace one GET of the namespace and one list per kind.
    """
    dyn = dynamic_client(api)
    found = Inventory()
    with translate_errors("off-hours inventory"):
        ns_resource = dyn.resources.get(api_version="v1", kind="Namespace")
        hpa_resource = dyn.resources.get(api_version=HPA_API_VERSION, kind="HorizontalPodAutoscaler")
        workload_resources = [dyn.resources.get(api_version="apps/v1", kind=k) for k in SCALABLE_KINDS]
    for namespace in dict.fromkeys(namespaces):
        if _namespace_left_alone(dyn, ns_resource, namespace, excluded, found):
            continue
        skipped = _take_workloads(dyn, workload_resources, namespace, excluded, found)
        _take_hpas(dyn, hpa_resource, namespace, excluded, skipped=skipped, found=found)
    return found


def _namespace_left_alone(dyn: KubeClient, resource: Any, namespace: str, excluded: Excluded, found: Inventory) -> bool:
    """Missing, opted out by annotation or excluded by configuration (recorded in ``found``)."""
    try:
        with translate_errors(f"Namespace/{namespace}"):
            _, ns = request_json(dyn, "GET", resource.path(name=namespace))
    except KubernetesNotFoundError:
        found.missing_namespaces.append(namespace)
        return True
    if _opted_out(_annotations(ns)):
        found.excluded.append(Exclusion(key=f"Namespace/{namespace}", reason=f"annotation {EXCLUDE_ANNOTATION}"))
        return True
    if excluded(namespace, ""):
        found.excluded.append(Exclusion(key=f"Namespace/{namespace}", reason="configuration (exclude)"))
        return True
    return False


def _take_workloads(
    dyn: KubeClient, resources: Iterable[Any], namespace: str, excluded: Excluded, found: Inventory
) -> set[str]:
    """The namespace's Deployments and StatefulSets into ``found``; returns the keys of the excluded ones."""
    skipped: set[str] = set()
    for resource in resources:
        with translate_errors(f"{resource.kind} in {namespace}"):
            items = list_objects(dyn, resource, namespace)
        for obj in items:
            ref = ObjectRef.of(obj)
            annotations = _annotations(obj)
            reason = _exclusion_reason(annotations, namespace, ref.name, excluded)
            if reason:
                found.excluded.append(Exclusion(key=ref.key, reason=reason))
                skipped.add(ref.key)
                continue
            replicas = (obj.get("spec") or {}).get("replicas")
            found.workloads.append(
                LiveWorkload(ref=ref, replicas=1 if replicas is None else int(replicas), annotations=annotations)
            )
    return skipped


def _take_hpas(
    dyn: KubeClient, resource: Any, namespace: str, excluded: Excluded, *, skipped: set[str], found: Inventory
) -> None:
    """The namespace's HPAs into ``found``; an HPA whose target is excluded is excluded with it."""
    with translate_errors(f"HorizontalPodAutoscaler in {namespace}"):
        hpas = list_objects(dyn, resource, namespace)
    for obj in hpas:
        ref = ObjectRef.of(obj)
        spec = obj.get("spec") or {}
        target = ObjectRef.scale_target_of(obj)
        annotations = _annotations(obj)
        reason = _exclusion_reason(annotations, namespace, ref.name, excluded)
        if reason is None and target.key in skipped:
            reason = f"its target {target.key} is excluded"
        if reason:
            found.excluded.append(Exclusion(key=ref.key, reason=reason))
            continue
        min_replicas = spec.get("minReplicas")
        found.hpas.append(
            LiveHpa(
                ref=ref,
                target=target,
                min_replicas=None if min_replicas is None else int(min_replicas),
                max_replicas=int(spec.get("maxReplicas") or 1),
                annotations=annotations,
            )
        )


def _exclusion_reason(annotations: Mapping[str, str], namespace: str, name: str, excluded: Excluded) -> str | None:
    if _opted_out(annotations):
        return f"annotation {EXCLUDE_ANNOTATION}"
    if excluded(namespace, name):
        return "configuration (exclude)"
    return None


def snapshot_entries(
    found: Inventory, *, sleep_replicas: int, release_id: str | None = None
) -> tuple[list[WorkloadSnapshot], list[HpaSnapshot]]:
    """What to record before sleeping. An object already marked asleep (an interrupted earlier scale-down) records
    the size its mark says it wakes to, never its sleeping size. ``release_id``: the release the ledger says runs
    (objects carry no release id)."""
    workloads = []
    for w in found.workloads:
        note = w.asleep_note
        replicas = int(note["replicas"]) if note and isinstance(note.get("replicas"), int) else w.replicas
        workloads.append(
            WorkloadSnapshot(
                ref=w.ref,
                replicas=replicas,
                sleep_replicas=min(sleep_replicas, replicas),
                release_id=release_id,
            )
        )
    targets = {w.ref.key for w in found.workloads}
    hpas = []
    for h in found.hpas:
        if h.target.key not in targets:
            continue  # an HPA of something we do not scale: leave it be
        note = h.asleep_note
        min_replicas, max_replicas = h.min_replicas, h.max_replicas
        if note and isinstance(note.get("maxReplicas"), int):
            min_replicas = note.get("minReplicas") if isinstance(note.get("minReplicas"), int) else None
            max_replicas = int(note["maxReplicas"])
        pinned = sleep_replicas if sleep_replicas > 0 else None
        hpas.append(
            HpaSnapshot(
                ref=h.ref,
                target=h.target,
                min_replicas=min_replicas,
                max_replicas=max_replicas,
                sleep_min=pinned,
                sleep_max=pinned,
            )
        )
    return workloads, hpas


# ------------------------------------------------------------------------------------------------------- writes
def _resource(dyn: KubeClient, ref: ObjectRef) -> Any:
    return dyn.resources.get(api_version=ref.api_version, kind=ref.kind)


def _patch(dyn: KubeClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    _, result = request_json(
        dyn,
        "PATCH",
        path,
        body=body,
        content_type=MERGE_PATCH,
        query_params=[("fieldManager", OFFHOURS_FIELD_MANAGER)],
    )
    return result


def get_replicas(api: ApiClient, ref: ObjectRef) -> int:
    """``spec.replicas`` as the ``/scale`` subresource reports it."""
    dyn = dynamic_client(api)
    with translate_errors(ref):
        _, scale = request_json(dyn, "GET", _resource(dyn, ref).path(name=ref.name, namespace=ref.namespace) + "/scale")
    return int((scale.get("spec") or {}).get("replicas") or 0)


def scale_workload(api: ApiClient, ref: ObjectRef, replicas: int, *, note: Mapping[str, Any] | None) -> bool:
    """Mark (``note``) or unmark (``None``) ``ref`` and set its replicas through ``/scale``; ``True`` if anything
    changed. Sleeping marks first, then scales; waking scales first, then unmarks: the mark is there whenever the
    object is below its snapshot size."""
    dyn = dynamic_client(api)
    with translate_errors(ref):
        resource = _resource(dyn, ref)
        path = resource.path(name=ref.name, namespace=ref.namespace)
        _, obj = request_json(dyn, "GET", path)
        annotations = _annotations(obj)
        wanted_note = json.dumps(dict(note), sort_keys=True) if note is not None else None
        changed = False
        if wanted_note is not None and annotations.get(ASLEEP_ANNOTATION) != wanted_note:
            _patch(dyn, path, {"metadata": {"annotations": {ASLEEP_ANNOTATION: wanted_note}}})
            changed = True
        current = (obj.get("spec") or {}).get("replicas")
        if current is None or int(current) != replicas:
            _patch(dyn, path + "/scale", {"spec": {"replicas": replicas}})
            changed = True
        if wanted_note is None and ASLEEP_ANNOTATION in annotations:
            _patch(dyn, path, {"metadata": {"annotations": {ASLEEP_ANNOTATION: None}}})
            changed = True
    return changed


def set_hpa_bounds(
    api: ApiClient, ref: ObjectRef, *, min_replicas: int | None, max_replicas: int, note: Mapping[str, Any] | None
) -> bool:
    """Set an HPA's bounds exactly (``min_replicas=None`` unsets the field) and mark or unmark it."""
    dyn = dynamic_client(api)
    with translate_errors(ref):
        resource = _resource(dyn, ref)
        path = resource.path(name=ref.name, namespace=ref.namespace)
        _, obj = request_json(dyn, "GET", path)
        spec = obj.get("spec") or {}
        annotations = _annotations(obj)
        body: dict[str, Any] = {}
        if spec.get("minReplicas") != min_replicas or spec.get("maxReplicas") != max_replicas:
            body["spec"] = {"minReplicas": min_replicas, "maxReplicas": max_replicas}
        wanted_note = json.dumps(dict(note), sort_keys=True) if note is not None else None
        if annotations.get(ASLEEP_ANNOTATION) != wanted_note:
            body["metadata"] = {"annotations": {ASLEEP_ANNOTATION: wanted_note}}
        if not body:
            return False
        _patch(dyn, path, body)
    return True


def hpa_bounds(api: ApiClient, ref: ObjectRef) -> tuple[int | None, int]:
    dyn = dynamic_client(api)
    with translate_errors(ref):
        _, obj = request_json(dyn, "GET", _resource(dyn, ref).path(name=ref.name, namespace=ref.namespace))
    spec = obj.get("spec") or {}
    return spec.get("minReplicas"), int(spec.get("maxReplicas") or 0)


# -------------------------------------------------------------------------------------------------------- nodes
def ready_nodes(api: ApiClient) -> dict[str, int]:
    """Ready, schedulable nodes per managed node group (label ``eks.amazonaws.com/nodegroup``)."""
    dyn = dynamic_client(api)
    counts: dict[str, int] = {}
    with translate_errors("Nodes"):
        nodes = list_objects(dyn, dyn.resources.get(api_version="v1", kind="Node"), None)
    for node in nodes:
        group = ((node.get("metadata") or {}).get("labels") or {}).get(NODEGROUP_LABEL)
        if not group or (node.get("spec") or {}).get("unschedulable"):
            continue
        conditions = (node.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            counts[group] = counts.get(group, 0) + 1
    return counts


# ------------------------------------------------------------------------------------------------ deploy while asleep
def keep_asleep_objects(
    objects: Sequence[Mapping[str, Any]], snapshot: Snapshot, config: OffhoursConfig, *, release_id: str, now: datetime
) -> tuple[list[dict[str, Any]], Snapshot]:
    """The release's objects as they must be applied while asleep, and the snapshot rebased on the release.

    Workloads keep their sleeping size (with the asleep mark); the snapshot records the release's replicas and HPA
    bounds, so the next scale-up brings up the new release at the size it asks for. A workload an HPA scales has no
    ``spec.replicas`` in the release (the HPA owns it): it wakes to the size it slept from (the snapshot's), within
    the release's HPA bounds, or to the HPA's minimum if it is new. Excluded objects (by the snapshot, configuration
    or annotation) are applied as rendered.
    """
    excluded = {e.key for e in snapshot.excluded}
    workloads = {w.ref.key: w for w in snapshot.workloads}
    hpas = {h.ref.key: h for h in snapshot.hpas}
    bounds = _hpa_bounds_by_target(objects)
    since = {"since": now.isoformat(), "by": release_id, "why": SLEEP_REASON}
    out: list[dict[str, Any]] = []
    for obj in objects:
        body = copy.deepcopy(dict(obj))
        ref = _sleeping_ref(body, excluded, config)
        if ref is not None and ref.kind in SCALABLE_KINDS:
            workload = _sleep_workload(
                body, ref, workloads.get(ref.key), bounds.get(ref.key), config=config, release_id=release_id
            )
            workloads[ref.key] = workload
            _mark(body, {"replicas": workload.replicas, **since})
        elif ref is not None:
            hpa = _sleep_hpa(body, ref, config)
            hpas[ref.key] = hpa
            _mark(body, {"minReplicas": hpa.min_replicas, "maxReplicas": hpa.max_replicas, **since})
        out.append(body)
    rebased = snapshot.model_copy(
        update={
            "workloads": tuple(workloads[k] for k in sorted(workloads)),
            "hpas": tuple(hpas[k] for k in sorted(hpas)),
            "release_id": release_id,
        }
    )
    return out, rebased


def _sleeping_ref(body: Mapping[str, Any], excluded: set[str], config: OffhoursConfig) -> ObjectRef | None:
    """The reference of a workload or HPA that sleeps; ``None`` for anything applied as rendered."""
    if body.get("kind") not in (*SCALABLE_KINDS, "HorizontalPodAutoscaler"):
        return None
    ref = ObjectRef.of(body)
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    skip = (
        ref.key in excluded
        or ref.namespace not in config.namespaces
        or config.object_excluded(str(ref.namespace), ref.name)
        or str(annotations.get(EXCLUDE_ANNOTATION, "")).lower() == "true"
    )
    return None if skip else ref


def _sleep_workload(
    body: dict[str, Any],
    ref: ObjectRef,
    before: WorkloadSnapshot | None,
    bounds: tuple[int, int] | None,
    *,
    config: OffhoursConfig,
    release_id: str,
) -> WorkloadSnapshot:
    """Set the workload's sleeping size; what it wakes to (the release's size) goes into the snapshot."""
    spec = body.setdefault("spec", {})
    rendered = _wake_size(spec, before, bounds)
    sleeping = min(config.sleep_replicas, rendered)
    spec["replicas"] = sleeping
    return WorkloadSnapshot(ref=ref, replicas=rendered, sleep_replicas=sleeping, release_id=release_id)


def _sleep_hpa(body: dict[str, Any], ref: ObjectRef, config: OffhoursConfig) -> HpaSnapshot:
    """Pin the HPA's bounds to the off-hours size (when it is not 0); its release bounds go into the snapshot."""
    spec = body.setdefault("spec", {})
    min_replicas, max_replicas = spec.get("minReplicas"), int(spec.get("maxReplicas") or 1)
    pinned = config.sleep_replicas if config.sleep_replicas > 0 else None
    if pinned is not None:
        spec["minReplicas"] = spec["maxReplicas"] = pinned
    return HpaSnapshot(
        ref=ref,
        target=ObjectRef.scale_target_of(body),
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        sleep_min=pinned,
        sleep_max=pinned,
    )


def _mark(body: dict[str, Any], wakes_to: Mapping[str, Any]) -> None:
    body.setdefault("metadata", {}).setdefault("annotations", {})[ASLEEP_ANNOTATION] = _json(wakes_to)


def _hpa_bounds_by_target(objects: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """``ObjectRef.key`` of each workload an HPA among ``objects`` scales -> that HPA's (min, max) replicas."""
    out: dict[str, tuple[int, int]] = {}
    for obj in objects:
        if obj.get("kind") != "HorizontalPodAutoscaler":
            continue
        spec = obj.get("spec") or {}
        ref = ObjectRef.scale_target_of(obj)
        low = int(spec.get("minReplicas") or 1)
        out[ref.key] = (low, max(low, int(spec.get("maxReplicas") or low)))
    return out


def _wake_size(spec: Mapping[str, Any], before: WorkloadSnapshot | None, bounds: tuple[int, int] | None) -> int:
    """The size a workload of the release wakes to: its ``spec.replicas`` if it has one; else (its HPA owns the
    count) the snapshot's size clamped to the HPA's bounds (0 stays 0: the HPA leaves a workload at 0 alone), or
    the HPA's minimum for a workload the snapshot does not know."""
    if "replicas" in spec or bounds is None:
        return int(spec.get("replicas", 1))
    low, high = bounds
    if before is None:
        return low
    return 0 if before.replicas == 0 else min(max(before.replicas, low), high)


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), sort_keys=True)
