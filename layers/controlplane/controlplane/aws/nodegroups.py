"""EKS managed node groups: read their scaling configs, resize them with ``eks:UpdateNodegroupConfig``.

EKS rules this module respects: ``minSize <= desiredSize <= maxSize``, ``maxSize >= 1`` (a group sleeps with
``minSize = desiredSize = 0`` and its ``maxSize`` untouched). An update while another update of the same group is in
progress fails with ``ResourceInUseException``: that is :class:`NodegroupBusyError`, retryable. Writing the values a
group already has is skipped (EKS rejects an update that changes nothing), so every call is safe to repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from controlplane.aws.errors import error_code, translate_aws_errors
from controlplane.errors import ConfigurationError, NodegroupBusyError

if TYPE_CHECKING:
    from mypy_boto3_eks import EKSClient


@dataclass(frozen=True)
class NodegroupState:
    """What ``eks:DescribeNodegroup`` says about one group's size."""

    name: str
    min_size: int
    max_size: int
    desired_size: int
    instance_types: tuple[str, ...]
    capacity_type: str | None
    status: str


def _client(region: str) -> EKSClient:
    return boto3.client("eks", region_name=region)


def list_nodegroups(cluster: str, *, region: str) -> list[NodegroupState]:
    """Every managed node group of ``cluster`` with its scaling config, sorted by name."""
    eks = _client(region)
    names: list[str] = []
    try:
        with translate_aws_errors("eks:ListNodegroups"):
            for page in eks.get_paginator("list_nodegroups").paginate(clusterName=cluster):
                names.extend(page.get("nodegroups", []))
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise ConfigurationError(f"EKS cluster {cluster!r} (CLUSTER_NAME) does not exist in {region}") from None
        raise
    return [describe_nodegroup(cluster, name, region=region, client=eks) for name in sorted(names)]


def describe_nodegroup(cluster: str, name: str, *, region: str, client: EKSClient | None = None) -> NodegroupState:
    eks = client or _client(region)
    with translate_aws_errors("eks:DescribeNodegroup"):
        group: Any = eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
    scaling = group.get("scalingConfig") or {}
    return NodegroupState(
        name=name,
        min_size=int(scaling.get("minSize", 0)),
        max_size=int(scaling.get("maxSize", 1)),
        desired_size=int(scaling.get("desiredSize", 0)),
        instance_types=tuple(group.get("instanceTypes") or ()),
        capacity_type=group.get("capacityType"),
        status=str(group.get("status", "ACTIVE")),
    )


def resize(cluster: str, name: str, *, min_size: int, max_size: int, desired: int, region: str) -> bool:
    """Set group ``name`` to exactly these sizes; ``False`` when it already had them (nothing was written)."""
    if not 0 <= min_size <= desired <= max_size or max_size < 1:
        raise ConfigurationError(
            f"node group {name}: sizes must satisfy 0 <= min ({min_size}) <= desired ({desired}) <= max ({max_size}), "
            "max >= 1"
        )
    eks = _client(region)
    current = describe_nodegroup(cluster, name, region=region, client=eks)
    if (current.min_size, current.max_size, current.desired_size) == (min_size, max_size, desired):
        return False
    try:
        with translate_aws_errors("eks:UpdateNodegroupConfig"):
            eks.update_nodegroup_config(
                clusterName=cluster,
                nodegroupName=name,
                scalingConfig={"minSize": min_size, "maxSize": max_size, "desiredSize": desired},
            )
    except ClientError as exc:
        if error_code(exc) == "ResourceInUseException":
            raise NodegroupBusyError(f"node group {name} is being updated; try again") from None
        raise
    return True
