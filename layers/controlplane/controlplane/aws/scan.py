"""ECR image scan findings: read them, start a scan for a digest never scanned, and judge them against a policy.

One call per image and state: nothing here waits. A scan still running is reported ``IN_PROGRESS`` and the state
machine comes back after a Wait state. Basic scanning reports ``findings`` (CVE id in ``name``); enhanced scanning
(Amazon Inspector) reports ``enhancedFindings`` (CVE id in ``packageVulnerabilityDetails.vulnerabilityId``); both
are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.errors import ScanFailedError
from controlplane.models.images import ImageRef
from controlplane.models.scan import Finding, ImageScan, ScanPolicy, Severity

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecr.type_defs import ImageIdentifierTypeDef

IN_PROGRESS_STATUSES = frozenset({"IN_PROGRESS", "PENDING"})
COMPLETE_STATUSES = frozenset({"COMPLETE", "ACTIVE"})
# Anything else (FAILED, UNSUPPORTED_IMAGE, FINDINGS_UNAVAILABLE, SCAN_ELIGIBILITY_EXPIRED) cannot pass the gate.


def _findings(page: Mapping[str, Any]) -> Iterable[Finding]:
    body = page.get("imageScanFindings") or {}
    for raw in body.get("findings") or []:
        attributes = {a.get("key"): a.get("value") for a in raw.get("attributes") or []}
        yield Finding(
            id=str(raw.get("name", "")), severity=str(raw.get("severity", "")), package=attributes.get("package_name")
        )
    for raw in body.get("enhancedFindings") or []:
        details = raw.get("packageVulnerabilityDetails") or {}
        packages = details.get("vulnerablePackages") or [{}]
        yield Finding(
            id=str(details.get("vulnerabilityId") or raw.get("title") or raw.get("findingArn", "")),
            severity=str(raw.get("severity", "")),
            package=packages[0].get("name"),
        )


def evaluate(image: ImageRef, findings: Iterable[Finding], policy: ScanPolicy) -> ImageScan:
    """A completed scan judged against ``policy``: which findings block, which were allowlisted, counts by severity."""
    blocking: list[Finding] = []
    allowlisted: set[str] = set()
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
        if policy.blocks(finding):
            blocking.append(finding)
        elif policy.excuses(finding):
            allowlisted.add(finding.id)
    rank = {s.value: s.rank for s in Severity}
    blocking.sort(key=lambda f: (-rank.get(f.severity, -1), f.id))
    return ImageScan(
        image=image,
        status="COMPLETE",
        blocking=blocking,
        allowlisted=sorted(allowlisted),
        counts=dict(sorted(counts.items())),
    )


def scan_image(
    image: ImageRef, policy: ScanPolicy, *, region: str | None = None, client: ECRClient | None = None
) -> ImageScan:
    """The image's scan verdict now: COMPLETE (with findings judged), IN_PROGRESS, or STARTED (never scanned)."""
    ecr: ECRClient = client or boto3.client("ecr", region_name=region)
    image_id: ImageIdentifierTypeDef = {"imageDigest": image.digest}
    pages: list[Mapping[str, Any]] = []
    try:
        with translate_aws_errors("ecr:DescribeImageScanFindings"):
            paginator = ecr.get_paginator("describe_image_scan_findings")
            for page in paginator.paginate(repositoryName=image.repository, imageId=image_id):
                pages.append(page)
                if str((page.get("imageScanStatus") or {}).get("status")) not in COMPLETE_STATUSES:
                    break
    except ClientError as exc:
        code = error_code(exc)
        if code == "ScanNotFoundException":
            _start_scan(ecr, image)
            return ImageScan(image=image, status="STARTED")
        if code in {"ImageNotFoundException", "RepositoryNotFoundException"}:
            raise ScanFailedError(f"{image.repository}@{image.digest} is not in ECR: {code}") from None
        raise
    status_block = pages[0].get("imageScanStatus") or {}
    status = str(status_block.get("status", ""))
    if status in IN_PROGRESS_STATUSES:
        return ImageScan(image=image, status="IN_PROGRESS")
    if status not in COMPLETE_STATUSES:
        description = str(status_block.get("description", ""))[:300]
        raise ScanFailedError(f"scan of {image.service}@{image.digest} ended {status}: {description}")
    return evaluate(image, (f for page in pages for f in _findings(page)), policy)


def _start_scan(ecr: ECRClient, image: ImageRef) -> None:
    try:
        with translate_aws_errors("ecr:StartImageScan"):
            ecr.start_image_scan(repositoryName=image.repository, imageId={"imageDigest": image.digest})
    except ClientError as exc:
        # Already scanned today (basic scanning allows one scan per image per day): its findings will show up.
        if error_code(exc) != "LimitExceededException":
            raise


def blocking_summary(scans: Iterable[ImageScan], *, limit: int = 10) -> str:
    """``service@sha256:abcd…: CVE-1 (CRITICAL, openssl), …`` for the blocking findings, the worst first."""
    parts: list[str] = []
    total = 0
    for scan in scans:
        for finding in scan.blocking:
            total += 1
            if len(parts) < limit:
                package = f", {finding.package}" if finding.package else ""
                parts.append(
                    f"{scan.image.service}@{scan.image.digest[:19]}: {finding.id} ({finding.severity}{package})"
                )
    more = f" and {total - limit} more" if total > limit else ""
    return "; ".join(parts) + more
