"""Server-side apply of a release's objects, its dry-run diff, and pruning what left the release.

Every object sent goes through one ``PATCH`` (``application/apply-patch+yaml``) with the one field manager of the
control plane. To tell ``created`` / ``configured`` / ``unchanged`` apart without a ``GET`` per object, the objects
we own of each type and namespace are listed once (label selector on :data:`OWNERSHIP_LABEL`) just before the
first object of that type is applied; an object is ``unchanged`` when its resourceVersion did not move (or, for
servers that write no-op applies, its content did not change), ``created`` when the server answers 201.

Validation and ordering of the objects are the caller's job (``controlplane.validate``, ``controlplane.render``).

Handing ``spec.replicas`` over to an HPA: a workload an HPA scales is applied without ``spec.replicas``. If an earlier
apply of ours still owns the field (nothing else has written it since), leaving it out would make the server remove it
and default it to 1 until the HPA scales back up. So before such an apply, :data:`HANDOVER_FIELD_MANAGER` applies the
live value alone, without force: it becomes a co-owner, our apply then drops the field without the value changing,
and the temporary manager's entry disappears the first time the HPA (or anything else) writes the field. A conflict
means another manager owns it already: nothing to hand over. A dry run applies the live value instead (what the
handover keeps). This is the server-side apply ownership transfer of the Kubernetes documentation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from controlplane import platform
from controlplane.errors import KubernetesNotFoundError, KubernetesTransientError, ManifestValidationError
from controlplane.kube.client import ApiClient, KubeClient, Resource, dynamic_client, list_objects, request_json
from controlplane.kube.diff import field_changes, normalized
from controlplane.kube.errors import ApiError, ResourceNotFoundError, translate_errors
from controlplane.models.kube import (
    AppliedObject,
    ApplyAction,
    ApplyResult,
    ObjectDiff,
    ObjectRef,
    canonical_sha256,
)
from controlplane.observability import logger

FIELD_MANAGER = "synthetictrialstudio-controlplane"
HANDOVER_FIELD_MANAGER = f"{FIELD_MANAGER}-handover-to-hpa"
CERTIFICATE_ANNOTATION: Final = "synthetictrialstudio.io/webhook-certificate"
"""On a webhook configuration: ``<namespace>/<secret>`` holding its serving certificate, which the control plane
keeps and whose CA it sets as every webhook's ``caBundle`` when applying (:mod:`controlplane.kube.webhook_certs`)."""
WEBHOOK_KINDS: Final = frozenset({"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"})
REPLICA_KINDS = frozenset({"Deployment", "StatefulSet"})
OWNERSHIP_LABEL = platform.LABEL_MANAGED_BY
OWNERSHIP_VALUE = platform.MANAGED_BY
OWNERSHIP_SELECTOR = f"{OWNERSHIP_LABEL}={OWNERSHIP_VALUE}"
# Deleting these loses data or everything inside them (a CRD takes every object of its kind with it): pruning spares
# them unless explicitly allowed.
PROTECTED_KINDS = frozenset({"Namespace", "PersistentVolumeClaim", "CustomResourceDefinition"})

__all__ = [
    "FIELD_MANAGER",
    "HANDOVER_FIELD_MANAGER",
    "OWNERSHIP_LABEL",
    "OWNERSHIP_VALUE",
    "PROTECTED_KINDS",
    "apply_and_prune",
    "apply_objects",
    "change_since_applied",
    "diff_objects",
    "live_owned_objects",
    "prune",
    "unchanged_by_record",
]


