"""The one way the steps reach the cluster: endpoint and CA from ``eks:DescribeCluster`` (cached), a fresh token."""

from __future__ import annotations

from kubernetes.client import ApiClient
from pydantic import ValidationError

from controlplane.aws import eks
from controlplane.errors import ConfigurationError
from controlplane.kube.client import ClusterAccess, build_api_client
from controlplane.settings import Settings


def connect(settings: Settings) -> ApiClient:
    """An API client for the settings' cluster, authenticated as this function's IAM role."""
    info = eks.describe_cluster(settings.cluster_name, region=settings.region)
    token = eks.get_token(settings.cluster_name, region=settings.region)
    try:
        access = ClusterAccess(endpoint=info.endpoint, ca_data=info.ca_data, token=token)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False))
        raise ConfigurationError(
            f"eks:DescribeCluster({settings.cluster_name}) gave unusable access: {problems}"
        ) from None
    return build_api_client(access)


def kubernetes_version(settings: Settings) -> str:
    version = eks.describe_cluster(settings.cluster_name, region=settings.region).version
    return version or "1.32"
