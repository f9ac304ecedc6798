"""The control plane's access to the emulated EKS cluster, wired the way the real bootstrap wires it.

On AWS the ``eks`` stack declares the deploy role's access entry (``DeployRoleAccessEntry``: a Kubernetes group,
no access policy) and a cluster administrator applies ``manifests/cluster-bootstrap/*.yaml`` once. The harness does
the same: :func:`grant_control_plane` registers that access entry (from eks.yaml, with the control plane's
``ClusterDeployRole`` as principal) and applies the bootstrap RBAC as the cluster creator, before the first release.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import yaml

from local.aws.template import load_template

REPO = Path(__file__).resolve().parents[2]
EKS_TEMPLATE = REPO / "manifests" / "cloudformation" / "eks.yaml"
CLUSTER_BOOTSTRAP = REPO / "manifests" / "cluster-bootstrap"
DEPLOY_ROLE = "ClusterDeployRole"
FALLBACK_DEPLOY_ROLE_NAME = "control-plane-deploy"
"""The deploy role's name when the cloud runs without the control plane's template (the test plays its steps)."""
ACCESS_ENTRY = "DeployRoleAccessEntry"
DRIFT_ROLE = "DriftRole"
DRIFT_ACCESS_ENTRY = "DriftRoleAccessEntry"
HARNESS_SESSION = "local-harness"


class AccessEntriesLike(Protocol):
    def from_cloudformation(self, properties: dict[str, Any]) -> Any: ...


class IdentitiesLike(Protocol):
    resolve: Callable[[str], str | None]

    def register(self, access_key_id: str, arn: str) -> None: ...


@runtime_checkable
class GrantableCluster(Protocol):
    @property
    def access_entries(self) -> AccessEntriesLike: ...

    @property
    def identities(self) -> IdentitiesLike: ...

    def bootstrap(self, documents: list[dict[str, Any]]) -> None: ...


def _resolve(value: Any, params: dict[str, str]) -> Any:
    """``Ref`` and ``Fn::Sub`` (string form) over ``params``; anything else must already be plain."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return params[str(value["Ref"])]
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return re.sub(r"\$\{([^}]+)\}", lambda m: params[m.group(1)], value["Fn::Sub"])
    if isinstance(value, dict):
        return {k: _resolve(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, params) for v in value]
    return value


def deploy_access_entry(deploy_role_arn: str, *, cluster_name: str, partition: str = "aws") -> dict[str, Any]:
    """``DeployRoleAccessEntry``'s Properties from eks.yaml, resolved for this deploy role."""
    return _access_entry(
        ACCESS_ENTRY, {"DeployRoleArn": deploy_role_arn}, cluster_name=cluster_name, partition=partition
    )


def drift_access_entry(drift_role_arn: str, *, cluster_name: str, partition: str = "aws") -> dict[str, Any]:
    """``DriftRoleAccessEntry``'s Properties from eks.yaml, resolved for this drift role."""
    return _access_entry(
        DRIFT_ACCESS_ENTRY, {"DriftRoleArn": drift_role_arn}, cluster_name=cluster_name, partition=partition
    )


def _access_entry(logical_id: str, params: dict[str, str], *, cluster_name: str, partition: str) -> dict[str, Any]:
    body = load_template(EKS_TEMPLATE)["Resources"][logical_id]
    props = {k: v for k, v in body["Properties"].items() if k not in ("Tags", "ClusterName")}
    resolved: dict[str, Any] = _resolve(props, {**params, "AWS::Partition": partition, "Cluster": cluster_name})
    return resolved


def bootstrap_documents() -> list[dict[str, Any]]:
    """Every object in manifests/cluster-bootstrap, in file then document order."""
    docs: list[dict[str, Any]] = []
    for path in sorted(CLUSTER_BOOTSTRAP.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def session_arn(role_arn: str, session: str = HARNESS_SESSION) -> str:
    """What STS GetCallerIdentity returns for a session of ``role_arn`` (path dropped)."""
    partition, account = role_arn.split(":")[1], role_arn.split(":")[4]
    name = role_arn.rsplit("/", 1)[-1]
    return f"arn:{partition}:sts::{account}:assumed-role/{name}/{session}"


def grant_control_plane(
    cluster: GrantableCluster,
    *,
    deploy_role_arn: str,
    cluster_name: str,
    harness_key: str | None,
    drift_role_arn: str | None = None,
    rbac: bool = True,
) -> None:
    """The deploy role's access entry (and the drift role's, when the template has one) plus the shipped RBAC
    (``rbac=False``: the access entries only, what the eks stack makes; the cluster admin applies rbac.yaml);
    ``harness_key`` (when the cloud cannot say who a key is) is registered as a session of the deploy role."""
    cluster.access_entries.from_cloudformation(deploy_access_entry(deploy_role_arn, cluster_name=cluster_name))
    if drift_role_arn is not None:
        cluster.access_entries.from_cloudformation(drift_access_entry(drift_role_arn, cluster_name=cluster_name))
    if harness_key is not None:
        cluster.identities.register(harness_key, session_arn(deploy_role_arn))
    if rbac:
        cluster.bootstrap(bootstrap_documents())