def apply_objects(
    api: ApiClient,
    objects: Sequence[Mapping[str, Any]],
    *,
    release_id: str,
    dry_run: bool = False,
    force: bool = True,
    before_first_write: Callable[[], None] | None = None,
    last_applied: Mapping[str, AppliedObject] | None = None,
    drifted: Collection[str] | None = None,
    verified: Collection[str] = (),
) -> ApplyResult:
    """Server-side apply ``objects`` in the given order; ``release_id`` names the apply in logs and the result.

    ``last_applied`` (by ``ObjectRef.key``) is what the previous apply to this cluster reported (``{}``: nothing):
    an object whose body hashes to the recorded ``sha256`` and which nobody changed since (see :func:`_unchanged`)
    is not sent again and is reported ``unchanged``; the others are classified from the server's answer (201
    created, the recorded resourceVersion unmoved unchanged, else configured) without listing anything. Without
    it (``None``) every object is sent, classified against the owned objects of its type listed first.

    ``drifted`` (by ``ObjectRef.key``): instead of checking the live objects for changes (one list per type and
    namespace), trust the record except for these keys, which are sent again. The caller passes what a recent drift
    check found (``controlplane.steps.apply.trusted_drift``): a 1-service redeploy then sends one object and reads
    nothing else. ``verified`` (by key): without ``drifted``, objects whose live state the caller checked moments
    ago against this record (InstallAddons, the add-ons, in the same deploy): trusted to the record, not listed.

    ``before_first_write`` is called once, after the API server first answered and before the first request that
    can change the cluster (so a caller can record that the cluster is about to change; an outage from the start
    leaves it uncalled). It is called even when nothing needs writing (the server answered).

    ``force`` takes over fields another manager owns (the control plane is the source of truth); without it an
    ownership conflict raises ``KubernetesConflictError`` naming the fields. ``dry_run`` asks the server to
    validate and default without persisting (``dryRun=All``); actions then say what applying would do.
    Stops at the first failure (raised as a :mod:`controlplane.errors` type); re-running is safe.
    """
    _check_owned(objects)
    dyn = dynamic_client(api)
    return _apply(
        dyn,
        _LiveIndex(dyn),
        objects,
        release_id=release_id,
        dry_run=dry_run,
        force=force,
        before_first_write=before_first_write,
        last_applied=last_applied,
        drifted=drifted,
        verified=verified,
    )


def apply_and_prune(
    api: ApiClient,
    objects: Sequence[Mapping[str, Any]],
    *,
    release_id: str,
    namespaces: Iterable[str],
    kinds: Iterable[tuple[str, str]],
    allow: Iterable[str] = frozenset(),
    force: bool = True,
    before_first_write: Callable[[], None] | None = None,
    last_applied: Mapping[str, AppliedObject] | None = None,
    drifted: Collection[str] | None = None,
    verified: Collection[str] = (),
    kept: Iterable[ObjectRef] = (),
) -> tuple[ApplyResult, list[ObjectRef]]:
    """:func:`apply_objects`, then delete what left the release.

    With a recorded ``last_applied`` the candidates are the recorded objects the release no longer has (deleted by
    the uid recorded with them: no list request at all). Without one (``None`` or ``{}``), the owned objects of
    ``kinds`` in ``namespaces`` are the candidates, from the listing made while applying where there was one.
    ``kept``: objects of the release the caller leaves out of ``objects`` (applied by an earlier step of the same
    deploy), never pruned.
    """
    _check_owned(objects)
    dyn = dynamic_client(api)
    live = _LiveIndex(dyn)
    result = _apply(
        dyn,
        live,
        objects,
        release_id=release_id,
        dry_run=False,
        force=force,
        before_first_write=before_first_write,
        last_applied=last_applied,
        drifted=drifted,
        verified=verified,
    )
    keep = [*(ObjectRef.of(o) for o in objects), *kept]
    if not last_applied:
        candidates = live.owned(namespaces, kinds)
    else:
        candidates = [_recorded_stub(recorded) for recorded in last_applied.values()]
    deleted = _delete_unkept(dyn, candidates, keep=keep, allow=allow)
    return result, deleted


def _recorded_stub(recorded: AppliedObject) -> dict[str, Any]:
    """A recorded object as a prune candidate: its identity and the uid it had when we applied it."""
    ref = recorded.ref
    meta: dict[str, Any] = {"name": ref.name, "uid": recorded.uid}
    if ref.namespace:
        meta["namespace"] = ref.namespace
    return {"apiVersion": ref.api_version, "kind": ref.kind, "metadata": meta}


