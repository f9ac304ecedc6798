"""The one way the steps reach the cluster: endpoint and CA from ``eks:DescribeCluster`` (cached), a fresh token."""

from __future__ import annotations

from kubernetes.client import ApiClient
from pydantic import ValidationError

from controlplane.aws import eks
from controlplane.errors import ConfigurationError
from controlplane.kube.client import ClusterAccess, build_api_client
from controlplane.models.release import validation_message
from controlplane.settings import Settings


def connect(settings: Settings) -> ApiClient:
    """An API client for the settings' cluster, authenticated as this function's IAM role."""
    info = eks.describe_cluster(settings.cluster_name, region=settings.region)
    token = eks.get_token(settings.cluster_name, region=settings.region)
    try:
        access = ClusterAccess(endpoint=info.endpoint, ca_data=info.ca_data, token=token)
    except ValidationError as exc:
        raise ConfigurationError(
            f"eks:DescribeCluster({settings.cluster_name}) gave unusable access: {validation_message(exc)}"
        ) from None
    return build_api_client(access)


def kubernetes_version(settings: Settings) -> str:
    """The cluster's Kubernetes version (what manifests are validated against)."""
    return eks.describe_cluster(settings.cluster_name, region=settings.region).kubernetes_version
