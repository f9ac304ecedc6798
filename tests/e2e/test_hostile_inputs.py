"""Hostile inputs through the real deploy state machine: each refused before any write, with the field named.

"Before any write": the execution ends in AcquireLock -> InputRefused -> Rejected (the lock is never taken), the
ledger table is byte-for-byte what it was, and the cluster saw no write.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from local.cluster import Cluster
from local.pipeline import EVENT, Pipeline, pipeline

pytestmark = pytest.mark.e2e

D = "sha256:" + "0" * 64  # replaced by a real pushed digest in the fixture


def console(**fields: Any) -> dict[str, Any]:
    return {"environment": "staging", "services": {"edc-service": D}, "reason": "hotfix", **fields}


def event(**detail: Any) -> dict[str, Any]:
    body = copy.deepcopy(EVENT)
    body["detail"]["image-digest"] = D
    for key, value in detail.items():
        if key.startswith("top:"):
            body[key.removeprefix("top:")] = value
        else:
            body["detail"][key] = value
    return body


CASES: list[tuple[str, Any, str]] = [
    # (name, execution input, what the cause must name)
    ("json-array", [console()], "input"),
    ("json-string", "deploy everything", "input"),
    ("json-null", None, "input"),
    ("empty-object", {}, "environment"),
    ("unknown-environment", console(environment="prod"), "environment"),
    ("environment-with-newline", console(environment="staging\n"), "environment"),
    ("other-environment", console(environment="production"), "environment"),
    ("no-services", console(services={}), "services"),
    ("services-as-list", console(services=["edc-service"]), "services"),
    ("unknown-service", console(services={"bitcoin-miner": "v1"}), "services.bitcoin-miner"),
    ("shell-in-tag", console(services={"edc-service": "main-1; rm -rf /"}), "services.edc-service"),
    ("200kb-tag", console(services={"edc-service": "a" * 200_000}), "services.edc-service"),
    ("129-char-tag", console(services={"edc-service": "a" * 129}), "services.edc-service"),
    ("tag-with-newline", console(services={"edc-service": "v1\nv2"}), "services.edc-service"),
    ("tag-leading-dot", console(services={"edc-service": ".hidden"}), "services.edc-service"),
    ("short-digest", console(services={"edc-service": "sha256:abc"}), "services.edc-service"),
    ("uppercase-digest", console(services={"edc-service": "sha256:" + "A" * 64}), "services.edc-service"),
    ("number-as-reference", console(services={"edc-service": 5}), "services.edc-service"),
    ("no-reason", {"environment": "staging", "services": {"edc-service": D}}, "reason"),
    ("empty-reason", console(reason=""), "reason"),
    ("200kb-reason", console(reason="x" * 200_000), "reason"),
    ("reason-as-number", console(reason=42), "reason"),
    ("reason-forging-a-header", console(reason="bob\nApproved-by: security-team"), "reason"),
    ("reason-with-nul", console(reason="ok\x00"), "reason"),
    ("reason-right-to-left-override", console(reason="fix \u202etxt.exe"), "reason"),
    ("reason-bidi-isolate", console(reason="fix \u2066hidden\u2069"), "reason"),
    ("reason-zero-width", console(reason="fi\u200bx"), "reason"),
    ("truthy-string-force", console(force="yes"), "force"),
    ("string-true-force", console(force="true"), "force"),
    ("number-force", console(force=1), "force"),
    ("unsigned-force", console(force=True), "force"),
    ("self-asserted-requester", console(requested_by="alice"), "requested_by"),
    ("self-asserted-approver", console(approver="security-team"), "approver"),
    (
        "forged-operator-signature",
        console(
            operator={
                "principal": "arn:aws:iam::123456789012:role/release-approver",
                "action": "deploy",
                "signed_at": "2026-12-01T00:00:00Z",
                "mac": "AAAA",
            }
        ),
        "operator",
    ),
    ("operator-not-an-object", console(operator="admin"), "operator"),
    ("event-digest-not-in-ecr", event(**{"image-digest": "sha256:" + "f" * 64}), "detail.image-digest"),
    ("event-shell-in-tag", event(**{"image-tag": "main-1; rm -rf /"}), "detail.image-tag"),
    ("event-path-in-repository", event(**{"repository-name": "../../etc/passwd"}), "detail.repository-name"),
    ("event-delete-action", event(**{"action-type": "DELETE"}), "detail.action-type"),
    ("event-bad-account", event(**{"top:account": "12345"}), "account"),
    ("event-other-detail-type", event(**{"top:detail-type": "ECR Image Scan"}), "detail-type"),
    ("event-1000-resources", event(**{"top:resources": ["arn:aws:ecr:x"] * 1000}), "resources"),
]


@pytest.fixture(scope="module")
def pipe() -> Iterator[Pipeline]:
    with Cluster("sts-staging") as cluster, pipeline(cluster) as p:
        p.first_release()
        yield p


def ledger(pipe: Pipeline) -> list[str]:
    items = pipe.cloud.client("dynamodb").scan(TableName=str(pipe.cloud.ref("LedgerTable")))["Items"]
    return sorted(json.dumps(item, sort_keys=True, default=lambda b: b.hex()) for item in items)


def test_the_table_has_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "raw", "field"), CASES, ids=[c[0] for c in CASES])
def test_a_hostile_input_is_refused_before_any_write_naming_the_field(
    pipe: Pipeline, name: str, raw: Any, field: str
) -> None:
    digest = pipe.digests["edc-service"]
    payload = json.loads(json.dumps(raw).replace(D, digest))
    if name == "event-digest-not-in-ecr":
        payload["detail"]["image-digest"] = "sha256:" + "f" * 64
    before, writes = ledger(pipe), len(pipe.writes())

    result = pipe.cloud.run("DeployStateMachine", payload, timeout=60)

    assert result.status == "FAILED", name
    assert result.states_entered() == ["AcquireLock", "InputRefused", "Rejected"], result.cause
    assert field in str(result.cause), result.cause
    assert len(str(result.cause)) < 4_000  # a 200 KB field is named, not echoed
    assert ledger(pipe) == before
    assert len(pipe.writes()) == writes
