"""The operator path's pure rules: who a principal is, who may approve, what free text and bodies may contain."""

from __future__ import annotations

from typing import Any

import pytest
from controlplane.errors import InputValidationError
from controlplane.models.operator import is_one_of, principal_key
from controlplane.steps.operator import parse_body, resend_request

ROLE = "arn:aws:iam::123456789012:role/release-approver"


@pytest.mark.parametrize(
    ("arn", "key"),
    [
        ("arn:aws:sts::123456789012:assumed-role/release-approver/carol", ROLE),
        ("arn:aws:iam::123456789012:role/ops/release-approver", ROLE),  # a role path is not part of the identity
        ("arn:aws:iam::123456789012:user/ci", "arn:aws:iam::123456789012:user/ci"),
        ("arn:aws:iam::123456789012:user/team/ci", "arn:aws:iam::123456789012:user/ci"),
    ],
)
def test_a_principal_is_its_user_or_role_whatever_the_session(arn: str, key: str) -> None:
    assert principal_key(arn) == key


def test_approvers_match_sessions_of_their_roles_only_in_their_account() -> None:
    approvers = (ROLE,)

    assert is_one_of("arn:aws:sts::123456789012:assumed-role/release-approver/anyone", approvers)
    assert not is_one_of("arn:aws:sts::999999999999:assumed-role/release-approver/carol", approvers)
    assert not is_one_of("arn:aws:sts::123456789012:assumed-role/release-approver-2/carol", approvers)
    assert not is_one_of("arn:aws:iam::123456789012:user/release-approver", approvers)


UNQUARANTINE = {
    "action": "unquarantine",
    "environment": "staging",
    "service": "edc-service",
    "digest": "sha256:" + "a" * 64,
    "reason": "fixed upstream",
}
DEPLOY = {"action": "deploy", "environment": "staging", "services": {"edc-service": "v1"}, "reason": "fix"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**DEPLOY, "force": "yes"}, "force"),
        ({**DEPLOY, "force": 1}, "force"),
        ({**DEPLOY, "reason": "line\nbreak"}, "reason"),
        ({**DEPLOY, "reason": "\u202eevil"}, "reason"),
        ({**DEPLOY, "reason": "x" * 501}, "reason"),
        ({**DEPLOY, "requested_by": "alice"}, "requested_by"),
        ({"action": "approve", "release_id": "rel-" + "0" * 20, "approver": "me"}, "approver"),
        ({"action": "offhours", "environment": "staging", "mode": "nap"}, "mode"),
        ({"action": "rollback", "environment": "staging", "release_id": "latest"}, "release_id"),
        ({"action": "rollback", "environment": "staging", "acknowledge": "yes"}, "acknowledge"),
        ({**UNQUARANTINE, "service": "no-such-service"}, "service"),
        ({**UNQUARANTINE, "digest": "sha256:abc"}, "digest"),
        ({**UNQUARANTINE, "reason": ""}, "reason"),
        ({**UNQUARANTINE, "by": "alice"}, "by"),
    ],
)
def test_operator_bodies_are_strict_and_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InputValidationError, match=field):
        parse_body(body)


def test_a_well_formed_body_parses() -> None:
    assert parse_body({**DEPLOY, "force": True}).force is True  # type: ignore[union-attr]


def test_an_unquarantine_body_parses() -> None:
    assert parse_body(UNQUARANTINE).digest == "sha256:" + "a" * 64  # type: ignore[union-attr]


MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:sts-deploy"
PUSH = {
    "version": "0",
    "id": "4f1a5c2e-0b7d-4a36-9c51-5d0e7c3f2a11",
    "detail-type": "ECR Image Action",
    "source": "aws.ecr",
    "account": "123456789012",
    "time": "2026-12-01T10:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {
        "result": "SUCCESS",
        "action-type": "PUSH",
        "repository-name": "clinical-trials/edc-service",
        "image-digest": "sha256:" + "a" * 64,
        "image-tag": "main-2",
    },
}


def _resend(**detail: Any) -> Any:
    return parse_body(
        {"action": "resend", "environment": "staging", "event": PUSH | {"detail": PUSH["detail"] | detail}}
    )


def test_a_dead_lettered_push_is_resent_only_if_the_push_rule_would_have_forwarded_it() -> None:
    assert resend_request(_resend(), MACHINE).detail.image_digest == "sha256:" + "a" * 64
    with pytest.raises(InputValidationError, match=r"image-tag: 'staging-rel-1' is a promotion's retag"):
        resend_request(_resend(**{"image-tag": "staging-rel-1"}), MACHINE)
    with pytest.raises(InputValidationError, match=r"repository-name: not a repository of the platform"):
        resend_request(_resend(**{"repository-name": "other/edc-service"}), MACHINE)
    foreign = r"account/region: 123456789012/us-east-1 is not this control plane's \(999999999999"
    with pytest.raises(InputValidationError, match=foreign):
        resend_request(_resend(), MACHINE.replace("123456789012", "999999999999"))
    with pytest.raises(InputValidationError, match="event"):
        resend_request(parse_body({"action": "resend", "environment": "staging", "event": {"id": "x"}}), MACHINE)