def _apply(
    dyn: KubeClient,
    live: _LiveIndex,
    objects: Sequence[Mapping[str, Any]],
    *,
    release_id: str,
    dry_run: bool,
    force: bool,
    before_first_write: Callable[[], None] | None = None,
    last_applied: Mapping[str, AppliedObject] | None = None,
    drifted: Collection[str] | None = None,
    verified: Collection[str] = (),
) -> ApplyResult:
    crd_kinds = _kinds_defined_by_crds(objects)
    dyn.resources.hint(_crd_resources(objects))
    bodies = [(ObjectRef.of(o), copy.deepcopy(dict(o))) for o in objects]
    recorded = {} if last_applied is None or dry_run else last_applied
    skipped = _skipped(dyn, live, bodies, recorded, crd_kinds, drifted=drifted, verified=verified)
    to_send = [(ref, body) for ref, body in bodies if ref.key not in skipped]
    if before_first_write is not None and not dry_run:
        _before_writing(dyn, live, to_send, recorded, crd_kinds, hook=before_first_write)
    applied: list[AppliedObject] = []
    for ref, body in bodies:
        if ref.key in skipped:
            applied.append(skipped[ref.key])
            continue
        applied.append(
            _apply_one(
                dyn,
                live,
                ref,
                body,
                recorded.get(ref.key),
                crd_kinds=crd_kinds,
                dry_run=dry_run,
                force=force,
                listing=dry_run or last_applied is None,
            )
        )
    result = ApplyResult(release_id=release_id, dry_run=dry_run, objects=tuple(applied))
    logger.info(
        "applied release objects",
        extra={
            "release_id": release_id,
            "dry_run": dry_run,
            # "created" is a LogRecord attribute: logging refuses it as an extra key.
            "objects_created": len(result.refs("created")),
            "objects_configured": len(result.refs("configured")),
            "objects_unchanged": len(result.refs("unchanged")),
            "objects_sent": len(to_send),
        },
    )
    return result


def _skipped(
    dyn: KubeClient,
    live: _LiveIndex,
    bodies: Sequence[tuple[ObjectRef, dict[str, Any]]],
    recorded: Mapping[str, AppliedObject],
    crd_kinds: frozenset[tuple[str, str]],
    *,
    drifted: Collection[str] | None,
    verified: Collection[str],
) -> dict[str, AppliedObject]:
    """The objects not to send: by the record and ``drifted`` alone, or (no ``drifted``) by the record and their
    live objects (:func:`_unchanged`), except ``verified`` ones, by the record alone."""
    if drifted is not None:
        return _unchanged_by_record(bodies, recorded, drifted)
    trusted = set(verified)
    skipped = _unchanged(dyn, live, [b for b in bodies if b[0].key not in trusted], recorded, crd_kinds)
    return skipped | _unchanged_by_record([b for b in bodies if b[0].key in trusted], recorded, ())


def _before_writing(
    dyn: KubeClient,
    live: _LiveIndex,
    to_send: Sequence[tuple[ObjectRef, dict[str, Any]]],
    recorded: Mapping[str, AppliedObject],
    crd_kinds: frozenset[tuple[str, str]],
    *,
    hook: Callable[[], None],
) -> None:
    """Call ``hook`` once the server answered and before anything is written (also when nothing will be).

    Without an answer yet (nothing listed for the drift check), one read first: a type the apply needs listed anyway
    if there is one (:func:`_needs_live`), else the first object's.
    """
    if not live.answered and to_send:
        needing = [r for r, b in to_send if _needs_live(b, recorded.get(r.key), live, r)]
        _probe(dyn, live, (needing or [to_send[0][0]])[0], crd_kinds)
    if live.answered:
        hook()


