"""The eks stack's managed node groups (manifests/cloudformation/eks.yaml) as the local cloud registers them.

Names are the kind CloudFormation generates (``<LogicalId>-<suffix>``); labels, taints, capacity type, instance type
and sizes are read from the template (its ``NodeGroups`` mapping for an environment), so the emulator's nodes are
the ones the stack would make.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

EKS_TEMPLATE = Path(__file__).resolve().parents[1] / "manifests" / "cloudformation" / "eks.yaml"

# Logical id -> (name CloudFormation would give it, the key prefix of its sizes in the NodeGroups mapping).
LOGICAL_IDS: dict[str, tuple[str, str]] = {
    "GeneralNodeGroup": ("GeneralNodeGroup-4Kq1Zc8Hw2Pe", "General"),
    "ComputeIntensiveNodeGroup": ("ComputeIntensiveNodeGroup-2Vn8Jd4Qs6Uf", "Compute"),
    "MemoryOptimizedNodeGroup": ("MemoryOptimizedNodeGroup-7Hc3Wp9Tk1Lm", "Memory"),
    "SpotNodeGroup": ("SpotNodeGroup-9Rt3Lm5Xb7Ya", "Spot"),
}


def eks_nodegroup_config(logical: str) -> dict[str, Any]:
    """The labels, taints and capacity type the ``eks`` stack gives node group ``logical`` (as NodegroupSpec fields,
    taints in the EKS API's shape)."""
    from local.aws.template import load_template  # noqa: PLC0415 - the harness imports moto: only when needed

    props = load_template(EKS_TEMPLATE)["Resources"][logical]["Properties"]
    return {
        "labels": {str(k): str(v) for k, v in (props.get("Labels") or {}).items()},
        "taints": tuple({k.lower(): str(v) for k, v in t.items()} for t in props.get("Taints") or []),
        "capacity_type": str(props.get("CapacityType") or "ON_DEMAND"),
    }


def eks_nodegroups(environment: str) -> dict[str, Any]:
    """Every node group of the eks stack for ``environment``: name -> NodegroupSpec with the mapping's sizes and
    instance type (a spot group's first instance type)."""
    from local.aws import NodegroupSpec  # noqa: PLC0415 - the harness imports moto: only when needed
    from local.aws.template import load_template  # noqa: PLC0415

    template = load_template(EKS_TEMPLATE)
    sizes = template["Mappings"]["NodeGroups"][environment]
    out: dict[str, Any] = {}
    for logical, (name, prefix) in LOGICAL_IDS.items():
        types = template["Resources"][logical]["Properties"]["InstanceTypes"]
        instance_type = sizes[f"{prefix}Type"] if prefix != "Spot" else types[0]
        out[name] = NodegroupSpec(
            str(instance_type),
            desired=int(sizes[f"{prefix}Desired"]),
            min_size=int(sizes[f"{prefix}Min"]),
            max_size=int(sizes[f"{prefix}Max"]),
            **eks_nodegroup_config(logical),
        )
    return out


def boot_groups(nodes: Any, groups: dict[str, Any]) -> None:
    """Give the emulator's node pool (``cluster.nodes``) each of ``groups`` (name -> NodegroupSpec) at its desired
    size, its nodes already booted, with the group's instance type, labels, taints and capacity type."""
    for name, spec in groups.items():
        nodes.set_group(
            name,
            spec.desired,
            spec.instance_type,
            boot_seconds=0,
            labels=spec.labels,
            taints=spec.taints,
            capacity_type=spec.capacity_type,
            min_size=min(spec.min_size, spec.desired),
            max_size=max(spec.max_size, spec.desired),
        )


def add_tainted_groups(cloud: Any, cluster_name: str, cluster: Any, environment: str) -> dict[str, Any]:
    """Register the eks stack's tainted node groups of ``environment`` that have nodes (beside the emulator's own
    general nodes), their nodes already booted as after provisioning; the groups added."""
    groups = {
        name: spec
        for name, spec in eks_nodegroups(environment).items()
        if name != LOGICAL_IDS["GeneralNodeGroup"][0] and spec.desired > 0
    }
    boot_groups(cluster.nodes, groups)
    if groups:
        cloud.register_cluster(cluster_name, cluster, nodegroups=groups)
    return groups


__all__ = ["EKS_TEMPLATE", "LOGICAL_IDS", "add_tainted_groups", "eks_nodegroup_config", "eks_nodegroups"]
