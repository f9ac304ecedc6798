"""ApplyRelease (and InstallAddons): render the release, validate every object, server-side apply in order, prune,
record.

The output carries counts and a :class:`~controlplane.models.release.RolloutRef`: the workloads the health step
watches and the smoke targets are lists that grow with the platform, so they stay in the ledger
(:meth:`Ledger.record_rollout`) and the state stays far under Step Functions' 256 KiB at 1,000 services.

The same path serves a deploy and a rollback. Objects come from the manifests layer when its bundle is the one the
release was planned with; otherwise (the layer moved on since) from the ledger, which holds every object a release
applied. Validation happens before the first write (in PlanRelease for a deploy's own render, here otherwise:
:func:`validate_unless_planned`), so a ``ManifestValidationError`` means the cluster is untouched.

While the environment sleeps (off-hours), the release is applied at the sleeping size (:func:`keep_asleep`: the
snapshot now refers to this release, so the next scale-up brings it up), no smoke targets are returned (nothing
answers) and the ledger records the rendered objects as usual. Awake, a workload an HPA scales is applied without
``spec.replicas`` (rendering leaves it out; objects from the ledger lose it too), so a deploy never changes its size.

A rollback (also a drift heal) restores the release exactly: fields other managers added to its objects (an env var
from ``kubectl edit``), which a server-side apply would keep, are removed first (``controlplane.kube.drift.reclaim``).

A release's objects include its environment's add-ons (``manifests/addons``). InstallAddons (purpose ``addons``)
applies only those, before anything of the release (only the ones whose content changed or which drifted: the drift
check compares the add-ons too, :func:`trusted_addon_drift`), records what it sent in the environment's applied
state and returns their workloads for CheckAddons; ApplyRelease then applies the rest and records everything, so a
rollback (which applies all of its target's objects) re-applies the add-ons its target ran with, and names only the
release's own workloads for CheckHealth and Bake (:func:`health_subject`: an add-on is CheckAddons' subject, and
its failure is the platform's, never the release's images'). Add-ons are never pruned.

Before the first write of a deploy (in InstallAddons) and of a rollback, the preflight asks the API server whether
the deploy identity may make every request the release needs (``controlplane.kube.preflight``) and fails naming
each one it may not, having written nothing. CustomResourceDefinitions that someone else installed (no
bootstrap-copy annotation on the live object) are never replaced by the bundle's bootstrap copies
(:func:`controlplane.kube.crds.without_foreign_crd_copies`). An add-on's admission webhooks get their serving
certificate's CA from the Secret the control plane keeps for them (:mod:`controlplane.kube.webhook_certs`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from controlplane.aws import lock
from controlplane.aws.drift import DriftReports
from controlplane.aws.ledger import Ledger
from controlplane.aws.offhours import OffhoursLedger
from controlplane.aws.table import Fence
from controlplane.cluster import connect, kubernetes_version
from controlplane.errors import PlanError
from controlplane.kube.apply import PROTECTED_KINDS, apply_and_prune, apply_objects, unchanged_by_record
from controlplane.kube.client import ApiClient
from controlplane.kube.crds import without_foreign_crd_copies
from controlplane.kube.webhook_certs import (
    certificate_secrets,
    usable_bundles,
    with_ca_bundles,
    with_webhook_certificates,
)
from controlplane.models.addons import AddonSpec
from controlplane.models.drift import DriftKind, DriftReport
from controlplane.models.kube import AppliedObject, ObjectRef
from controlplane.models.release import ApplyInput, ApplyOutput, ApplyPurpose, ReleaseRef, Rollout, SmokeTarget
from controlplane.observability import correlate, logger, metrics, tracer
from controlplane.render import (
    addon_objects,
    apply_order,
    load_bundle,
    render_release_for,
    without_addons,
    without_hpa_replicas,
)
from controlplane.settings import Settings, get_settings

WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
DEPLOY_IDENTITY = "the control plane's deploy identity"


def release_objects(
    release: ReleaseRef, settings: Settings, ledger: Ledger
) -> tuple[list[dict[str, Any]], Literal["render", "ledger"], Mapping[str, AddonSpec] | None]:
    """The objects of ``release``: rendered from the layer's bundle if it is the release's, else from the ledger;
    and the add-on catalog to check them against (``None`` for the ledger's: each carries its own entry)."""
    bundle = load_bundle(settings.deploy.manifests_dir)
    if bundle.hash == release.bundle_hash:
        objects = render_release_for(settings, bundle, release.environment, release.images)
        return objects, "render", bundle.addons
    recorded = ledger.applied_objects(release.release_id)
    if not recorded:
        raise PlanError(
            f"release {release.release_id} was planned with manifests bundle {release.bundle_hash}; the deployed "
            f"manifests layer is {bundle.hash} and the ledger holds no applied objects for the release"
        )
    # Recorded before rendering left spec.replicas out of HPA-scaled workloads: applying it would fight the HPA.
    return without_hpa_replicas(apply_order(recorded)), "ledger", None


def still_applied(
    applied: Sequence[AppliedObject], last_applied: Mapping[str, AppliedObject] | None, pruned: Sequence[ObjectRef]
) -> list[AppliedObject]:
    """What the cluster holds of ours after an apply: the objects just applied, and the earlier ones that left the
    release without being pruned (a later prune finds them in the ledger)."""
    gone = {r.key for r in pruned} | {o.ref.key for o in applied}
    left = [o for key, o in (last_applied or {}).items() if key not in gone]
    return [*applied, *left]


def workloads_of(objects: Sequence[Mapping[str, Any]]) -> list[ObjectRef]:
    return [ObjectRef.of(obj) for obj in objects if obj.get("kind") in WORKLOAD_KINDS]


def health_subject(purpose: ApplyPurpose, objects: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The objects whose workloads CheckHealth and Bake watch after this apply. A deploy's: the release's own (its
    services), never its add-ons: CheckAddons proved those ready before ApplyRelease, and an add-on regressing
    during the bake is the platform's, which must not roll back the release nor quarantine its images (the next
    deploy's CheckAddons reports it, ``AddonNotReadyError``, nothing quarantined). A rollback's (or a heal's): every
    workload, add-ons included, since it may restore add-ons and no CheckAddons follows it."""
    return list(without_addons(objects)) if purpose is ApplyPurpose.DEPLOY else list(objects)


def smoke_targets_of(objects: Sequence[Mapping[str, Any]], services: Sequence[str]) -> list[SmokeTarget]:
    """One target per platform service that has a Service object: its first port."""
    targets = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        ports = (obj.get("spec") or {}).get("ports") or []
        if obj.get("kind") == "Service" and meta.get("name") in services and ports:
            port = ports[0].get("name") or ports[0]["port"]
            targets.append(SmokeTarget(namespace=str(meta.get("namespace")), service=str(meta["name"]), port=port))
    return targets


def keep_asleep(
    objects: Sequence[Mapping[str, Any]], *, environment: str, release_id: str, now: datetime, fence: Fence
) -> tuple[list[dict[str, Any]], bool]:
    """For the deploy's apply step: ``(objects to apply, asleep)``. Awake (or ``wake_on_deploy``): unchanged. The
    snapshot's move to the new release is written behind ``fence`` (the apply's lease)."""
    settings = get_settings()
    config = settings.offhours.rules
    ledger = OffhoursLedger(settings.ledger_table_name, region=settings.region, fence=fence)
    record = ledger.read(environment)
    if record is None or not record.asleep or record.snapshot is None or config.wake_on_deploy:
        return [dict(o) for o in objects], False
    from controlplane.kube.offhours import keep_asleep_objects  # noqa: PLC0415 - only while the environment sleeps

    adjusted, rebased = keep_asleep_objects(objects, record.snapshot, config, release_id=release_id, now=now)
    ledger.replace_snapshot(record, rebased)
    logger.info("deploy while asleep: applied at the sleeping size", extra={"release_id": release_id})
    return adjusted, True


def trusted_drift_report(environment: str, now: datetime, settings: Settings) -> DriftReport | None:
    """For a deploy: the environment's latest drift check, whose findings (the objects changed or deleted) are
    re-applied with what the release changes, or ``None`` (check the live objects instead) when there is no complete
    check within ``DRIFT_TRUST_SECONDS`` (drift checks skipped while the lock was held do not count).

    A change made by hand after that check survives the deploy until the next check reports it (and heals it, in
    heal mode): the price of not listing every kind on every deploy. A rollback always checks the live objects."""
    max_age = settings.deploy.drift_trust_seconds
    if max_age <= 0:
        return None
    report = DriftReports(settings.ledger_table_name, region=settings.region).latest(environment)
    if report is None or report.skipped is not None or report.findings_total > len(report.findings):
        return None
    age = (now - report.checked_at).total_seconds()
    if not 0 <= age <= max_age:
        return None
    return report


def trusted_drift(environment: str, now: datetime, settings: Settings) -> frozenset[str] | None:
    """The objects the trusted drift check (:func:`trusted_drift_report`) found changed or deleted, by key."""
    report = trusted_drift_report(environment, now, settings)
    return frozenset(f.ref.key for f in report.findings) if report is not None else None


def trusted_addon_drift(
    addons: Sequence[Mapping[str, Any]], environment: str, now: datetime, settings: Settings
) -> frozenset[str] | None:
    """For InstallAddons: the add-on objects to send whatever the record says, by key: what the trusted drift check
    (:func:`trusted_drift_report`) found changed or deleted, and those it did not compare (checks made before drift
    checks covered the add-ons compared none: ``None``, check the live add-ons instead, one list per kind)."""
    return _addon_drift(trusted_drift_report(environment, now, settings), addons)


def _addon_drift(report: DriftReport | None, addons: Sequence[Mapping[str, Any]]) -> frozenset[str] | None:
    if report is None or not report.addons_checked:
        return None
    checked = set(report.addons_checked)
    unchecked = {key for key in (ObjectRef.of(o).key for o in addons) if key not in checked}
    return frozenset({f.ref.key for f in report.findings} | unchecked)


ALWAYS_ASKED_KINDS = frozenset({*WORKLOAD_KINDS, "HorizontalPodAutoscaler"})
"""Sent by a deploy while the environment sleeps whatever the record says (at the sleeping size, marked with the
release: :func:`keep_asleep`), so the preflight always asks their permissions: the release's own, and an add-on's
only in a namespace off-hours scales (``sleeping``; elsewhere an add-on is sent only as the record and the check
say: InstallAddons never keeps one asleep, and ApplyRelease trusts what it recorded)."""


def _always_asked(obj: Mapping[str, Any], addon_keys: frozenset[str], sleeping: Collection[str]) -> bool:
    if obj.get("kind") not in ALWAYS_ASKED_KINDS:
        return False
    ref = ObjectRef.of(obj)
    return ref.key not in addon_keys or ref.namespace in sleeping


def deploy_writes(
    objects: Sequence[Mapping[str, Any]],
    last_applied: Mapping[str, AppliedObject],
    report: DriftReport | None,
    *,
    prune: bool,
    sleeping: Collection[str],
) -> tuple[list[Mapping[str, Any]] | None, list[ObjectRef]]:
    """For the deploy's preflight: ``(the objects InstallAddons and ApplyRelease may send, the recorded objects the
    prune deletes)``; ``(None, [])`` when that cannot be told before listing (nothing recorded, or no trusted drift
    check): the preflight then asks for every object.

    An object is left out when the record and the trusted check say it will not be sent (same digest as recorded,
    not found drifted: :func:`~controlplane.kube.apply.unchanged_by_record`; the add-ons only if the check compared
    them). The release's workloads and HPAs are always in (a sleeping environment re-sends them), an add-on's only in
    a namespace off-hours scales (``sleeping``: :func:`_always_asked`). Webhook configurations whose CA the apply
    fills in compare equal to the record only with that CA filled in (InstallAddons reads it first,
    :func:`~controlplane.kube.webhook_certs.usable_bundles`); without it they are in."""
    if not last_applied or report is None:
        return None, []
    addons = addon_objects(objects)
    skipped = unchanged_by_record(without_addons(objects), last_applied, {f.ref.key for f in report.findings})
    addon_drift = _addon_drift(report, addons)
    if addon_drift is not None:
        skipped |= unchanged_by_record(addons, last_applied, addon_drift)
    addon_keys = frozenset(ObjectRef.of(o).key for o in addons)
    sending = [o for o in objects if _always_asked(o, addon_keys, sleeping) or ObjectRef.of(o).key not in skipped]
    keys = {ObjectRef.of(o).key for o in objects}
    deleting = [
        o.ref for o in last_applied.values() if prune and o.ref.key not in keys and o.ref.kind not in PROTECTED_KINDS
    ]
    return sending, deleting


def _trust(
    purpose: ApplyPurpose, report: DriftReport | None, objects: Sequence[Mapping[str, Any]]
) -> tuple[frozenset[str] | None, frozenset[str]]:
    """For ApplyRelease: ``(drifted, verified)`` for :func:`~controlplane.kube.apply.apply_objects`. ``drifted``:
    what the trusted drift check found, less the add-ons, by key (``None`` without a trusted check: a rollback's,
    or none recent). ``verified``: in a deploy, the add-ons, which InstallAddons sent or checked moments ago (and
    recorded what it sent): trusted to the record, never listed twice."""
    addons = frozenset(ObjectRef.of(o).key for o in addon_objects(objects))
    verified = addons if purpose is ApplyPurpose.DEPLOY else frozenset()
    if report is None:
        return None, verified
    return frozenset(f.ref.key for f in report.findings if f.ref.key not in addons), verified


def leave_installed_webhooks(
    purpose: ApplyPurpose, objects: Sequence[Mapping[str, Any]], last_applied: Mapping[str, AppliedObject]
) -> tuple[list[dict[str, Any]], list[ObjectRef]]:
    """For a deploy's ApplyRelease: ``(the objects to apply, the webhook configurations left as recorded)``. Left
    out: the add-ons' webhook configurations whose CA the apply fills in from their certificate's Secret
    (:mod:`controlplane.kube.webhook_certs`) and which InstallAddons applied (or found unchanged) and recorded
    moments ago: ApplyRelease neither reads that Secret again nor sends them, and its prune keeps them. None without
    a record (a first release: InstallAddons recorded nothing, so ApplyRelease sends every add-on object, CA filled
    in, and records it) nor in a rollback."""
    if purpose is not ApplyPurpose.DEPLOY or not last_applied:
        return [dict(o) for o in objects], []
    installed = {
        key: last_applied[key].ref
        for o in addon_objects(objects)
        for key in [ObjectRef.of(o).key]
        if key in last_applied and certificate_secrets([o])
    }
    return [dict(o) for o in objects if ObjectRef.of(o).key not in installed], list(installed.values())


def validate_unless_planned(
    event: ApplyInput,
    objects: Sequence[Mapping[str, Any]],
    source: Literal["render", "ledger"],
    catalog: Mapping[str, AddonSpec] | None,
    settings: Settings,
) -> None:
    """Validate every object before the first write, unless PlanRelease validated exactly these: a deploy's (or its
    add-ons') objects rendered from the release's own bundle (same bundle hash, digests and settings render the same
    objects). A rollback's objects (another release's, or the ledger's) are always validated here.

    The JSON-schema validator (jsonschema, ~50 ms of a cold start) is imported only when it is used."""
    if source == "render" and event.purpose in {ApplyPurpose.DEPLOY, ApplyPurpose.ADDONS}:
        return
    from controlplane.validate import validate_objects  # noqa: PLC0415 - off the deploy's import path

    validate_objects(
        objects,
        kubernetes_version=kubernetes_version(settings),
        account_id=settings.account_id,
        region=settings.region,
        addons=catalog,
    )


@tracer.capture_method
def apply_release(event: ApplyInput) -> ApplyOutput:
    """Apply ``event.release`` to the cluster (see the module docstring); safe to run twice."""
    release = event.release
    correlate(execution_arn=event.execution_arn, release_id=release.release_id, environment=release.environment)
    settings = get_settings()
    # Fenced: an execution that no longer holds the environment's lock writes nothing (LockLostError): the lease is
    # renewed now and again just before the first cluster write; every ledger write carries it as a condition.
    locks = lock.LockTable(settings.ledger_table_name, region=settings.region)
    lock.renew(locks, event.lease, now=event.now, ttl_s=settings.gates.lock_ttl_s)
    ledger = Ledger(settings.ledger_table_name, region=settings.region, fence=lock.fence(event.lease))
    objects, source, catalog = release_objects(release, settings, ledger)
    validate_unless_planned(event, objects, source, catalog, settings)

    def mark_written() -> None:
        """Just before the first change to the cluster: the lease still holds; a deploy's failure now needs a
        rollback."""
        lock.renew(locks, event.lease, now=event.now, ttl_s=settings.gates.lock_ttl_s)
        if event.purpose in {ApplyPurpose.DEPLOY, ApplyPurpose.ADDONS}:
            ledger.update_release(release.release_id, cluster_untouched=False)

    # Nothing recorded yet (a new environment, or one applied before the ledger kept this): {} sends everything.
    last_applied = ledger.applied_state(release.environment) or {}
    if event.purpose is ApplyPurpose.ADDONS:
        return _install_addons(event, objects, source, mark_written, last_applied=last_applied, ledger=ledger)
    to_apply, asleep = keep_asleep(
        objects,
        environment=release.environment,
        release_id=release.release_id,
        now=event.now,
        fence=lock.fence(event.lease),
    )
    to_apply, installed = leave_installed_webhooks(event.purpose, to_apply, last_applied)
    api = connect(settings)
    try:
        if event.purpose is ApplyPurpose.ROLLBACK:  # a deploy asked in InstallAddons, before its first write
            # The preflight (and kube.health's read list it asks for) loads here: not on a deploy's ApplyRelease.
            from controlplane.kube.preflight import check_permissions  # noqa: PLC0415

            check_permissions(api, to_apply, prune=True, who=DEPLOY_IDENTITY)
        to_apply = without_foreign_crd_copies(api, to_apply)
        to_apply = with_webhook_certificates(api, to_apply, now=event.now, before_first_write=mark_written)
        pruned: list[ObjectRef] = []
        report = None
        if event.purpose is ApplyPurpose.ROLLBACK:  # restore exactly: fields others added go (kube.drift.reclaim)
            from controlplane.kube.drift import reclaim  # noqa: PLC0415 - rollbacks only: off the deploy's imports

            reclaim(api, to_apply)
        else:
            report = trusted_drift_report(release.environment, event.now, settings)
        drifted, verified = _trust(event.purpose, report, objects)
        if event.prune or event.purpose is ApplyPurpose.ROLLBACK:
            # Without a record, prune lists the platform's own objects' kinds in its own namespaces: never an
            # add-on's namespace (kube-system is not ours to list).
            refs = [ObjectRef.of(obj) for obj in without_addons(objects)]
            result, pruned = apply_and_prune(
                api,
                to_apply,
                release_id=release.release_id,
                namespaces=sorted({r.namespace for r in refs if r.namespace}),
                kinds=sorted({(r.api_version, r.kind) for r in refs}),
                allow=settings.deploy.prune_allow,
                before_first_write=mark_written,
                last_applied=last_applied,
                drifted=drifted,
                verified=verified,
                kept=installed,
            )
        else:
            result = apply_objects(
                api,
                to_apply,
                release_id=release.release_id,
                force=True,
                before_first_write=mark_written,
                last_applied=last_applied,
                drifted=drifted,
                verified=verified,
            )
        kept = kept_changes(api, objects, report) if event.purpose is ApplyPurpose.DEPLOY else []
    finally:
        api.close()
    if source == "render":
        ledger.record_applied(release.release_id, objects)
    ledger.record_applied_state(
        release.environment, release.release_id, still_applied(result.objects, last_applied, pruned)
    )
    logger.info(
        "release applied",
        extra={
            "purpose": event.purpose.value,
            "objects": len(objects),
            "pruned": [p.key for p in pruned],
            "asleep": asleep,
        },
    )
    rollout = Rollout(
        workloads=workloads_of(health_subject(event.purpose, objects)),
        smoke_targets=[] if asleep else smoke_targets_of(objects, sorted(release.images)),
    )
    return ApplyOutput(
        release_id=release.release_id,
        applied=len(result.objects) + len(installed),  # the release's objects in place: kept as InstallAddons applied
        pruned=len(pruned),
        rollout=ledger.record_rollout(release.release_id, event.purpose, rollout),
        applied_at=event.now,
        source=source,
        kept_changes=kept,
    )


def kept_changes(
    api: ApiClient, objects: Sequence[Mapping[str, Any]], report: DriftReport | None, *, limit: int = 50
) -> list[str]:
    """What the deploy kept of changes made outside the release (fields other managers added, which a server-side
    apply never removes), as ``<object> <path> (by <manager>)`` lines, logged and counted (``DriftKeptByDeploy``):
    from the trusted drift check's findings when the deploy trusted one (no request more), else from the live
    workloads of the release (one list per workload kind; add-ons are upstream's)."""
    if report is not None:
        ours = {ObjectRef.of(o).key for o in without_addons(objects)}
        found = [f for f in report.findings if f.kind is DriftKind.ADDED and f.path and f.ref.key in ours]
    else:
        from controlplane.kube.drift import kept_foreign_fields  # noqa: PLC0415 - off the deploy's import path

        found = kept_foreign_fields(api, without_addons(objects), kinds=WORKLOAD_KINDS)
    lines = [f"{f.ref.key} {f.path} (by {f.manager})" for f in found]
    if lines:
        logger.warning("the deploy kept changes made outside the release", extra={"changes": lines[:limit]})
        metrics.add_metric(name="DriftKeptByDeploy", unit="Count", value=len(lines))
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])


