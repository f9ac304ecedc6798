"""Scan gate, image promotion and freeze windows against moto ECR/DynamoDB (scan states moto lacks are patched in)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from controlplane.aws.freeze import read_override
from controlplane.aws.lock import LockTable, lock_key
from controlplane.aws.promote import tag_digest
from controlplane.aws.table import Condition
from controlplane.errors import (
    FreezeWindowError,
    ImageNotFoundError,
    ImageTagConflictError,
    LockLostError,
    ScanBlockedError,
    ScanFailedError,
)
from controlplane.models.freeze import FreezeCheckRequest
from controlplane.models.images import ImageRef
from controlplane.models.lease import Lease
from controlplane.models.promote import PromotionRequest, TagOutcome
from controlplane.models.scan import ScanRequest, ScanStatus
from controlplane.steps.freeze import check_freeze
from controlplane.steps.promote import promote_images
from controlplane.steps.scan import check_image_scans
from moto.ecr.models import ECRBackend

from .conftest import REGION, TABLE, hold_lock

pytestmark = pytest.mark.integration

NOW = datetime(2025, 11, 26, 10, 0, tzinfo=UTC)  # a Wednesday


def scan_lease() -> Lease:
    return hold_lock("staging", "arn:aws:states:us-east-1:123456789012:execution:deploy:scan")


def manifest(n: int) -> str:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": n,
                "digest": "sha256:" + "0" * 64,
            },
            "layers": [],
        }
    )


def push_image(service: str, n: int, *, tag: str = "build", immutable: bool = False) -> ImageRef:
    ecr = boto3.client("ecr", region_name=REGION)
    repo = f"clinical-trials/{service}"
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repo, imageTagMutability="IMMUTABLE" if immutable else "MUTABLE")
    body = manifest(n)
    digest = "sha256:" + hashlib.sha256(body.encode()).hexdigest()
    ecr.put_image(repositoryName=repo, imageManifest=body, imageTag=f"{tag}-{n}", imageDigest=digest)
    return ImageRef(service=service, digest=digest)


# ---- scan ------------------------------------------------------------------------------------------------------
class ScriptedScans:
    """Replaces moto's ECR scan findings: each (repository, digest) answers its next scripted result."""

    def __init__(self) -> None:
        self.script: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def set(self, image: ImageRef, *results: dict[str, Any]) -> None:
        self.script[(image.repository, image.digest)] = list(results)

    def __call__(self, registry_id: str, repository_name: str, image_id: dict[str, Any]) -> dict[str, Any]:
        queue = self.script[(repository_name, image_id["imageDigest"])]
        result = queue.pop(0) if len(queue) > 1 else queue[0]
        return {"registryId": "123456789012", "repositoryName": repository_name, "imageId": image_id, **result}


@pytest.fixture
def scans(gate_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedScans]:
    scripted = ScriptedScans()

    def patched(
        _backend: ECRBackend, registry_id: str, repository_name: str, image_id: dict[str, Any]
    ) -> dict[str, Any]:
        return scripted(registry_id, repository_name, image_id)

    monkeypatch.setattr(ECRBackend, "describe_image_scan_findings", patched)
    return scripted


def complete(*findings: tuple[str, str]) -> dict[str, Any]:
    return {
        "imageScanStatus": {"status": "COMPLETE", "description": "done"},
        "imageScanFindings": {
            "findings": [
                {"name": cve, "severity": sev, "attributes": [{"key": "package_name", "value": "openssl"}]}
                for cve, sev in findings
            ],
            "findingSeverityCounts": {},
        },
    }


IN_PROGRESS = {"imageScanStatus": {"status": "IN_PROGRESS", "description": "scanning"}}


def test_a_digest_never_scanned_gets_a_scan_started_and_the_gate_waits(gate_env: dict[str, str]) -> None:
    image = push_image("edc-service", 1)

    report = check_image_scans(ScanRequest(environment="staging", lease=scan_lease(), images=[image], now=NOW))

    assert report.status is ScanStatus.IN_PROGRESS
    assert report.scans[0].status == "STARTED"
    assert report.deadline == NOW + timedelta(seconds=1800)
    # moto now has a scan (its default findings: one HIGH CVE), which passes the default CRITICAL threshold.
    again = check_image_scans(
        ScanRequest(environment="staging", lease=scan_lease(), images=[image], deadline=report.deadline, now=NOW)
    )
    assert again.status is ScanStatus.PASSED


