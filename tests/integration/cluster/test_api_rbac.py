"""EKS authentication -> authorization: access entries, EKS access policies and RBAC on every request.

Driven over HTTPS with the official client and kubectl, with tokens signed by principals registered in the
cluster's identities (what STS GetCallerIdentity would answer for their keys).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from local.cluster import AccessPolicy, Cluster
from local.cluster.access import canonical_principal
from tests.integration.cluster.conftest import KUBECTL

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/path/team-deployer"
KEY, SECRET = "ASIATEAMDEPLOYER0001", "team-deployer-secret"
EDIT = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
VIEW = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
USER = f"arn:aws:sts::{ACCOUNT}:assumed-role/team-deployer/ci"


def _client(cluster: Cluster, token: str) -> client.ApiClient:
    config = client.Configuration(host=cluster.endpoint)
    config.ssl_ca_cert = str(cluster.ca_file)
    config.api_key = {"authorization": token}
    config.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(configuration=config)


@pytest.fixture
def team(cluster: Cluster) -> Iterator[client.ApiClient]:
    """A principal (a session of a role with a path) mapped to group ``team`` and nothing else yet."""
    cluster.identities.register(KEY, USER)
    cluster.access_entries.put(f"arn:aws:iam::{ACCOUNT}:role/team-deployer", kubernetes_groups=["team"])
    api = _client(cluster, cluster.token_for(KEY, SECRET))
    yield api
    api.close()


@pytest.fixture
def admin(cluster: Cluster) -> Iterator[client.ApiClient]:
    api = _client(cluster, cluster.admin_token())
    yield api
    api.close()


def _denied(exc: pytest.ExceptionInfo[ApiException]) -> tuple[int, str]:
    body = json.loads(exc.value.body)
    return exc.value.status, str(body["message"])


def _apply(admin: client.ApiClient, doc: dict[str, Any]) -> None:
    from kubernetes import utils  # noqa: PLC0415

    utils.create_from_dict(admin, doc)


def _role(admin: client.ApiClient, namespace: str, name: str, rules: list[dict[str, Any]]) -> None:
    _apply(
        admin,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": rules,
        },
    )
    _apply(
        admin,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team"}],
        },
    )


def _deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}},
        },
    }


def test_canonical_principal_drops_session_and_path() -> None:
    assert canonical_principal(USER) == f"arn:aws:iam::{ACCOUNT}:role/team-deployer"
    assert canonical_principal(ROLE) == f"arn:aws:iam::{ACCOUNT}:role/team-deployer"
    assert canonical_principal(f"arn:aws:iam::{ACCOUNT}:user/jane") == f"arn:aws:iam::{ACCOUNT}:user/jane"


def test_unknown_key_and_unmapped_principal_get_401(cluster: Cluster) -> None:
    unknown = _client(cluster, cluster.token_for("ASIAUNKNOWNKEY000001", "x"))
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(unknown).list_namespace()
    assert exc.value.status == 401
    cluster.identities.register("ASIAUNMAPPED00000001", f"arn:aws:sts::{ACCOUNT}:assumed-role/nobody/s")
    unmapped = _client(cluster, cluster.token_for("ASIAUNMAPPED00000001", "x"))
    with pytest.raises(ApiException) as exc:
        client.VersionApi(unmapped).get_code()
    assert exc.value.status == 401
    assert json.loads(exc.value.body)["message"] == "Unauthorized"


def test_authenticated_user_without_bindings_can_discover_but_not_read(
    cluster: Cluster, team: client.ApiClient
) -> None:
    assert client.VersionApi(team).get_code().git_version.startswith("v1.")
    assert client.CoreApi(team).get_api_versions().versions == ["v1"]
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(team).list_namespaced_pod("default")
    assert _denied(exc) == (
        403,
        f'pods is forbidden: User "{USER}" cannot list resource "pods" in API group "" in the namespace "default"',
    )
    with pytest.raises(ApiException) as exc:
        client.ApiextensionsV1Api(team).list_custom_resource_definition()
    assert _denied(exc) == (
        403,
        (
            f'customresourcedefinitions.apiextensions.k8s.io is forbidden: User "{USER}" cannot list resource '
            '"customresourcedefinitions" in API group "apiextensions.k8s.io" at the cluster scope'
        ),
    )


def test_role_binding_grants_exactly_its_verbs_subresources_and_names(
    cluster: Cluster, team: client.ApiClient, admin: client.ApiClient
) -> None:
    _role(
        admin,
        "default",
        "deployer",
        [
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "create", "patch"]},
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"], "verbs": ["get"]},
        ],
    )
    apps = client.AppsV1Api(team)
    apps.create_namespaced_deployment("default", _deployment("web"))
    apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "y"}}})
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 2}})
    assert _denied(exc) == (
        403,
        (
            f'deployments.apps "web" is forbidden: User "{USER}" cannot patch resource "deployments/scale" in API '
            'group "apps" in the namespace "default"'
        ),
    )
    with pytest.raises(ApiException) as exc:
        apps.delete_namespaced_deployment("web", "default")
    assert exc.value.status == 403
    with pytest.raises(ApiException) as exc:  # a dry run is authorized like the real write
        apps.create_namespaced_deployment("kube-system", _deployment("web"), dry_run="All")
    assert exc.value.status == 403
    v1 = client.CoreV1Api(team)
    client.CoreV1Api(admin).create_namespaced_config_map(
        "default", {"metadata": {"name": "settings"}, "data": {"a": "1"}}
    )
    client.CoreV1Api(admin).create_namespaced_config_map("default", {"metadata": {"name": "other"}})
    assert v1.read_namespaced_config_map("settings", "default").data == {"a": "1"}
    with pytest.raises(ApiException) as exc:
        v1.read_namespaced_config_map("other", "default")
    assert exc.value.status == 403
    with pytest.raises(ApiException) as exc:
        v1.list_namespaced_config_map("default")  # resourceNames never cover a list
    assert exc.value.status == 403
    with pytest.raises(ApiException) as exc:
        v1.connect_get_namespaced_service_proxy_with_path("web", "default", "healthz")
    assert _denied(exc)[1].endswith('cannot get resource "services/proxy" in API group "" in the namespace "default"')


def test_apply_that_creates_needs_create_too(cluster: Cluster, team: client.ApiClient, admin: client.ApiClient) -> None:
    _role(admin, "default", "patcher", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}])
    with pytest.raises(ApiException) as exc:
        team.call_api(
            "/api/v1/namespaces/default/configmaps/new",
            "PATCH",
            query_params=[("fieldManager", "t")],
            header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
            body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}},
            auth_settings=["BearerToken"],
            _preload_content=False,
        )
    assert _denied(exc) == (
        403,
        (
            f'configmaps "new" is forbidden: User "{USER}" cannot create resource "configmaps" in API group "" '
            'in the namespace "default"'
        ),
    )


def test_cluster_role_aggregation_and_cluster_role_binding(
    cluster: Cluster, team: client.ApiClient, admin: client.ApiClient
) -> None:
    rbac = client.RbacAuthorizationV1Api(admin)
    rbac.create_cluster_role(
        {
            "metadata": {"name": "team-aggregate"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"team/aggregate": "true"}}]},
        }
    )
    rbac.create_cluster_role(
        {
            "metadata": {"name": "team-nodes", "labels": {"team/aggregate": "true"}},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}],
        }
    )
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": "team-aggregate"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "team-aggregate"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team"}],
        }
    )
    assert client.CoreV1Api(team).list_node().items
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(team).read_node(client.CoreV1Api(admin).list_node().items[0].metadata.name)
    assert exc.value.status == 403


def test_namespace_scoped_edit_policy_cannot_touch_cluster_scope(cluster: Cluster) -> None:
    cluster.identities.register("ASIAEDITOR0000000001", f"arn:aws:sts::{ACCOUNT}:assumed-role/editor/s")
    cluster.access_entries.put(
        f"arn:aws:iam::{ACCOUNT}:role/editor", policies=[AccessPolicy(EDIT, namespaces=("default",))]
    )
    api = _client(cluster, cluster.token_for("ASIAEDITOR0000000001", "x"))
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment("default", _deployment("web"))
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 2}})
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("kube-system", _deployment("web"))
    assert exc.value.status == 403
    with pytest.raises(ApiException) as exc:
        client.StorageV1Api(api).list_storage_class()
    assert _denied(exc)[1].endswith(
        'cannot list resource "storageclasses" in API group "storage.k8s.io" at the cluster scope'
    )
    with pytest.raises(ApiException) as exc:
        client.RbacAuthorizationV1Api(api).list_namespaced_role("default")  # edit grants no RBAC, admin does
    assert exc.value.status == 403


def test_deny_rules_apply_on_top_of_rbac(cluster: Cluster, admin: client.ApiClient) -> None:
    cluster.deny(verb="list", resource="pods")
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(admin).list_namespaced_pod("default")
    assert exc.value.status == 403


def _ssar(api: client.ApiClient, **attrs: str) -> bool:
    review = client.AuthorizationV1Api(api).create_self_subject_access_review({"spec": {"resourceAttributes": attrs}})
    return bool(review.status.allowed)


def test_self_subject_access_review_matches_what_requests_get(
    cluster: Cluster, team: client.ApiClient, admin: client.ApiClient
) -> None:
    _role(admin, "default", "reader", [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}])
    assert _ssar(team, verb="list", group="apps", resource="deployments", namespace="default")
    assert not _ssar(team, verb="list", group="apps", resource="deployments", namespace="kube-system")
    assert not _ssar(team, verb="patch", group="apps", resource="deployments", subresource="scale", namespace="default")
    client.AppsV1Api(team).list_namespaced_deployment("default")
    with pytest.raises(ApiException):
        client.AppsV1Api(team).list_namespaced_deployment("kube-system")
    rules = client.AuthorizationV1Api(team).create_self_subject_rules_review({"spec": {"namespace": "default"}})
    found = [(r.api_groups, r.resources, r.verbs) for r in rules.status.resource_rules]
    assert (["apps"], ["deployments"], ["list"]) in found
    assert (["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], ["create"]) in found
    assert rules.status.incomplete is False
    me = client.AuthenticationV1Api(team).create_self_subject_review({})
    assert me.status.user_info.username == USER
    assert me.status.user_info.groups == ["team", "system:authenticated"]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")
def test_kubectl_auth_can_i_and_whoami(
    cluster: Cluster, team: client.ApiClient, admin: client.ApiClient, tmp_path: Path
) -> None:
    _role(admin, "default", "reader", [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]}])
    config = cluster.write_kubeconfig(tmp_path / "kubeconfig", token=cluster.token_for(KEY, SECRET))

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        return subprocess.run(
            [KUBECTL, "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "cache"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    yes = kubectl("auth", "can-i", "list", "deployments.apps", "-n", "default")
    assert (yes.returncode, yes.stdout.strip()) == (0, "yes"), yes.stderr
    no = kubectl("auth", "can-i", "delete", "deployments.apps", "-n", "default")
    assert (no.returncode, no.stdout.strip()) == (1, "no"), no.stderr
    who = kubectl("auth", "whoami", "-o", "json")
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == USER
    denied = kubectl("get", "pods", "-n", "default")
    assert denied.returncode == 1
    assert f'User "{USER}" cannot list resource "pods" in API group "" in the namespace "default"' in denied.stderr
