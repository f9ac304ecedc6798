"""PlanRelease: from an ECR push event or an operator's request to the exact release to deploy.

Nothing here touches the cluster. The release is the environment's last known-good release with the requested
services' digests replaced; its id is derived from the environment, the digests and the manifests bundle hash, so a
rerun of the same input plans the same release. Rendering and validating every object happens here too, so that a
release whose manifests are invalid fails before the first cluster write.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from controlplane import platform
from controlplane.aws import ecr, lock, signing
from controlplane.aws.ledger import Ledger
from controlplane.cluster import kubernetes_version
from controlplane.errors import PlanError
from controlplane.models.release import (
    ConsoleRequest,
    EcrPushEvent,
    PlanInput,
    PlanOutput,
    ReleaseRecord,
    ReleaseRef,
    ReleaseStatus,
    Request,
    Trigger,
    TriggerKind,
    parse_request,
)
from controlplane.observability import correlate, logger, metrics
from controlplane.render import load_bundle, render_release_for
from controlplane.settings import Settings, get_settings
from controlplane.validate import validate_objects


def trigger_of(request: Request, *, requested_by: str | None = None) -> Trigger:
    if isinstance(request, EcrPushEvent):
        detail = request.detail
        return Trigger(
            kind=TriggerKind.ECR_PUSH,
            reason=f"push of {detail.repository_name}:{detail.image_tag or detail.image_digest}",
            event_id=request.id,
            repository=detail.repository_name,
            tag=detail.image_tag,
        )
    return Trigger(kind=TriggerKind.CONSOLE, reason=request.reason, force=request.force, requested_by=requested_by)


def requested_images(request: Request, settings: Settings) -> dict[str, str]:
    """``service -> digest`` the request asks for; console tags resolved through ECR (and digests confirmed there)."""
    if isinstance(request, EcrPushEvent):
        return {request.service_name(): request.detail.image_digest}
    return {
        name: ecr.resolve_image(
            platform.service(name).repository, reference, region=settings.region, registry_id=settings.account_id
        )
        for name, reference in request.services.items()
    }


def desired_images(base: Mapping[str, str], requested: Mapping[str, str], *, environment: str) -> dict[str, str]:
    """The last known-good digests with ``requested`` replacing theirs; every service must end up with one."""
    images = {**base, **requested}
    missing = [name for name in platform.SERVICE_NAMES if name not in images]
    if missing:
        raise PlanError(
            f"{environment} has no last known-good release yet, so its first release needs a digest for every "
            f"service; missing: {', '.join(missing)} (deploy them together from the console: "
            '{"environment": ..., "services": {"<service>": "<digest or tag>", ...}, "reason": ...})'
        )
    return {name: images[name] for name in sorted(images)}


def changed_images(base: Mapping[str, str], images: Mapping[str, str]) -> dict[str, str]:
    """The digests the release introduces (compared with the last known-good release)."""
    return {name: digest for name, digest in images.items() if base.get(name) != digest}


def plan_release(event: PlanInput) -> PlanOutput:
    """Plan the release ``event.input`` asks for (see the module docstring)."""
    correlate(execution_arn=event.execution_arn)
    settings = get_settings()
    request = parse_request(event.input)
    requested_by = None
    if isinstance(request, ConsoleRequest):
        requested_by = signing.requester_of(
            event.input,
            force=request.force,
            execution_arn=event.execution_arn,
            key_id=settings.decision_key_id,
            region=settings.region,
        )
    trigger = trigger_of(request, requested_by=requested_by)
    deadline_at = event.started_at + timedelta(seconds=settings.deploy.deadline_seconds)
    environment = settings.target_environment(request)
    common: dict[str, Any] = {
        "execution_arn": event.execution_arn,
        "started_at": event.started_at,
        "deadline_at": deadline_at,
        "trigger": trigger,
    }
    if environment != settings.environment:
        if isinstance(request, ConsoleRequest):
            settings.require_environment(environment)
        reason = f"tag rule sends {trigger.tag!r} to {environment}; this control plane deploys {settings.environment}"
        logger.info("nothing to deploy", extra={"reason": reason})
        return PlanOutput(action="skip", reason=reason, **common)

    # Fenced: the planned release is written behind the lease (a holder that lost it plans nothing: LockLostError).
    ledger = Ledger(settings.ledger_table_name, region=settings.region, fence=lock.fence(event.lease))
    requested = requested_images(request, settings)
    lkg = ledger.last_known_good(settings.environment)
    good = ledger.require_release(lkg.release_id) if lkg else None
    base = good.images if good else {}
    images = desired_images(base, requested, environment=settings.environment)
    changed = changed_images(base, images)
    force = isinstance(request, ConsoleRequest) and request.force
    if changed and not force:
        quarantined = ledger.quarantined(changed.values())
        if quarantined:
            named = "; ".join(f"{s} {d} ({quarantined[d][:200]})" for s, d in changed.items() if d in quarantined)
            raise PlanError(f"quarantined digest(s), refusing to deploy without force: {named}")

    bundle = load_bundle(settings.deploy.manifests_dir)
    release = ReleaseRef.build(settings.environment, images, bundle.hash)
    correlate(release_id=release.release_id, environment=release.environment)
    objects = render_release_for(settings, bundle, release.environment, release.images)
    validate_objects(
        objects,
        kubernetes_version=kubernetes_version(settings),
        account_id=settings.account_id,
        region=settings.region,
        addons=bundle.addons,
    )
    ledger.put_planned(
        ReleaseRecord(
            release_id=release.release_id,
            environment=release.environment,
            images=release.images,
            bundle_hash=release.bundle_hash,
            status=ReleaseStatus.PLANNED,
            trigger=trigger,
            execution_arn=event.execution_arn,
            previous_release_id=lkg.release_id if lkg else None,
            changed=changed,
            started_at=event.started_at,
            cluster_untouched=True,
        )
    )
    metrics.add_metric(name="DeploysStarted", unit="Count", value=1)
    logger.info("planned release", extra={"changed": changed, "objects": len(objects), "bundle_hash": bundle.hash})
    return PlanOutput(
        action="deploy",
        reason=trigger.reason,
        release=release,
        previous_release_id=lkg.release_id if lkg else None,
        changed=changed,
        # Same bundle as last known-good: the same objects, only images differ, so nothing can have left the release.
        prune=good is None or good.bundle_hash != bundle.hash,
        **common,
    )
