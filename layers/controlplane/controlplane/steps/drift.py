"""DetectDrift and HealDrift: the drift state machine's steps (``statemachines/drift.asl.json``).

* DetectDrift compares the cluster with the last known-good release as the ledger recorded it applied
  (:func:`controlplane.kube.drift.detect`: ownership and server-side dry run; its add-ons by ownership and the
  ledger's record of the last apply, :func:`controlplane.kube.drift.detect_addons`), records the report in the
  ledger and S3, emits ``DriftedObjects`` and notifies when something drifted. While the deploy lock is held (a
  release is being applied) it compares nothing and says so. In heal mode (``DRIFT_MODE=heal``, never in
  production, where a rollback needs an authenticated operator) a drifted report asks the state machine to heal.
* HealDrift starts the rollback state machine on the last known-good release (it takes the lock, reclaims fields
  other managers added, re-applies, checks health, records), then, polled from a Wait loop, follows it and once it
  succeeded checks again: the report records the rollback, its outcome and what is left.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from controlplane.aws import drift as reports
from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.aws.ledger import Ledger
from controlplane.aws.lock import LockTable
from controlplane.aws.notify import notify_outcome
from controlplane.errors import PlanError
from controlplane.models.base import at
from controlplane.models.drift import DriftFinding, DriftHeal, DriftMode, DriftReport, DriftRequest, HealStatus
from controlplane.models.kube import ObjectRef
from controlplane.observability import correlate, logger, metrics
from controlplane.settings import Settings, get_settings

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

FINDINGS_IN_STATE = 20
"""Findings carried in the state machine's payload (256 KiB); the ledger and S3 keep them all."""
_ENDED = {"SUCCEEDED": HealStatus.SUCCEEDED, "FAILED": HealStatus.FAILED}


def _findings(settings: Settings, environment: str, release_id: str) -> tuple[int, list[str], list[DriftFinding]]:
    """(objects compared, the add-on objects among them by key, findings): the release's own objects by ownership
    and dry run; its add-ons (upstream's, changed by their own controllers, in namespaces the drift identity may
    only list) by ownership and the ledger's record of the last apply (``kube.drift.detect_addons``)."""
    # The cluster's side (renderer, Kubernetes client) loads here: most HealDrift invocations only poll the rollback.
    from controlplane.cluster import connect  # noqa: PLC0415
    from controlplane.kube.drift import detect, detect_addons  # noqa: PLC0415
    from controlplane.render import addon_objects, without_addons  # noqa: PLC0415

    ledger = Ledger(settings.ledger_table_name, region=settings.region)
    applied = ledger.applied_objects(release_id)
    objects, addons = without_addons(applied), addon_objects(applied)
    if not objects:
        raise PlanError(f"release {release_id} has no applied objects in the ledger: nothing to compare with")
    recorded = (ledger.applied_state(environment) or {}) if addons else {}
    api = connect(settings)
    try:
        findings = detect(api, objects) + (detect_addons(api, addons, recorded) if addons else [])
    finally:
        api.close()
    return len(applied), sorted(ObjectRef.of(o).key for o in addons), findings


def detect_drift(event: DriftRequest) -> DriftReport:
    correlate(execution_arn=event.execution_arn, environment=event.environment)
    settings = get_settings()
    settings.require_environment(event.environment)
    lkg = Ledger(settings.ledger_table_name, region=settings.region).last_known_good(event.environment)
    report = DriftReport(
        environment=event.environment,
        checked_at=at(event.now),
        execution_arn=event.execution_arn,
        mode=settings.drift_mode,
        release_id=lkg.release_id if lkg else None,
    )
    lock = LockTable(settings.ledger_table_name, region=settings.region).read(event.environment)
    if lkg is None:
        report = report.model_copy(update={"skipped": "nothing deployed yet"})
    elif lock is not None:
        report = report.model_copy(update={"skipped": f"the deploy lock is held ({lock.purpose.value}: {lock.owner})"})
    else:
        count, addons, findings = _findings(settings, event.environment, lkg.release_id)
        heal = bool(findings) and settings.drift_mode is DriftMode.HEAL and event.environment != "production"
        report = report.model_copy(
            update={
                "objects": count,
                "addons_checked": addons,
                "findings": findings,
                "findings_total": len(findings),
                "should_heal": heal,
            }
        )
    if settings.drift_bucket:
        report = report.model_copy(
            update={"report_uri": reports.store_report(settings.drift_bucket, report, region=settings.region)}
        )
    reports.DriftReports(settings.ledger_table_name, region=settings.region).record(report)
    metrics.add_metric(name="DriftedObjects", unit="Count", value=report.drifted_objects)
    logger.info(
        "drift checked",
        extra={"release_id": report.release_id, "findings": report.findings_total, "skipped": report.skipped},
    )
    if report.findings:
        _notify(settings, report, f"{report.drifted_objects} object(s) differ from {report.release_id}")
    return report.model_copy(update={"findings": report.findings[:FINDINGS_IN_STATE]})


