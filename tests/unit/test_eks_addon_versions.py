"""The EKS managed add-on versions pinned in manifests/cloudformation/eks.yaml, kept in a table with the Kubernetes
version each was checked for and where.

`aws eks describe-addon-versions --kubernetes-version <v> --addon-name <name>` is the authority (an AddonVersion it
does not list for the cluster's version fails the stack: InvalidParameterException). The AWS user guide publishes the
latest Amazon-EKS-type version per Kubernetes version for vpc-cni, kube-proxy and CoreDNS: the vpc-cni and CoreDNS
pins are exactly those tables' entries, kube-proxy's are on the table's patch line. The others (EBS CSI, Pod Identity
agent, metrics-server, CloudWatch observability) have no such page and were not confirmed here (no AWS account
offline): their source says so. Changing a pin means changing this table too, with where it was checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from local.aws.template import load_template

pytestmark = pytest.mark.unit

EKS = Path(__file__).resolve().parents[2] / "manifests" / "cloudformation" / "eks.yaml"

VPC_CNI_DOC = "https://docs.aws.amazon.com/eks/latest/userguide/managing-vpc-cni.html (VPC CNI versions table)"
KUBE_PROXY_DOC = (
    "https://docs.aws.amazon.com/eks/latest/userguide/managing-kube-proxy.html: the table listed the same patch line "
    "(v1.31.10, v1.32.6, v1.33.3) with earlier eksbuilds; the eksbuild itself only through describe-addon-versions"
)
COREDNS_DOC = "https://docs.aws.amazon.com/eks/latest/userguide/managing-coredns.html (CoreDNS versions table)"
DESCRIBE = "no published table: to be confirmed with aws eks describe-addon-versions --kubernetes-version {k8s}"

# mapping key -> (EKS add-on name, {Kubernetes version: (pinned version, where it was checked)})
PINS: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "VpcCni": (
        "vpc-cni",
        dict.fromkeys(("1.31", "1.32", "1.33"), ("v1.20.1-eksbuild.3", VPC_CNI_DOC)),
    ),
    "KubeProxy": (
        "kube-proxy",
        {
            "1.31": ("v1.31.10-eksbuild.12", KUBE_PROXY_DOC),
            "1.32": ("v1.32.6-eksbuild.12", KUBE_PROXY_DOC),
            "1.33": ("v1.33.3-eksbuild.10", KUBE_PROXY_DOC),
        },
    ),
    "CoreDns": (
        "coredns",
        {
            "1.31": ("v1.11.4-eksbuild.24", COREDNS_DOC),
            "1.32": ("v1.11.4-eksbuild.24", COREDNS_DOC),
            "1.33": ("v1.12.4-eksbuild.1", COREDNS_DOC),
        },
    ),
    "EbsCsiDriver": (
        "aws-ebs-csi-driver",
        dict.fromkeys(("1.31", "1.32", "1.33"), ("v1.47.0-eksbuild.1", DESCRIBE)),
    ),
    "PodIdentityAgent": (
        "eks-pod-identity-agent",
        dict.fromkeys(("1.31", "1.32", "1.33"), ("v1.3.8-eksbuild.2", DESCRIBE)),
    ),
    "MetricsServer": (
        "metrics-server",
        dict.fromkeys(("1.31", "1.32", "1.33"), ("v0.8.0-eksbuild.1", DESCRIBE)),
    ),
    "CloudWatchObservability": (
        "amazon-cloudwatch-observability",
        dict.fromkeys(("1.31", "1.32", "1.33"), ("v4.3.0-eksbuild.1", DESCRIBE)),
    ),
}
EKSBUILD = re.compile(r"^v(\d+)\.(\d+)\.(\d+)-eksbuild\.(\d+)$")


@pytest.fixture(scope="module")
def template() -> dict[str, object]:
    return load_template(EKS)


def test_every_pin_in_eks_yaml_is_the_tables_for_its_kubernetes_version(template: dict[str, object]) -> None:
    mapping = template["Mappings"]["AddonVersions"]  # type: ignore[index]
    table = {k8s: {key: pins[k8s][0] for key, (_, pins) in PINS.items()} for k8s in mapping}
    assert mapping == table


def test_the_cluster_may_only_run_a_kubernetes_version_the_table_covers(template: dict[str, object]) -> None:
    parameter = template["Parameters"]["KubernetesVersion"]  # type: ignore[index]
    covered = {k8s for _, pins in PINS.values() for k8s in pins}
    assert set(parameter["AllowedValues"]) == covered
    assert parameter["Default"] in covered
    assert all(set(pins) == covered for _, pins in PINS.values())


def test_each_addon_resource_reads_the_pin_of_its_own_addon(template: dict[str, object]) -> None:
    names = {name: key for key, (name, _) in PINS.items()}
    addons = {
        props["AddonName"]: props["AddonVersion"]
        for resource in template["Resources"].values()  # type: ignore[attr-defined]
        if resource["Type"] == "AWS::EKS::Addon"
        for props in [resource["Properties"]]
    }
    assert set(addons) == set(names)
    for name, version in addons.items():
        assert version == {"Fn::FindInMap": ["AddonVersions", {"Ref": "KubernetesVersion"}, names[name]]}, name


@pytest.mark.parametrize("key", sorted(PINS))
def test_pins_are_eks_builds_and_kube_proxy_follows_the_clusters_minor_version(key: str) -> None:
    _, pins = PINS[key]
    for k8s, (version, source) in pins.items():
        match = EKSBUILD.match(version)
        assert match is not None, (key, k8s, version)
        assert source, (key, k8s)
        if key == "KubeProxy":
            assert f"{match[1]}.{match[2]}" == k8s, (k8s, version)