def _install_addons(
    event: ApplyInput,
    objects: list[dict[str, Any]],
    source: Literal["render", "ledger"],
    mark_written: Callable[[], None],
    *,
    last_applied: Mapping[str, AppliedObject],
    ledger: Ledger,
) -> ApplyOutput:
    """InstallAddons: the deploy's first cluster write. Ask the API server whether every request of the deploy will
    be allowed (the preflight: of every object, or of those the record and a trusted drift check say it may send,
    :func:`deploy_writes`), then apply the release's add-ons alone (nothing of the release yet) and name
    their workloads. ApplyRelease records them with the rest.

    Unchanged add-ons are skipped: same content as recorded, and unchanged in the cluster since by the latest drift
    check within ``DRIFT_TRUST_SECONDS`` (what it found drifted, or did not compare, is sent again:
    :func:`trusted_addon_drift`), or without such a check by their live objects (one list per kind and namespace)."""
    release = event.release
    settings = get_settings()
    report = trusted_drift_report(release.environment, event.now, settings) if last_applied else None
    from controlplane.kube.preflight import check_permissions  # noqa: PLC0415 - InstallAddons and rollbacks only

    api = connect(settings)
    try:
        # Read before the preflight (never written): the webhook configurations InstallAddons would fill with an
        # unchanged CA compare equal to the record and are not asked for.
        usable = usable_bundles(api, objects, now=event.now) if report is not None else {}
        sending, deleting = deploy_writes(
            with_ca_bundles(objects, usable),
            last_applied,
            report,
            prune=event.prune,
            sleeping=settings.offhours.rules.namespaces,
        )
        check_permissions(api, objects, prune=event.prune, who=DEPLOY_IDENTITY, sending=sending, deleting=deleting)
        addons = addon_objects(objects)
        drifted = _addon_drift(report, addons)
        objects = with_webhook_certificates(api, addons, now=event.now, before_first_write=mark_written, usable=usable)
        result = apply_objects(
            api,
            objects,
            release_id=release.release_id,
            force=True,
            before_first_write=mark_written if objects else None,
            last_applied=last_applied,
            drifted=drifted,
        )
    finally:
        api.close()
    changed = [o.ref.key for o in result.objects if o.action != "unchanged"]
    logger.info("add-ons applied", extra={"objects": len(objects), "changed": changed})
    # What ApplyRelease (and the next drift check) compares with: the add-ons as just applied. Not without an earlier
    # record (a first release): ApplyRelease then sends everything and prunes by listing, as a partial record would
    # make it prune by the record.
    if changed and last_applied:
        ledger.record_applied_state(
            release.environment, release.release_id, still_applied(result.objects, last_applied, [])
        )
    rollout = Rollout(workloads=workloads_of(objects), smoke_targets=[])
    return ApplyOutput(
        release_id=release.release_id,
        applied=len(result.objects),
        pruned=0,
        rollout=ledger.record_rollout(release.release_id, event.purpose, rollout),
        applied_at=event.now,
        source=source,
    )
