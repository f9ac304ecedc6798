"""Drift reports in the ledger (``ENV#<environment>`` / ``DRIFT#<checked at>``, and ``DRIFT_LATEST``) and in S3.

Each check is one item, kept; ``DRIFT_LATEST`` is a copy of the newest (what ``trialstudio drift`` reads in one
``GetItem``). The full report (every finding with live and desired values) is also a JSON object in S3
(``drift/<environment>/<checked at>.json``), for people and tools that read reports rather than the ledger.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3

from controlplane.aws.errors import translate_aws_errors
from controlplane.aws.table import Items, environment_key
from controlplane.models.drift import DriftReport

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LATEST = "DRIFT_LATEST"
MAX_FINDINGS_IN_LEDGER = 200
"""A DynamoDB item holds 400 KB: the ledger keeps the first findings, the S3 report all of them."""


def report_key(environment: str, checked_at: str) -> str:
    return f"drift/{environment}/{checked_at}.json"


def store_report(bucket: str, report: DriftReport, *, region: str, client: S3Client | None = None) -> str:
    """Write the whole report as JSON; its ``s3://`` URI."""
    key = report_key(report.environment, report.checked_at.strftime("%Y%m%dT%H%M%SZ"))
    s3: S3Client = client or boto3.client("s3", region_name=region)
    with translate_aws_errors("s3:PutObject"):
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=report.model_dump_json(indent=2).encode(),
            ContentType="application/json",
            ServerSideEncryption="aws:kms",
        )
    return f"s3://{bucket}/{key}"


class DriftReports(Items):
    """The drift reports of the ledger table."""

    def record(self, report: DriftReport) -> None:
        """Write the report (its item and the latest copy); a rerun overwrites the same items."""
        data: dict[str, Any] = {"kind": "drift", "report": _stored(report)}
        self.table.put(environment_key(report.environment, f"DRIFT#{report.checked_at.isoformat()}"), data)
        self.table.put(environment_key(report.environment, LATEST), data)

    def update_heal(self, report: DriftReport) -> None:
        """Record ``report.heal`` on the stored report (all its findings kept); the latest copy too if it is that."""
        key = environment_key(report.environment, f"DRIFT#{report.checked_at.isoformat()}")
        item = self.table.get(key)
        stored = DriftReport.model_validate_json(item["report"]) if item else report
        data: dict[str, Any] = {"kind": "drift", "report": _stored(stored.model_copy(update={"heal": report.heal}))}
        self.table.put(key, data)
        latest = self.latest(report.environment)
        if latest is None or latest.checked_at <= report.checked_at:
            self.table.put(environment_key(report.environment, LATEST), data)

    def latest(self, environment: str) -> DriftReport | None:
        item = self.table.get(environment_key(environment, LATEST))
        return DriftReport.model_validate_json(item["report"]) if item else None


def _stored(report: DriftReport) -> str:
    """The report as JSON, findings cut to what an item holds (the S3 report has them all)."""
    if len(report.findings) <= MAX_FINDINGS_IN_LEDGER:
        return report.model_dump_json()
    return json.dumps(
        report.model_copy(update={"findings": report.findings[:MAX_FINDINGS_IN_LEDGER]}).model_dump(mode="json")
    )
