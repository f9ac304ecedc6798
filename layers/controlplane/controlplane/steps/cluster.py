"""The one way the steps reach the cluster: endpoint and CA from ``eks:DescribeCluster`` (cached), a fresh token."""

from __future__ import annotations

from kubernetes.client import ApiClient

from controlplane.aws import eks
from controlplane.kube.client import ClusterAccess, build_api_client
from controlplane.settings import Settings


def connect(settings: Settings) -> ApiClient:
    """An API client for the settings' cluster, authenticated as this function's IAM role."""
    info = eks.describe_cluster(settings.cluster_name, region=settings.region)
    token = eks.get_token(settings.cluster_name, region=settings.region)
    return build_api_client(ClusterAccess(endpoint=info.endpoint, ca_data=info.ca_data, token=token))


def kubernetes_version(settings: Settings) -> str:
    version = eks.describe_cluster(settings.cluster_name, region=settings.region).version
    return version or "1.32"