def _apply_one(
    dyn: KubeClient,
    live: _LiveIndex,
    ref: ObjectRef,
    body: dict[str, Any],
    recorded: AppliedObject | None,
    *,
    crd_kinds: frozenset[tuple[str, str]],
    dry_run: bool,
    force: bool,
    listing: bool,
) -> AppliedObject:
    """Send one object; what the server answered, with the digest of what was sent. ``listing``: classify against
    the owned objects of its type listed first (one list per type and namespace), not against a record."""
    sha = canonical_sha256(body)
    with translate_errors(ref):
        resource = _resource(dyn, ref, crd_kinds)
        before = live.get(resource, ref) if listing or _needs_live(body, recorded, live, ref) else None
        kept = _replicas_to_hand_over(body, before)
        if kept is not None:
            if dry_run:
                body["spec"]["replicas"] = kept
            else:
                _hand_over_replicas(dyn, resource, ref, kept)
        try:
            status, after = _server_side_apply(dyn, resource, ref, body, dry_run=dry_run, force=force)
        except ApiError as e:
            if e.status == 404 and (ref.group, ref.kind) in crd_kinds:
                raise KubernetesTransientError(
                    f"{ref.key}: the API server does not serve {ref.kind} yet; its CustomResourceDefinition "
                    "was just applied and is not established"
                ) from e
            raise
    meta = after.get("metadata") or {}
    return AppliedObject(
        ref=ref,
        action=_action(status, before, after, dry_run=dry_run, recorded=recorded),
        resource_version=meta.get("resourceVersion"),
        generation=meta.get("generation"),
        uid=meta.get("uid"),
        sha256=sha,
        owns_replicas=_owns_replicas(after),
    )


def _needs_live(body: Mapping[str, Any], recorded: AppliedObject | None, live: _LiveIndex, ref: ObjectRef) -> bool:
    """Whether applying ``body`` needs the live object: a workload that leaves ``spec.replicas`` to an HPA while
    we may still own the field (unknown without a record), or its kind was listed already (free)."""
    if live.listed(ref):
        return True
    spec = body.get("spec")
    leaves_replicas = body.get("kind") in REPLICA_KINDS and isinstance(spec, Mapping) and "replicas" not in spec
    return leaves_replicas and (recorded is None or recorded.owns_replicas)


