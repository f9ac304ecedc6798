"""The conformance tier: the emulator driven by clients nobody here wrote (the official Python client's typed APIs
and ``kubernetes.utils``, kubectl), one shared cluster per module.

The typed APIs deserialise every answer into the client's models, which refuse a missing required field (a status
without ``replicas``, a PodDisruptionBudget status without ``disruptionsAllowed``...): reading an object back is
itself a conformance check.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from local.cluster import Cluster, api_client

NAMESPACE = "conformance"


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[Cluster]:
    """One emulated cluster for the whole module, with the ``conformance`` namespace."""
    with Cluster("sts-conformance") as cluster:
        api = api_client(cluster)
        try:
            client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
        finally:
            api.close()
        yield cluster


@pytest.fixture(scope="module")
def api(shared_cluster: Cluster) -> Iterator[client.ApiClient]:
    """An official-client ApiClient with the cluster's administrator token."""
    with api_client(shared_cluster) as kube:
        yield kube
