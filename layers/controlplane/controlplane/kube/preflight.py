"""Preflight: before the first write of a release, ask the API server whether this identity may do every request
the release needs (``SelfSubjectAccessReview``), and fail naming each missing permission.

What a release needs, per object: ``create`` and ``patch`` (server-side apply creates what is missing and patches
the rest; kube-apiserver authorizes an apply that creates with ``create`` too, on the object's name), ``list`` of
its type in its namespace (apply and prune find what the control plane owns by listing), and ``delete`` when the
apply prunes (not for the kinds prune spares: namespaces, volume claims, CRDs); and ``get``, ``create``, ``patch`` of
the Secret holding an add-on's webhook certificate (``controlplane.kube.webhook_certs``); and ``list`` and ``watch``
of what the health and bake steps read in each namespace with a workload (:data:`HEALTH_READS`: the workloads'
kinds, their ReplicaSets and Pods, and the Events the verdict reads for pods waiting on the cluster autoscaler), so a
missing watch is named before anything is written, not when CheckHealth opens its first watch. A namespaced
permission needed for several names is asked for the whole namespace first and, only if that is denied, for each
object's name (RBAC may grant by ``resourceNames``, as the shipped RBAC does in kube-system); for one name only, for
the name (a namespace-wide grant answers it as well); a cluster-scoped one is asked for the name. One review per
distinct question.

A redeploy that knows which objects it will send (``sending``: the ledger's record and a trusted drift check say
the others are unchanged, :func:`controlplane.steps.apply.deploy_writes`) asks the write permissions of those only,
and ``delete`` of exactly what its prune will delete (``deleting``); ``list``/``watch`` for the health steps and the
webhook certificate's Secret are asked for the whole release as before: CheckHealth and Bake watch only the release's
own workloads, but CheckAddons reads the add-ons' namespaces, so every namespace with a workload is still read.

Kinds whose CustomResourceDefinition is part of the same release (and so may not be served yet) are resolved from
that CRD; every other kind from discovery.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from controlplane.errors import PreflightForbiddenError
from controlplane.kube.apply import PROTECTED_KINDS
from controlplane.kube.client import ApiClient, KubeClient, Resource, dynamic_client, request_json
from controlplane.kube.errors import translate_errors
from controlplane.kube.health import STATUS_VIEWERS, health_reads
from controlplane.kube.webhook_certs import certificate_secrets
from controlplane.models.kube import ObjectRef
from controlplane.observability import logger

SSAR_PATH: Final = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
APPLY_VERBS: Final = ("create", "patch")
HEALTH_VERBS: Final = ("list", "watch")


@dataclass(frozen=True, order=True)
class Permission:
    """One request the release needs: ``verb`` on ``resource`` (plural) of ``group``, in ``namespace`` ("" for a
    cluster-scoped resource), on ``name`` ("" for every object)."""

    verb: str
    group: str
    resource: str
    namespace: str = ""
    name: str = ""

    def __str__(self) -> str:
        what = f"{self.resource}.{self.group}" if self.group else self.resource
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.verb} {what}{'/' + self.name if self.name else ''}{where}"

    def attributes(self) -> dict[str, str]:
        attrs = {"verb": self.verb, "group": self.group, "resource": self.resource}
        if self.namespace:
            attrs["namespace"] = self.namespace
        if self.name:
            attrs["name"] = self.name
        return attrs


def _crd_resources(objects: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Resource]:
    """(group, kind) -> resource, for the kinds the release's CustomResourceDefinitions define."""
    found: dict[tuple[str, str], Resource] = {}
    for obj in objects:
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        if obj.get("kind") == "CustomResourceDefinition" and names.get("kind") and names.get("plural"):
            found[(str(spec.get("group")), str(names["kind"]))] = Resource(
                str(spec.get("group")), "", str(names["kind"]), str(names["plural"]), spec.get("scope") == "Namespaced"
            )
    return found


def _resource(dyn: KubeClient, api_version: str, kind: str, crds: Mapping[tuple[str, str], Resource]) -> Resource:
    defined = crds.get((api_version.rpartition("/")[0], kind))
    if defined is not None:
        return defined
    with translate_errors(f"{kind} ({api_version})"):
        return dyn.resources.get(api_version=api_version, kind=kind)


def _allowed(dyn: KubeClient, permission: Permission) -> bool:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": permission.attributes()},
    }
    with translate_errors("SelfSubjectAccessReview"):
        _, review = request_json(dyn, "POST", SSAR_PATH, body=body)
    return bool((review.get("status") or {}).get("allowed"))


