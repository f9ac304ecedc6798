"""The CloudFormation service role and its permissions boundaries, as shipped in template.yaml and the platform
templates: stacks cannot create principals beyond PlatformBoundary, and the control plane can pass only this role,
only its own templates, and cannot delete, unprotect or re-policy a data stack.

What IAM makes of these documents at run time is proven with the local cloud's evaluator in
tests/e2e/test_stack_role.py; these tests pin the documents' shape (a statement that loses its condition fails here).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.decode import decode_str

from local.aws.cfn_authz import RESOURCE_ACCESSES
from local.aws.iam import Policy, bounded, evaluate, wildcard_match

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PLATFORM_TEMPLATES = sorted((REPO / "manifests" / "cloudformation").glob("*.yaml"))
ROLE_WRITES = {
    "iam:createrole",
    "iam:putrolepolicy",
    "iam:deleterolepolicy",
    "iam:attachrolepolicy",
    "iam:detachrolepolicy",
    "iam:putrolepermissionsboundary",
}
PLATFORM_ROLE = r":role/(\$\{ProjectName\}|clinical-trials)-\$\{Environment\}-\*$"
PROVISIONING_FUNCTIONS = ("StartStacksFunction", "AdvanceStacksFunction")
PROTECTION_ACTIONS = {
    "cloudformation:DeleteStack",
    "cloudformation:UpdateTerminationProtection",
    "cloudformation:SetStackPolicy",
}


def _load(path: Path) -> dict[str, Any]:
    template, matches = decode_str(path.read_text())
    assert not matches, f"{path.name} does not parse: {matches}"
    assert template is not None
    return dict(template)


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return _load(REPO / "template.yaml")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _list(document["Statement"]) if isinstance(s, dict)]


def _actions(statement: dict[str, Any]) -> set[str]:
    return {str(a).lower() for a in _list(statement.get("Action", []))}


def _sub(value: Any) -> str:
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else str(sub[0])
    return ""


def _function_statements(sam: dict[str, Any], logical_id: str) -> list[dict[str, Any]]:
    policies = sam["Resources"][logical_id]["Properties"].get("Policies", [])
    return [s for p in policies if isinstance(p, dict) and "Statement" in p for s in _statements(p)]


def _role_statements(sam: dict[str, Any], logical_id: str) -> list[dict[str, Any]]:
    properties = sam["Resources"][logical_id]["Properties"]
    return [s for p in properties.get("Policies", []) for s in _statements(p["PolicyDocument"])]


def _data_stacks() -> set[str]:
    catalog = yaml.safe_load((REPO / "manifests" / "stacks.yaml").read_text())
    names = catalog["stack_names"]
    return {
        names[spec["scope"]].format(project="${ProjectName}", environment="${Environment}", suffix=spec["suffix"])
        for spec in catalog["stacks"]
        if spec.get("holds_data")
    }


# ---- the platform templates ---------------------------------------------------------------------------------------


def test_every_role_a_platform_stack_creates_carries_the_boundary_it_is_given() -> None:
    catalog = {s["template"]: s for s in yaml.safe_load((REPO / "manifests" / "stacks.yaml").read_text())["stacks"]}
    with_roles = 0
    for path in PLATFORM_TEMPLATES:
        tpl = _load(path)
        roles = {k: v for k, v in tpl["Resources"].items() if v["Type"] in {"AWS::IAM::Role", "AWS::IAM::User"}}
        if not roles:
            continue
        with_roles += 1
        for logical_id, role in roles.items():
            boundary = role["Properties"].get("PermissionsBoundary")
            assert boundary == {"Ref": "PermissionsBoundaryArn"}, f"{path.name} {logical_id}: {boundary}"
        parameter = tpl["Parameters"]["PermissionsBoundaryArn"]
        assert "Default" not in parameter, f"{path.name}: a boundary is never optional"
        assert "PermissionsBoundaryArn" in catalog[path.name]["inputs"], f"stacks.yaml {path.name}"
    assert with_roles, "no platform template creates a role: the test would prove nothing"


def test_every_action_a_platform_role_is_granted_lies_within_the_boundary(sam: dict[str, Any]) -> None:
    """A grant beyond the boundary would silently do nothing on AWS: widen the boundary (deliberately) or the grant."""
    boundary = sam["Resources"]["PlatformBoundary"]["Properties"]["PolicyDocument"]
    ceiling = [a for s in _statements(boundary) if s["Effect"] == "Allow" for a in _actions(s)]
    checked = 0
    for path in PLATFORM_TEMPLATES:
        tpl = _load(path)
        for logical_id, role in tpl["Resources"].items():
            if role["Type"] != "AWS::IAM::Role":
                continue
            for policy in role["Properties"].get("Policies", []):
                for statement in _statements(policy["PolicyDocument"]):
                    if statement["Effect"] != "Allow":
                        continue
                    for action in _actions(statement):
                        checked += 1
                        assert any(wildcard_match(c, action, ignore_case=True) for c in ceiling), (
                            f"{path.name} {logical_id} {statement.get('Sid')}: {action} is outside PlatformBoundary"
                        )
    assert checked > 50


def test_the_provisioning_functions_hand_the_platform_boundary_to_the_stacks(sam: dict[str, Any]) -> None:
    for logical_id in PROVISIONING_FUNCTIONS:
        env = sam["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
        text, variables = env["STACK_INPUTS"]["Fn::Sub"]
        assert '"PermissionsBoundaryArn": "${PlatformBoundary}"' in text, logical_id
        assert "PlatformBoundary" not in variables, logical_id  # resolved from the resource, not overridden
        assert env["STACK_ROLE_ARN"] == {"Fn::GetAtt": ["StackRole", "Arn"]}, logical_id
    assert "StackRoleArn" not in sam["Parameters"], "no external role: the shipped one is the only one passed"


# ---- the stack role -----------------------------------------------------------------------------------------------


def test_the_stack_role_is_trusted_by_cloudformation_of_this_account_only(sam: dict[str, Any]) -> None:
    properties = sam["Resources"]["StackRole"]["Properties"]
    (trust,) = _statements(properties["AssumeRolePolicyDocument"])
    assert trust["Principal"] == {"Service": "cloudformation.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert properties["PermissionsBoundary"] == {"Ref": "StackRoleBoundary"}


def test_the_stack_role_writes_roles_only_with_the_platform_boundary(sam: dict[str, Any]) -> None:
    writes = [s for s in _role_statements(sam, "StackRole") if _actions(s) & ROLE_WRITES]
    assert writes
    for statement in writes:
        assert statement["Effect"] == "Allow"
        assert statement["Condition"] == {"StringEquals": {"iam:PermissionsBoundary": {"Ref": "PlatformBoundary"}}}, (
            statement["Sid"]
        )
    for statement in _role_statements(sam, "StackRole"):
        actions = _actions(statement)
        assert not any(a in {"iam:*", "*"} or a.startswith(("iam:createpolicy", "iam:deletepolicy")) for a in actions)
        assert "iam:deleterolepermissionsboundary" not in actions, statement["Sid"]
        resources = [_sub(r) or str(r) for r in _list(statement["Resource"])]
        if actions & ROLE_WRITES or "iam:passrole" in actions:
            assert all(re.search(PLATFORM_ROLE, r) for r in resources), statement["Sid"]


def test_the_stack_roles_boundary_keeps_it_from_escaping(sam: dict[str, Any]) -> None:
    document = sam["Resources"]["StackRoleBoundary"]["Properties"]["PolicyDocument"]
    denies = {s["Sid"]: s for s in _statements(document) if s["Effect"] == "Deny"}
    without = denies["RolesOnlyWithThePlatformBoundary"]
    assert _actions(without) == ROLE_WRITES
    assert without["Condition"] == {"StringNotEquals": {"iam:PermissionsBoundary": {"Ref": "PlatformBoundary"}}}
    assert "iam:deleterolepermissionsboundary" in _actions(denies["NoBoundaryRemoval"])
    edits = denies["NoBoundaryEdits"]
    assert {"iam:createpolicyversion", "iam:deletepolicy", "iam:setdefaultpolicyversion"} <= _actions(edits)
    targets = [_sub(r) or r for r in edits["Resource"]]
    assert {"Ref": "PlatformBoundary"} in targets
    assert any(str(t).endswith("policy/${AWS::StackName}-stack-role-boundary") for t in targets)
    name = sam["Resources"]["StackRoleBoundary"]["Properties"]["ManagedPolicyName"]
    assert _sub(name) == "${AWS::StackName}-stack-role-boundary"
    assert _sub(denies["NoChangesToItself"]["Resource"]).endswith(
        ":role/" + _sub(sam["Resources"]["StackRole"]["Properties"]["RoleName"])
    )
    keys = {r["Fn::GetAtt"][0] for r in denies["NotTheControlPlanesKeys"]["Resource"] if "Fn::GetAtt" in r}
    assert keys >= {"DecisionKey", "ApprovalTokenKey", "LogsKey"}


# ---- the control plane's use of CloudFormation -------------------------------------------------------------------


def test_only_the_provisioning_functions_touch_cloudformation(sam: dict[str, Any]) -> None:
    users = set()
    for logical_id, resource in sam["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        if any(a.startswith("cloudformation:") for s in _function_statements(sam, logical_id) for a in _actions(s)):
            users.add(logical_id)
    assert users == set(PROVISIONING_FUNCTIONS)


@pytest.mark.parametrize("logical_id", PROVISIONING_FUNCTIONS)
def test_stacks_are_created_only_with_the_stack_role_and_our_templates(sam: dict[str, Any], logical_id: str) -> None:
    statements = _function_statements(sam, logical_id)
    creates = [s for s in statements if _actions(s) & {"cloudformation:createchangeset", "cloudformation:createstack"}]
    assert creates
    for statement in creates:
        condition = statement["Condition"]
        assert condition["StringEquals"] == {"cloudformation:RoleArn": {"Fn::GetAtt": ["StackRole", "Arn"]}}
        url = _sub(condition["StringLike"]["cloudformation:TemplateUrl"])
        assert url == "https://${ArtifactsBucket}.s3.${AWS::Region}.amazonaws.com/cloudformation/*"
        assert condition["Null"] == {"cloudformation:ImportResourceTypes": "true"}
    allowed = {a for s in statements if s["Effect"] == "Allow" for a in _actions(s)}
    assert not allowed & {"cloudformation:*", "cloudformation:updatestack", "cloudformation:createstackset"}
    (passing,) = [s for s in statements if "iam:passrole" in _actions(s)]
    assert passing["Resource"] == {"Fn::GetAtt": ["StackRole", "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}


@pytest.mark.parametrize("logical_id", PROVISIONING_FUNCTIONS)
def test_data_stacks_cannot_be_deleted_unprotected_or_repolicied(sam: dict[str, Any], logical_id: str) -> None:
    denies = [s for s in _function_statements(sam, logical_id) if s["Effect"] == "Deny"]
    (deny,) = [s for s in denies if {a.lower() for a in PROTECTION_ACTIONS} <= _actions(s)]
    assert "Condition" not in deny
    stacks = {re.sub(r"^arn:.*:stack/(.+)/\*$", r"\1", _sub(r)) for r in deny["Resource"]}
    assert stacks == _data_stacks()
    assert len(stacks) == 3  # ecr, storage, data


# ---- the local cloud's model of it ----------------------------------------------------------------------------------


def test_the_local_cloud_knows_what_cloudformation_needs_for_every_platform_resource_type() -> None:
    types = {r["Type"] for path in PLATFORM_TEMPLATES for r in _load(path)["Resources"].values()}
    assert types - set(RESOURCE_ACCESSES) == set(), "add them to local/aws/cfn_authz.py RESOURCE_ACCESSES"


def test_a_permissions_boundary_caps_what_the_identity_policies_allow() -> None:
    identity = [Policy.parse("identity", {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})]
    boundary = Policy.parse(
        "boundary",
        {
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:*", "iam:CreateRole"], "Resource": "*"},
                {
                    "Effect": "Deny",
                    "Action": "iam:CreateRole",
                    "Resource": "*",
                    "Condition": {"StringNotEquals": {"iam:PermissionsBoundary": "arn:aws:iam::1:policy/b"}},
                },
            ]
        },
    )

    def decide(action: str, context: dict[str, list[str]] | None = None) -> str:
        return bounded(evaluate(identity, action, "*", context), boundary, action, "*", context or {})

    assert decide("s3:GetObject") == "Allow"
    assert decide("sns:Publish") == "BoundaryImplicitDeny"  # the identity policy allows it; the boundary does not
    assert decide("iam:CreateRole") == "BoundaryExplicitDeny"
    assert decide("iam:CreateRole", {"iam:PermissionsBoundary": ["arn:aws:iam::1:policy/b"]}) == "Allow"
    assert bounded("ImplicitDeny", boundary, "s3:GetObject", "*", {}) == "ImplicitDeny"  # a boundary grants nothing
    assert bounded("Allow", None, "sns:Publish", "*", {}) == "Allow"
