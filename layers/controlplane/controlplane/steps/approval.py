"""RequestApproval (``waitForTaskToken``; the operator API answers it, ``steps.operator``) and ApprovalTimedOut;
VerifyApproval, which checks the signed decision, is ``steps.verify_approval``."""

from __future__ import annotations

import json
from collections.abc import Callable

from controlplane.aws import approval as approvals
from controlplane.aws import lock, signing
from controlplane.errors import (
    ConfigurationError,
)
from controlplane.models.approval import (
    ApprovalNotice,
    ApprovalOutcome,
    ApprovalRequest,
    ApprovalStatus,
    ApprovalTimeoutRequest,
)
from controlplane.models.base import at
from controlplane.models.kube import ObjectDiff
from controlplane.observability import correlate
from controlplane.settings import get_settings

DiffProvider = Callable[[ApprovalRequest], list[ObjectDiff]]


def cluster_diff(event: ApprovalRequest) -> list[ObjectDiff]:
    """What applying the release would change: the rendered release against the cluster (server-side dry run).

    The renderer (YAML) and the Kubernetes client load here: ApprovalTimedOut, which shares this module, needs
    neither."""
    from controlplane.cluster import connect  # noqa: PLC0415 - RequestApproval only: off ApprovalTimedOut's imports
    from controlplane.kube.apply import diff_objects  # noqa: PLC0415
    from controlplane.render import load_bundle, render_release_for  # noqa: PLC0415

    settings = get_settings()
    images = {i.service: i.digest for i in event.images}
    objects = render_release_for(settings, load_bundle(settings.deploy.manifests_dir), event.environment, images)
    api = connect(settings)
    try:
        return diff_objects(api, objects)
    finally:
        api.close()


def request_approval(event: ApprovalRequest, *, diff: DiffProvider) -> ApprovalNotice:
    """RequestApproval (``waitForTaskToken``): store the dry-run diff, record the pending approval, notify."""
    correlate(execution_arn=event.execution_arn, release_id=event.release_id, environment=event.environment)
    settings = get_settings()
    gates = settings.gates
    if not gates.approval_bucket:
        raise ConfigurationError("APPROVAL_BUCKET is not set")
    topic = gates.approval_topic_arn or settings.require_topic()
    now = at(event.now)
    # The lease outlasts the wait for a decision (and a RUNNING execution's lock is never taken over anyway).
    locks = lock.LockTable(settings.ledger_table_name, region=settings.region)
    lock.renew(locks, event.lease, now=now, ttl_s=event.timeout_s + gates.lock_ttl_s)
    changes = diff(event)
    changed = [d for d in changes if str(d.action) != "unchanged"]
    document = {
        "release_id": event.release_id,
        "environment": event.environment,
        "images": {i.service: i.digest for i in event.images},
        "objects": [d.model_dump(mode="json") for d in changes],
    }
    uri = approvals.store_diff(
        gates.approval_bucket,
        approvals.diff_key(event.environment, event.release_id),
        document,
        region=settings.region,
    )
    summary = "\n".join(
        [
            f"Release {event.release_id} to {event.environment} is waiting for approval.",
            f"Requested by: {event.requested_by or 'ECR push'}",
            "Images:",
            *(f"  {i.service}: {i.digest}" for i in event.images),
            f"Objects that change: {len(changed)} of {len(changes)}",
            *(f"  {d.action}: {d.ref.kind}/{d.ref.name}" for d in changed[:50]),
            f"Server-side dry-run diff: {uri}",
            f"Decide within {event.timeout_s // 3600} h through the operator API (OperatorApiUrl, SigV4-signed POST;",
            "an approver who did not request the release):",
            json.dumps({"action": "approve|reject", "release_id": event.release_id, "comment": "..."}),
        ]
    )
    ciphertext = signing.encrypt_token(
        settings.require("approval_token_key_id"),
        event.task_token,
        {"release_id": event.release_id, "execution_arn": event.execution_arn},
        region=settings.region,
    )
    approvals.Approvals(settings.ledger_table_name, region=settings.region, fence=lock.fence(event.lease)).register(
        release_id=event.release_id,
        environment=event.environment,
        task_token_ciphertext=ciphertext,
        execution_arn=event.execution_arn,
        images={i.service: i.digest for i in event.images},
        bundle_hash=event.bundle_hash,
        requested_by=event.requested_by,
        diff_uri=uri,
        summary=summary,
        now=now,
    )
    message_id = approvals.publish_request(
        topic,
        subject=f"[{event.environment}] approve release {event.release_id}?",
        message=summary,
        region=settings.region,
    )
    return ApprovalNotice(release_id=event.release_id, diff_uri=uri, message_id=message_id)


def record_approval_timeout(event: ApprovalTimeoutRequest) -> ApprovalOutcome:
    """ApprovalTimedOut: mark the approval TIMED_OUT (a decision that won the race is kept and returned).

    The write is fenced by the execution's lease: a holder whose lock was taken while it waited writes nothing and
    ends ``LockLostError`` (the approval stays as it was)."""
    settings = get_settings()
    table = approvals.Approvals(settings.ledger_table_name, region=settings.region, fence=lock.fence(event.lease))
    current = table.outcome(event.release_id)
    if current is None:
        return ApprovalOutcome(release_id=event.release_id, status=ApprovalStatus.TIMED_OUT)
    if current.status is ApprovalStatus.PENDING:
        now = at(event.now)
        table.settle(event.release_id, ApprovalStatus.TIMED_OUT, approver=None, comment="", now=now)
        return current.model_copy(update={"status": ApprovalStatus.TIMED_OUT, "decided_at": now})
    return current
