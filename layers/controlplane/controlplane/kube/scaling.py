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
therefore apply the sleeping size (``controlplane.steps.offhours.keep_asleep``), and the next scale-up sets the
snapshot's size through ``/scale`` again. A value that is already right is not written (no ownership churn).

Every object that sleeps carries :data:`ASLEEP_ANNOTATION` (why it is at 0, since when, what it wakes to) so a person
running ``kubectl get -o yaml`` sees why; :data:`EXCLUDE_ANNOTATION` ``"true"`` on a workload or its namespace keeps
off-hours scaling away from it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.dynamic import DynamicClient

from controlplane.errors import KubernetesNotFoundError
from controlplane.kube.apply import FIELD_MANAGER
from controlplane.kube.client import dynamic_client, list_objects, request_json
from controlplane.kube.diff import RELEASE_ANNOTATION
from controlplane.kube.errors import translate_errors
from controlplane.models.kube import ObjectRef
from controlplane.models.scaling import SCALABLE_KINDS, Exclusion, HpaSnapshot, WorkloadSnapshot

OFFHOURS_FIELD_MANAGER = f"{FIELD_MANAGER}-offhours"
ASLEEP_ANNOTATION = "offhours.synthetictrialstudio.io/asleep"
EXCLUDE_ANNOTATION = "offhours.synthetictrialstudio.io/exclude"
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
HPA_API_VERSION = "autoscaling/v2"
MERGE_PATCH = "application/merge-patch+json"

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
        try:
            with translate_errors(f"Namespace/{namespace}"):
                _, ns = request_json(dyn, "GET", ns_resource.path(name=namespace))
        except KubernetesNotFoundError:
            found.missing_namespaces.append(namespace)
            continue
        if _opted_out(_annotations(ns)):
            found.excluded.append(Exclusion(key=f"Namespace/{namespace}", reason=f"annotation {EXCLUDE_ANNOTATION}"))
            continue
        if excluded(namespace, ""):
            found.excluded.append(Exclusion(key=f"Namespace/{namespace}", reason="configuration (exclude)"))
            continue
        skipped: set[str] = set()
        for resource in workload_resources:
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
        with translate_errors(f"HorizontalPodAutoscaler in {namespace}"):
            hpas = list_objects(dyn, hpa_resource, namespace)
        for obj in hpas:
            ref = ObjectRef.of(obj)
            spec = obj.get("spec") or {}
            target_spec = spec.get("scaleTargetRef") or {}
            target = ObjectRef(
                api_version=str(target_spec.get("apiVersion") or "apps/v1"),
                kind=str(target_spec.get("kind")),
                namespace=namespace,
                name=str(target_spec.get("name")),
            )
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
    return found


def _exclusion_reason(annotations: Mapping[str, str], namespace: str, name: str, excluded: Excluded) -> str | None:
    if _opted_out(annotations):
        return f"annotation {EXCLUDE_ANNOTATION}"
    if excluded(namespace, name):
        return "configuration (exclude)"
    return None


def snapshot_entries(found: Inventory, *, sleep_replicas: int) -> tuple[list[WorkloadSnapshot], list[HpaSnapshot]]:
    """What to record before sleeping. An object already marked asleep (an interrupted earlier scale-down) records
    the size its mark says it wakes to, never its sleeping size."""
    workloads = []
    for w in found.workloads:
        note = w.asleep_note
        replicas = int(note["replicas"]) if note and isinstance(note.get("replicas"), int) else w.replicas
        workloads.append(
            WorkloadSnapshot(
                ref=w.ref,
                replicas=replicas,
                sleep_replicas=min(sleep_replicas, replicas),
                release_id=w.annotations.get(RELEASE_ANNOTATION),
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
def _resource(dyn: DynamicClient, ref: ObjectRef) -> Any:
    return dyn.resources.get(api_version=ref.api_version, kind=ref.kind)


def _patch(dyn: DynamicClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
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