def test_a_scan_in_progress_loops_then_passes_when_complete(scans: ScriptedScans) -> None:
    image = push_image("edc-service", 1)
    scans.set(image, IN_PROGRESS, complete(("CVE-2024-1", "HIGH")))

    first = check_image_scans(ScanRequest(environment="staging", lease=scan_lease(), images=[image], now=NOW))
    second = check_image_scans(
        ScanRequest(
            environment="staging",
            lease=scan_lease(),
            images=[image],
            deadline=first.deadline,
            now=NOW + timedelta(seconds=30),
        )
    )

    assert first.status is ScanStatus.IN_PROGRESS
    assert first.waiting_for == ["edc-service"]
    assert second.status is ScanStatus.PASSED
    assert second.scans[0].counts == {"HIGH": 1}


def test_a_critical_finding_blocks_and_the_cause_names_it(scans: ScriptedScans) -> None:
    ok, bad = push_image("api-gateway", 1), push_image("edc-service", 2)
    scans.set(ok, complete())
    scans.set(bad, complete(("CVE-2024-9999", "CRITICAL"), ("CVE-2024-1", "LOW")))

    with pytest.raises(
        ScanBlockedError, match=r"edc-service@sha256:\w{12}: CVE-2024-9999 \(CRITICAL, openssl\)"
    ) as err:
        check_image_scans(ScanRequest(environment="staging", lease=scan_lease(), images=[ok, bad], now=NOW))
    assert "CVE-2024-1 " not in str(err.value)