def check_permissions(
    api: ApiClient,
    objects: Sequence[Mapping[str, Any]],
    *,
    prune: bool,
    who: str,
    sending: Sequence[Mapping[str, Any]] | None = None,
    deleting: Sequence[ObjectRef] = (),
) -> int:
    """Raise :class:`PreflightForbiddenError` naming every permission the release needs that ``who`` (the identity
    ``api`` authenticates as) lacks; return the number of reviews asked. Writes nothing. ``sending`` / ``deleting``:
    see :func:`questions`."""
    dyn = dynamic_client(api)
    missing, asked = _missing(dyn, questions(dyn, objects, prune=prune, sending=sending, deleting=deleting))
    logger.info("preflight", extra={"reviews": asked, "missing": [str(p) for p in missing]})
    if missing:
        raise PreflightForbiddenError(
            f"{who} lacks {len(missing)} permission(s) the release needs (asked the API server; nothing was "
            "written): " + "; ".join(str(p) for p in missing)
        )
    return asked


def questions(
    dyn: KubeClient,
    objects: Sequence[Mapping[str, Any]],
    *,
    prune: bool,
    sending: Sequence[Mapping[str, Any]] | None = None,
    deleting: Sequence[ObjectRef] = (),
) -> list[Permission]:
    """Every permission the release needs, by name where it names an object (see the module docstring).

    ``sending`` (default: every object): the objects the deploy will write; given, ``prune`` is ignored and
    ``delete`` is asked for ``deleting`` (what the prune will delete) instead of every object."""
    crds = _crd_resources(objects)
    verbs = (*APPLY_VERBS, "delete") if prune and sending is None else APPLY_VERBS
    needed: dict[Permission, None] = {}
    for obj in objects if sending is None else sending:
        needed.update(dict.fromkeys(_write_questions(dyn, ObjectRef.of(obj), verbs, crds)))
    for ref in deleting:
        resource = _resource(dyn, ref.api_version, ref.kind, crds)
        namespace = (ref.namespace or "") if resource.namespaced else ""
        needed[Permission("delete", resource.group, resource.name, namespace, ref.name)] = None
    for namespace, secret in certificate_secrets(objects):  # an add-on's webhook certificate, kept by us
        for verb in ("get", *APPLY_VERBS):
            needed[Permission(verb, "", "secrets", namespace, secret)] = None
    workloads = [ObjectRef.of(o) for o in objects if o.get("kind") in STATUS_VIEWERS]
    for namespace, kinds in health_reads(workloads).items():  # what CheckHealth and Bake list and watch
        for api_version, kind in sorted(kinds):
            resource = _resource(dyn, api_version, kind, crds)
            for verb in HEALTH_VERBS:
                needed[Permission(verb, resource.group, resource.name, namespace)] = None
    return sorted(needed)


def _write_questions(
    dyn: KubeClient, ref: ObjectRef, verbs: Sequence[str], crds: Mapping[tuple[str, str], Resource]
) -> list[Permission]:
    """``list`` of the object's type in its namespace (apply and prune list what we own), and ``verbs`` on it."""
    resource = _resource(dyn, ref.api_version, ref.kind, crds)
    namespace = (ref.namespace or "") if resource.namespaced else ""
    asked = [Permission("list", resource.group, resource.name, namespace)]
    for verb in verbs:
        if verb == "delete" and ref.kind in PROTECTED_KINDS:
            continue  # prune spares them (unless an operator allows it by name, then asked for at delete)
        asked.append(Permission(verb, resource.group, resource.name, namespace, ref.name))
    return asked


def _wide(permission: Permission) -> Permission:
    return Permission(permission.verb, permission.group, permission.resource, permission.namespace)


def _missing(dyn: KubeClient, asked_for: Iterable[Permission]) -> tuple[list[Permission], int]:
    """The permissions the server denies, and how many reviews that took. Named permissions in a namespace that share
    verb and resource with another name are first asked for the whole namespace (one review answers every name);
    only a no there asks for each name. A lone name is asked for directly (a namespace-wide grant answers it too)."""
    asked_for = list(asked_for)
    names = Counter(_wide(p) for p in asked_for if p.namespace and p.name)
    namespace_wide: dict[Permission, bool] = {}
    missing: list[Permission] = []
    asked = 0
    for permission in asked_for:
        if permission.namespace and permission.name and names[_wide(permission)] > 1:
            wide = _wide(permission)
            if wide not in namespace_wide:
                namespace_wide[wide] = _allowed(dyn, wide)
                asked += 1
            if namespace_wide[wide]:
                continue
        asked += 1
        if not _allowed(dyn, permission):
            missing.append(permission)
    return missing, asked