def _notify(settings: Settings, report: DriftReport, what: str) -> None:
    if not settings.notification_topic_arn:
        return
    notify_outcome(
        settings.notification_topic_arn,
        subject=f"[{report.environment}] drift: {what}",
        outcome="drift",
        environment=report.environment,
        body={
            "environment": report.environment,
            "release_id": report.release_id,
            "checked_at": report.checked_at.isoformat(),
            "mode": report.mode.value,
            "findings": report.findings_total,
            "first": [f"{f.kind.value} {f.ref.key} {f.path or ''} by {f.manager or '?'}" for f in report.findings[:10]],
            "report": report.report_uri,
            "heal": report.heal.model_dump(mode="json") if report.heal else None,
            "what_to_do": "trialstudio drift shows the report; trialstudio rollback <last known-good> restores it",
        },
        region=settings.region,
    )


def heal_execution_name(report: DriftReport) -> str:
    """One rollback per drift check (a retried or redriven HealDrift finds the same execution)."""
    digest = hashlib.sha256(f"{report.execution_arn}|{report.checked_at.isoformat()}".encode()).hexdigest()[:32]
    return f"drift-heal-{digest}"


def heal_drift(report: DriftReport, *, client: SFNClient | None = None) -> DriftReport:
    correlate(execution_arn=report.execution_arn, release_id=report.release_id, environment=report.environment)
    settings = get_settings()
    settings.require_environment(report.environment)
    if report.release_id is None:
        raise PlanError("heal: the report names no last known-good release")
    sfn: SFNClient = client or boto3.client("stepfunctions", region_name=settings.region)
    machine = settings.require("rollback_state_machine_arn")
    heal = report.heal or DriftHeal(execution_arn=_start_heal(sfn, machine, report))
    with translate_aws_errors("states:DescribeExecution"):
        described = sfn.describe_execution(executionArn=heal.execution_arn)
    status = _ENDED.get(described["status"], HealStatus.STARTED if described["status"] == "RUNNING" else None)
    if status is None:  # ABORTED, TIMED_OUT, PENDING_REDRIVE
        status = HealStatus.FAILED
    if status is HealStatus.SUCCEEDED:
        remaining = _findings(settings, report.environment, report.release_id)[2]
        heal = heal.model_copy(update={"status": status, "remaining": len(remaining)})
    elif status is HealStatus.FAILED:
        heal = heal.model_copy(
            update={"status": status, "cause": f"{described.get('error', '')}: {described.get('cause', '')}"[:1000]}
        )
    healed = report.model_copy(update={"heal": heal})
    if heal.status is not HealStatus.STARTED or report.heal is None:
        reports.DriftReports(settings.ledger_table_name, region=settings.region).update_heal(healed)
    if heal.status is not HealStatus.STARTED:
        metrics.add_metric(
            name="DriftHealed" if heal.status is HealStatus.SUCCEEDED else "DriftHealFailed", unit="Count", value=1
        )
        _notify(
            settings,
            healed,
            f"heal {heal.status.value} ({heal.remaining} finding(s) left)"
            if heal.remaining is not None
            else f"heal {heal.status.value}",
        )
    return healed


def _start_heal(sfn: SFNClient, machine: str, report: DriftReport) -> str:
    name = heal_execution_name(report)
    request = {
        "environment": report.environment,
        "trigger": "drift",  # unsigned: honoured only where DRIFT_MODE is heal, and only for the last known-good
        "release_id": report.release_id,
        "reason": f"drift heal: {report.findings_total} finding(s) at {report.checked_at.isoformat()}",
    }
    try:
        with translate_aws_errors("states:StartExecution"):
            return str(
                sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(request))["executionArn"]
            )
    except ClientError as exc:
        if error_code(exc) != "ExecutionAlreadyExists":
            raise
    execution = machine.replace(":stateMachine:", ":execution:") + f":{name}"
    logger.info("heal already started", extra={"heal_execution": execution})
    return execution
