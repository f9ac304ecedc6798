"""Access entries and EKS access policies: validation, scope and the documented rules."""

from __future__ import annotations

import pytest

from local.cluster.access import ACCESS_POLICIES, AccessEntries, AccessPolicy
from local.cluster.rbac import Attributes, rule_allows

EDIT = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
ROLE = "arn:aws:iam::123456789012:role/deployer"


def allowed(policy: str, verb: str, group: str, resource: str, subresource: str = "") -> bool:
    attrs = Attributes(verb=verb, resource_request=True, group=group, resource=resource, subresource=subresource)
    return any(rule_allows(r, attrs) for r in ACCESS_POLICIES[policy])


def test_edit_policy_has_no_rbac_and_no_cluster_scoped_kinds_view_cannot_write() -> None:
    assert allowed("AmazonEKSEditPolicy", "patch", "apps", "deployments", "scale")
    assert allowed("AmazonEKSEditPolicy", "get", "", "services", "proxy")
    assert not allowed("AmazonEKSEditPolicy", "create", "rbac.authorization.k8s.io", "roles")
    assert not allowed("AmazonEKSEditPolicy", "list", "apiextensions.k8s.io", "customresourcedefinitions")
    assert allowed("AmazonEKSAdminPolicy", "create", "rbac.authorization.k8s.io", "roles")
    assert not allowed("AmazonEKSViewPolicy", "patch", "apps", "deployments")
    assert not allowed("AmazonEKSViewPolicy", "get", "", "secrets")
    assert allowed("AmazonEKSClusterAdminPolicy", "deletecollection", "anything.example.com", "widgets")


def test_namespace_scope_covers_only_its_namespaces_never_the_cluster() -> None:
    scoped = AccessPolicy(EDIT, namespaces=("apps",))
    assert scoped.applies("apps")
    assert not scoped.applies("kube-system")
    assert not scoped.applies("")
    assert AccessPolicy(EDIT).applies("")


def test_bad_policies_and_entries_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="unknown EKS access policy"):
        AccessPolicy("arn:aws:eks::aws:cluster-access-policy/AmazonEKSMadeUpPolicy")
    with pytest.raises(ValueError, match="at least one namespace"):
        AccessPolicy(EDIT, namespaces=())
    entries = AccessEntries()
    with pytest.raises(ValueError, match="system:"):
        entries.put(ROLE, kubernetes_groups=["system:masters"])
    with pytest.raises(ValueError, match=r"AccessPolicies\[0\].AccessScope.Type"):
        entries.from_cloudformation({"PrincipalArn": ROLE, "AccessPolicies": [{"PolicyArn": EDIT}]})
    with pytest.raises(ValueError, match="PrincipalArn"):
        entries.from_cloudformation({"PrincipalArn": {"Ref": "DeployRoleArn"}})
    assert entries.get(ROLE) is None


def test_a_role_session_authenticates_with_the_session_in_its_username() -> None:
    entries = AccessEntries()
    entries.put(ROLE, kubernetes_groups=["team"])
    user = entries.authenticate("arn:aws:sts::123456789012:assumed-role/deployer/ci-42", "ASIAKEY")
    assert user is not None
    assert user.name == "arn:aws:sts::123456789012:assumed-role/deployer/ci-42"
    assert user.groups == ("team", "system:authenticated")
    assert entries.authenticate("arn:aws:sts::123456789012:assumed-role/other/ci", "ASIAKEY") is None
