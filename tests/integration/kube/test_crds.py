"""A bootstrap copy of an operator's CRD never replaces the operator's own (controlplane.kube.crds)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from controlplane import platform
from controlplane.kube.client import ClusterAccess, build_api_client
from controlplane.kube.crds import without_foreign_crd_copies
from kubernetes.client import ApiextensionsV1Api

from local.cluster import api_client

REPO = Path(__file__).resolve().parents[3]
COPIES = [d for d in yaml.safe_load_all((REPO / "manifests/kubernetes/crds/external-secrets.yaml").read_text()) if d]
REAL = {
    d["metadata"]["name"]: d
    for d in yaml.safe_load_all((REPO / "manifests/addons/external-secrets/crds.yaml").read_text())
    if d
}


def test_copies_go_where_no_crd_exists_or_a_copy_is_live_and_never_over_the_operators_crd(cluster: Any) -> None:
    api = build_api_client(ClusterAccess(endpoint=cluster.endpoint, ca_data=cluster.ca_data, token=cluster.token()))
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "clinical-trials"}}
    assert without_foreign_crd_copies(api, [*COPIES, other]) == [*COPIES, other]  # nothing installed yet

    extensions = ApiextensionsV1Api(api_client(cluster))  # the operator's installation, with the official client
    first, second = COPIES
    extensions.create_custom_resource_definition(copy.deepcopy(first))  # an earlier bootstrap copy: ours to update
    extensions.create_custom_resource_definition(copy.deepcopy(REAL[second["metadata"]["name"]]))  # the operator's

    kept = without_foreign_crd_copies(api, [*COPIES, other])

    assert kept == [first, other]
    live = extensions.read_custom_resource_definition(second["metadata"]["name"])
    assert platform.BOOTSTRAP_COPY_ANNOTATION not in (live.metadata.annotations or {})