def test_an_allowlisted_cve_passes(scans: ScriptedScans, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAN_CVE_ALLOWLIST", "CVE-2024-9999")
    image = push_image("edc-service", 2)
    scans.set(image, complete(("CVE-2024-9999", "CRITICAL")))

    report = check_image_scans(ScanRequest(environment="staging", lease=scan_lease(), images=[image], now=NOW))

    assert report.status is ScanStatus.PASSED
    assert report.scans[0].allowlisted == ["CVE-2024-9999"]


def test_a_scan_still_running_at_its_deadline_fails_the_gate(scans: ScriptedScans) -> None:
    image = push_image("edc-service", 1)
    scans.set(image, IN_PROGRESS)

    with pytest.raises(ScanFailedError, match="did not complete"):
        check_image_scans(
            ScanRequest(
                environment="staging", lease=scan_lease(), images=[image], deadline=NOW, now=NOW + timedelta(seconds=1)
            )
        )


def test_a_failed_or_unsupported_scan_cannot_pass(scans: ScriptedScans) -> None:
    image = push_image("edc-service", 1)
    scans.set(image, {"imageScanStatus": {"status": "UNSUPPORTED_IMAGE", "description": "not a supported OS"}})

    with pytest.raises(ScanFailedError, match="UNSUPPORTED_IMAGE"):
        check_image_scans(ScanRequest(environment="staging", lease=scan_lease(), images=[image], now=NOW))


# ---- promote ---------------------------------------------------------------------------------------------------
def tags_of(image: ImageRef) -> set[str]:
    ecr = boto3.client("ecr", region_name=REGION)
    detail = ecr.describe_images(repositoryName=image.repository, imageIds=[{"imageDigest": image.digest}])[
        "imageDetails"
    ][0]
    return set(detail.get("imageTags", []))


def test_promotion_tags_the_release_and_is_idempotent_on_immutable_repositories(
    gate_env: dict[str, str],
) -> None:
    image = push_image("edc-service", 1, immutable=True)
    request = PromotionRequest(environment="staging", release_id="rel-1", images=[image], lease=scan_lease())

    first = promote_images(request)
    second = promote_images(request)

    assert [r.outcome for r in first.results] == [TagOutcome.TAGGED]
    assert [r.outcome for r in second.results] == [TagOutcome.UNCHANGED]
    assert "staging-rel-1" in tags_of(image)
    assert "staging" not in tags_of(image)  # a moving tag could never follow the next release here


def test_a_second_release_promotes_in_an_immutable_repository(gate_env: dict[str, str]) -> None:
    old, new = push_image("edc-service", 1, immutable=True), push_image("edc-service", 2, immutable=True)
    promote_images(PromotionRequest(environment="staging", release_id="rel-1", images=[old], lease=scan_lease()))

    report = promote_images(
        PromotionRequest(environment="staging", release_id="rel-2", images=[new], lease=scan_lease())
    )

    assert [(r.tag, r.outcome) for r in report.results] == [("staging-rel-2", TagOutcome.TAGGED)]


def test_promotion_moves_the_environment_tag_in_a_mutable_repository(gate_env: dict[str, str]) -> None:
    image = push_image("edc-service", 1)

    report = promote_images(
        PromotionRequest(environment="staging", release_id="rel-1", images=[image], lease=scan_lease())
    )

    assert [r.tag for r in report.results] == ["staging", "staging-rel-1"]
    assert {"staging", "staging-rel-1"} <= tags_of(image)


def test_an_immutable_tag_on_another_digest_is_a_clear_conflict(gate_env: dict[str, str]) -> None:
    old, new = push_image("edc-service", 1, immutable=True), push_image("edc-service", 2, immutable=True)
    tag_digest(old, "staging", region=REGION)

    with pytest.raises(ImageTagConflictError, match=f"staging is immutable and already points at {old.digest}"):
        tag_digest(new, "staging", region=REGION)


def test_a_mutable_environment_tag_moves_to_the_new_digest(gate_env: dict[str, str]) -> None:
    old, new = push_image("edc-service", 1), push_image("edc-service", 2)
    tag_digest(old, "staging", region=REGION)

    assert tag_digest(new, "staging", region=REGION).outcome is TagOutcome.TAGGED
    assert "staging" in tags_of(new)
    assert "staging" not in tags_of(old)


def test_a_promotion_whose_lock_was_taken_retags_nothing(gate_env: dict[str, str]) -> None:
    """PromoteImages renews the lease before its first retag: a holder whose lock changed hands (the token moved on)
    ends LockLostError and the images keep their tags."""
    image = push_image("edc-service", 1)
    lease = scan_lease()
    LockTable(TABLE, region=REGION).table.update(
        lock_key("staging"), Condition("SET #lease = :next", {"#lease": "lease"}, {":next": lease.token + 1})
    )

    with pytest.raises(LockLostError, match="no longer holds the lock of staging"):
        promote_images(PromotionRequest(environment="staging", release_id="rel-1", images=[image], lease=lease))

    assert not {"staging", "staging-rel-1"} & tags_of(image)


def test_promoting_a_digest_that_is_not_in_the_repository_fails_permanently(gate_env: dict[str, str]) -> None:
    push_image("edc-service", 1)
    with pytest.raises(ImageNotFoundError):
        tag_digest(ImageRef(service="edc-service", digest="sha256:" + "9" * 64), "staging", region=REGION)


# ---- freeze ----------------------------------------------------------------------------------------------------
@pytest.fixture
def frozen(gate_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "FREEZE_CALENDAR",
        json.dumps([{"from": "WED 09:00", "to": "WED 12:00", "reason": "release review", "environments": ["staging"]}]),
    )


def test_a_deploy_inside_a_freeze_window_is_refused(frozen: None) -> None:
    with pytest.raises(FreezeWindowError, match="release review"):
        check_freeze(FreezeCheckRequest(environment="staging", release_id="rel-1", now=NOW))


def test_a_forced_deploy_passes_and_records_who_forced_it(frozen: None) -> None:
    decision = check_freeze(
        FreezeCheckRequest(
            environment="staging",
            release_id="rel-1",
            force=True,
            forced_by="alice",
            force_reason="hotfix",
            execution_arn="arn:x",
            now=NOW,
        )
    )

    assert decision.forced
    assert decision.forced_by == "alice"
    record = read_override(TABLE, "staging", "rel-1", region=REGION)
    assert record is not None
    assert record["forced_by"] == "alice"
    assert record["window_reason"] == "release review"
    assert record["force_reason"] == "hotfix"


def test_outside_the_window_nothing_is_recorded(frozen: None) -> None:
    decision = check_freeze(FreezeCheckRequest(environment="staging", release_id="rel-2", now=NOW + timedelta(hours=3)))
    assert not decision.frozen
    assert read_override(TABLE, "staging", "rel-2", region=REGION) is None