def _probe(dyn: KubeClient, live: _LiveIndex, ref: ObjectRef, crd_kinds: frozenset[tuple[str, str]]) -> None:
    """One read before the first write, so an unreachable server fails the apply before it is marked written.

    It lists the first object's type (what classifying that object can use anyway); a custom resource's type may
    not be served yet, so for one of those the CustomResourceDefinitions are listed instead.
    """
    if (ref.group, ref.kind) in crd_kinds:
        ref = ObjectRef(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition", name=ref.name)
    with translate_errors(ref):
        live.get(_resource(dyn, ref, crd_kinds), ref)


def _unchanged(
    dyn: KubeClient,
    live: _LiveIndex,
    bodies: Sequence[tuple[ObjectRef, dict[str, Any]]],
    recorded: Mapping[str, AppliedObject],
    crd_kinds: frozenset[tuple[str, str]],
) -> dict[str, AppliedObject]:
    """The objects that need no request: same digest as recorded, and the live object (one list per type and
    namespace that has such objects) still is the one we wrote (:func:`_drifted`). Reported ``unchanged``."""
    skipped: dict[str, AppliedObject] = {}
    for ref, body in bodies:
        last = recorded.get(ref.key)
        if last is None or last.sha256 != canonical_sha256(body):
            continue
        with translate_errors(ref):
            current = live.get(_resource(dyn, ref, crd_kinds), ref)
        if _drifted(body, current, last):
            logger.info(
                "object changed in the cluster since it was applied: applying it again", extra={"object": ref.key}
            )
            continue
        skipped[ref.key] = last.model_copy(update={"action": "unchanged"})
    return skipped


def _unchanged_by_record(
    bodies: Sequence[tuple[ObjectRef, dict[str, Any]]], recorded: Mapping[str, AppliedObject], drifted: Collection[str]
) -> dict[str, AppliedObject]:
    """The objects that need no request, from the record alone: same digest as recorded and not ``drifted``."""
    gone = set(drifted)
    return {
        ref.key: last.model_copy(update={"action": "unchanged"})
        for ref, body in bodies
        for last in [recorded.get(ref.key)]
        if last is not None and ref.key not in gone and last.sha256 == canonical_sha256(body)
    }


def unchanged_by_record(
    objects: Sequence[Mapping[str, Any]], recorded: Mapping[str, AppliedObject], drifted: Collection[str]
) -> frozenset[str]:
    """Keys of the ``objects`` an apply given ``last_applied=recorded`` and ``drifted`` will not send (same digest
    as recorded and not drifted); what :func:`apply_objects` decides for the bodies it is given."""
    return frozenset(_unchanged_by_record([(ObjectRef.of(o), dict(o)) for o in objects], recorded, drifted))


def _drifted(body: Mapping[str, Any], current: Mapping[str, Any] | None, last: AppliedObject) -> bool:
    """Whether someone changed ``current`` since we applied it as ``last`` (:func:`change_since_applied`)."""
    return change_since_applied(body, current, last) is not None


def change_since_applied(
    body: Mapping[str, Any], current: Mapping[str, Any] | None, last: AppliedObject
) -> tuple[str | None, Any, Any] | None:
    """How ``current`` moved since we applied it as ``last`` (recorded), as ``(path, live, recorded)``, or ``None``.

    Gone (or no longer carrying our label): ``(None, None, None)``. Recreated: ``metadata.uid``. Objects with a
    ``generation`` (spec changes bump it; status writes do not): ``metadata.generation`` when it moved. Others:
    ``metadata.resourceVersion`` when it moved. Labels and annotations (which move neither generation nor, always,
    our attention) must still carry the values we set: ``metadata.labels.<key>`` / ``metadata.annotations.<key>``.
    """
    if current is None:
        return None, None, None
    meta = current.get("metadata") or {}
    if last.uid is not None and meta.get("uid") != last.uid:
        return "metadata.uid", meta.get("uid"), last.uid
    if last.generation is not None:
        if meta.get("generation") != last.generation:
            return "metadata.generation", meta.get("generation"), last.generation
    elif meta.get("resourceVersion") != last.resource_version:
        return "metadata.resourceVersion", meta.get("resourceVersion"), last.resource_version
    wanted = body.get("metadata") or {}
    for part in ("labels", "annotations"):
        have = meta.get(part) or {}
        for key, value in (wanted.get(part) or {}).items():
            if have.get(key) != value:
                return f"metadata.{part}.{key}", have.get(key), value
    return None


def diff_objects(api: ApiClient, objects: Sequence[Mapping[str, Any]]) -> list[ObjectDiff]:
    """What applying ``objects`` would change: each live object against the server's dry-run result.

    Server-owned fields (managedFields, resourceVersion, generation, uid, timestamps, status) and the release-id
    annotation earlier releases wrote are ignored. Objects that would be created are listed with no field changes,
    including those a dry run cannot reach because what holds them is new in ``objects`` too (a dry run creates
    nothing): custom resources of a new CustomResourceDefinition and objects in a new Namespace.
    """
    _check_owned(objects)
    crd_kinds = _kinds_defined_by_crds(objects)
    new_namespaces = {str(o["metadata"]["name"]) for o in objects if o.get("kind") == "Namespace"}
    dyn = dynamic_client(api)
    live = _LiveIndex(dyn)
    diffs: list[ObjectDiff] = []
    for obj in objects:
        ref = ObjectRef.of(obj)
        with translate_errors(ref):
            status, before, after = _dry_run(
                dyn, live, ref, copy.deepcopy(dict(obj)), crd_kinds=crd_kinds, new_namespaces=new_namespaces
            )
        if status == 201 or before is None:
            diffs.append(ObjectDiff(ref=ref, action="created"))
            continue
        changes = field_changes(normalized(before), normalized(after))
        diffs.append(ObjectDiff(ref=ref, action="configured" if changes else "unchanged", changes=tuple(changes)))
    return diffs


def _dry_run(
    dyn: KubeClient,
    live: _LiveIndex,
    ref: ObjectRef,
    body: dict[str, Any],
    *,
    crd_kinds: frozenset[tuple[str, str]],
    new_namespaces: set[str],
) -> tuple[int, dict[str, Any] | None, dict[str, Any]]:
    """(status, live object or None, dry-run result) of applying ``body``; status 201 means it would be created."""
    try:
        resource = _resource(dyn, ref)
    except ResourceNotFoundError:
        if (ref.group, ref.kind) in crd_kinds:  # its CRD is part of this release and not served yet
            return 201, None, {}
        raise
    before = live.get(resource, ref)
    kept = _replicas_to_hand_over(body, before)
    if kept is not None:
        body["spec"]["replicas"] = kept
    _keep_ca_bundles(body, before)
    try:
        status, after = _server_side_apply(dyn, resource, ref, body, dry_run=True, force=True)
    except ApiError as e:
        if e.status == 404 and before is None and ref.namespace in new_namespaces:
            return 201, None, {}  # its namespace is part of this release and does not exist yet
        raise
    if before is None and status != 201:  # exists, but not (yet) ours: read it to compare
        _, before = request_json(dyn, "GET", resource.path(name=ref.name, namespace=ref.namespace))
    return status, before, after


def _keep_ca_bundles(body: dict[str, Any], live: Mapping[str, Any] | None) -> None:
    """A webhook configuration whose certificate the control plane keeps gets its ``caBundle`` only when applied:
    the dry run carries the live webhooks' bundles over, so a diff shows what the release changes, not the field
    the apply fills in from its Secret (an absent one would read as "remove the CA")."""
    if live is None or body.get("kind") not in WEBHOOK_KINDS:
        return
    if CERTIFICATE_ANNOTATION not in ((body.get("metadata") or {}).get("annotations") or {}):
        return
    bundles = {
        w.get("name"): ((w.get("clientConfig") or {}).get("caBundle"))
        for w in live.get("webhooks") or []
        if isinstance(w, Mapping)
    }
    for webhook in body.get("webhooks") or []:
        bundle = bundles.get(webhook.get("name"))
        client = webhook.setdefault("clientConfig", {})
        if bundle and "caBundle" not in client:
            client["caBundle"] = bundle


def live_owned_objects(
    api: ApiClient, namespaces: Iterable[str], kinds: Iterable[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The live objects carrying the ownership label, of ``kinds`` (apiVersion, kind) in ``namespaces``.

    Cluster-scoped kinds are listed once, whatever the namespaces. One list request per kind and namespace.
    """
    return _LiveIndex(dynamic_client(api)).owned(namespaces, kinds)


def prune(
    api: ApiClient,
    *,
    keep: Iterable[ObjectRef],
    namespaces: Iterable[str],
    kinds: Iterable[tuple[str, str]],
    allow: Iterable[str] = frozenset(),
) -> list[ObjectRef]:
    """Delete the owned objects of ``kinds`` in ``namespaces`` that are not in ``keep``; return what was deleted.

    Only objects carrying the ownership label are candidates. Namespaces and PersistentVolumeClaims are spared
    unless ``allow`` names their kind (``"PersistentVolumeClaim"``) or the object (its ``ObjectRef.key``).
    Deletion propagates in the background and is preconditioned on the uid that was listed, so an object
    recreated meanwhile is not deleted. An object already gone counts as pruned by someone else (not returned).
    """
    return _delete_unkept(dynamic_client(api), live_owned_objects(api, namespaces, kinds), keep=keep, allow=allow)


def _delete_unkept(
    dyn: KubeClient, candidates: Iterable[Mapping[str, Any]], *, keep: Iterable[ObjectRef], allow: Iterable[str]
) -> list[ObjectRef]:
    keep_keys = {ref.key for ref in keep}
    allowed = set(allow)
    deleted: list[ObjectRef] = []
    for obj in candidates:
        ref = ObjectRef.of(obj)
        meta = obj.get("metadata") or {}
        if ref.key in keep_keys or meta.get("deletionTimestamp"):
            continue
        if ref.kind in PROTECTED_KINDS and ref.kind not in allowed and ref.key not in allowed:
            logger.info("prune spares protected object", extra={"object": ref.key})
            continue
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
            "preconditions": {"uid": meta.get("uid")} if meta.get("uid") else None,
        }
        try:
            with translate_errors(ref):
                resource = _resource(dyn, ref)
                request_json(
                    dyn, "DELETE", resource.path(name=ref.name, namespace=ref.namespace), body=_drop_none(body)
                )
        except KubernetesNotFoundError:
            continue
        logger.info("pruned object that left the release", extra={"object": ref.key})
        deleted.append(ref)
    return deleted


@dataclass
class _LiveIndex:
    """The owned live objects of each (type, namespace), listed on first use: one request per type and namespace."""

    dyn: KubeClient
    _cache: dict[tuple[str, str, str | None], dict[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        """Whether the server answered a list request of this index."""
        return bool(self._cache)

    def listed(self, ref: ObjectRef) -> bool:
        return (ref.group, ref.kind, ref.namespace) in self._cache

    def get(self, resource: Any, ref: ObjectRef) -> dict[str, Any] | None:
        key = (ref.group, ref.kind, ref.namespace)
        if key not in self._cache:
            items = list_objects(self.dyn, resource, ref.namespace, label_selector=OWNERSHIP_SELECTOR)
            self._cache[key] = {item["metadata"]["name"]: item for item in items}
        return self._cache[key].get(ref.name)

    def owned(self, namespaces: Iterable[str], kinds: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
        """The owned objects of ``kinds`` in ``namespaces``: from the cache where listed, else listed now."""
        namespaces = list(dict.fromkeys(namespaces))
        found: list[dict[str, Any]] = []
        for api_version, kind in dict.fromkeys(kinds):
            group = api_version.rpartition("/")[0]
            with translate_errors(f"{kind} ({api_version})"):
                resource = self.dyn.resources.get(api_version=api_version, kind=kind)
                for namespace in namespaces if resource.namespaced else [None]:
                    key = (group, kind, namespace)
                    if key not in self._cache:
                        items = list_objects(self.dyn, resource, namespace, label_selector=OWNERSHIP_SELECTOR)
                        self._cache[key] = {item["metadata"]["name"]: item for item in items}
                    found.extend(self._cache[key].values())
        return found


def _check_owned(objects: Sequence[Mapping[str, Any]]) -> None:
    """Every object must carry the ownership label (rendering adds it); otherwise nothing is written."""
    missing = [
        ObjectRef.of(o).key
        for o in objects
        if ((o.get("metadata") or {}).get("labels") or {}).get(OWNERSHIP_LABEL) != OWNERSHIP_VALUE
    ]
    if missing:
        raise ManifestValidationError(
            f"objects without label {OWNERSHIP_SELECTOR} (rendering adds it): {', '.join(missing)}"
        )


def _kinds_defined_by_crds(objects: Sequence[Mapping[str, Any]]) -> frozenset[tuple[str, str]]:
    """(group, kind) of every custom resource the CustomResourceDefinitions among ``objects`` define."""
    return frozenset(
        (str(spec.get("group")), str((spec.get("names") or {}).get("kind")))
        for o in objects
        if o.get("kind") == "CustomResourceDefinition"
        for spec in [o.get("spec") or {}]
    )


def _resource(dyn: KubeClient, ref: ObjectRef, crd_kinds: frozenset[tuple[str, str]] = frozenset()) -> Any:
    """The API resource serving ``ref``'s kind (from the discovery cache; refreshed once on a miss).

    A kind whose CustomResourceDefinition is part of the same apply may not be served yet (a CRD takes a moment
    to be established): that is transient, not a missing kind.
    """
    try:
        resource = dyn.resources.get(api_version=ref.api_version, kind=ref.kind)
    except ResourceNotFoundError as e:
        if (ref.group, ref.kind) in crd_kinds:
            raise KubernetesTransientError(
                f"{ref.key}: the API server does not serve {ref.kind} yet; its CustomResourceDefinition "
                "was just applied and is not established"
            ) from e
        raise
    if resource.namespaced and not ref.namespace:
        raise ManifestValidationError(f"{ref.key}: {ref.kind} is namespaced but the object names no namespace")
    return resource


def _crd_resources(objects: Sequence[Mapping[str, Any]]) -> list[Resource]:
    """The resources the CustomResourceDefinitions among ``objects`` serve (each served version)."""
    return [
        Resource(
            group=str(spec.get("group")),
            version=str(version.get("name")),
            kind=str(names["kind"]),
            name=str(names["plural"]),
            namespaced=spec.get("scope") == "Namespaced",
        )
        for o in objects
        if o.get("kind") == "CustomResourceDefinition"
        for spec in [o.get("spec") or {}]
        for names in [spec.get("names") or {}]
        if names.get("kind") and names.get("plural")
        for version in spec.get("versions") or []
        if version.get("served", True)
    ]


def _server_side_apply(
    dyn: KubeClient, resource: Any, ref: ObjectRef, body: dict[str, Any], *, dry_run: bool, force: bool
) -> tuple[int, dict[str, Any]]:
    query: list[tuple[str, str]] = [("fieldManager", FIELD_MANAGER)]
    if force:
        query.append(("force", "true"))
    if dry_run:
        query.append(("dryRun", "All"))
    return request_json(
        dyn,
        "PATCH",
        resource.path(name=ref.name, namespace=ref.namespace),
        body=body,
        content_type="application/apply-patch+yaml",
        query_params=query,
    )


def _owns_replicas(live: Mapping[str, Any]) -> bool:
    """Whether our apply manager owns ``spec.replicas`` of ``live`` (from its managedFields)."""
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if not isinstance(entry, Mapping) or entry.get("manager") != FIELD_MANAGER or entry.get("operation") != "Apply":
            continue
        spec = (entry.get("fieldsV1") or {}).get("f:spec")
        if isinstance(spec, Mapping) and "f:replicas" in spec:
            return True
    return False


def _replicas_to_hand_over(body: Mapping[str, Any], live: Mapping[str, Any] | None) -> int | None:
    """The live replica count to keep when ``body`` (a workload) leaves out ``spec.replicas`` we still own."""
    spec = body.get("spec")
    if body.get("kind") not in REPLICA_KINDS or live is None or not isinstance(spec, Mapping) or "replicas" in spec:
        return None
    replicas = (live.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or not _owns_replicas(live):
        return None
    return replicas


def _hand_over_replicas(dyn: KubeClient, resource: Any, ref: ObjectRef, replicas: int) -> None:
    """Make :data:`HANDOVER_FIELD_MANAGER` a co-owner of ``spec.replicas`` at its live value (see the module doc)."""
    body = {
        "apiVersion": ref.api_version,
        "kind": ref.kind,
        "metadata": {"name": ref.name, "namespace": ref.namespace},
        "spec": {"replicas": replicas},
    }
    try:
        request_json(
            dyn,
            "PATCH",
            resource.path(name=ref.name, namespace=ref.namespace),
            body=body,
            content_type="application/apply-patch+yaml",
            query_params=[("fieldManager", HANDOVER_FIELD_MANAGER)],
        )
    except ApiError as e:
        if e.status != 409:
            raise
        logger.info("spec.replicas already owned by another manager: nothing to hand over", extra={"object": ref.key})
        return
    logger.info(
        "spec.replicas handed over before leaving it to the HPA", extra={"object": ref.key, "replicas": replicas}
    )


def _action(
    status: int,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    *,
    dry_run: bool,
    recorded: AppliedObject | None = None,
) -> ApplyAction:
    """What an apply did, from the server's answer: 201 created; the resourceVersion we recorded (or listed just
    before) unmoved, or (servers that write no-op applies) the same content, unchanged; otherwise configured."""
    if status == 201:
        return "created"
    after_rv = (after.get("metadata") or {}).get("resourceVersion")
    if not dry_run and recorded is not None and recorded.resource_version == after_rv:
        return "unchanged"
    if before is None:  # not listed (or existed without our label: applying adopts it)
        return "configured"
    before_rv = (before.get("metadata") or {}).get("resourceVersion")
    if not dry_run and before_rv is not None and before_rv == after_rv:
        return "unchanged"
    return "unchanged" if normalized(before) == normalized(after) else "configured"


def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}
