"""Invariants of the fault matrix: what must hold after any fault (the ``pipe`` fixture is tests/conftest.py's).

Invariants (issue 12), checked after every scenario by :func:`assert_invariants`:

* the execution ends with a clear cause (a FAILED execution names its error and cause);
* the cluster runs exactly the last-known-good release or the new one (every owned workload's images);
* the ledger holds one record per release, with the status the execution ended with;
* the lock is free or held by a RUNNING execution;
* no push is lost: every pushed digest is deployed, queued, or named in a recorded outcome.
"""

from __future__ import annotations

from typing import Any

from controlplane import platform
from controlplane.aws.lock import LockTable
from controlplane.models.release import ReleaseStatus

from local.pipeline import REGION, Pipeline


def function_name(pipe: Pipeline, logical_id: str) -> str:
    return str(pipe.cloud.ref(logical_id))


def running_images(pipe: Pipeline) -> dict[str, str]:
    """service -> the image its Deployment/StatefulSet runs."""
    found: dict[str, str] = {}
    for key, obj in pipe.owned().items():
        name = key.rsplit("/", 1)[-1]
        if name in platform.SERVICE_NAMES and obj["images"]:
            found[name] = obj["images"][0]
    return found


def digest_of(image: str) -> str:
    return image.rsplit("@", 1)[-1]


def assert_invariants(pipe: Pipeline, result: Any, *, new_release: str | None = None) -> None:
    if result.status == "FAILED":
        assert result.error, "a failed execution names its error"
        assert result.cause, "a failed execution says why"
    ledger = pipe.ledger
    lkg = ledger.last_known_good("staging")
    records = pipe.releases("staging")
    ids = [r.release_id for r in records]
    assert len(ids) == len(set(ids)), f"one ledger record per release: {ids}"
    assert not [r for r in records if r.status is ReleaseStatus.PLANNED], "no release left planned"
    running = {s: digest_of(i) for s, i in running_images(pipe).items()}
    allowed = [ledger.require_release(lkg.release_id).images] if lkg else []
    if new_release:
        allowed.append(ledger.require_release(new_release).images)
    if allowed:
        assert any(running == dict(images) for images in allowed), (
            f"the cluster runs neither the last known-good release nor the new one: {running}"
        )
    lock = LockTable(str(pipe.cloud.ref("LedgerTable")), region=REGION).read("staging")
    if lock is not None:
        status = pipe.cloud.client("stepfunctions").describe_execution(executionArn=lock.owner)["status"]
        assert status == "RUNNING", f"the lock is held by {lock.owner}, which is {status}"
