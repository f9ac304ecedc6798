"""Bootstrap copies of an operator's CRDs never replace the operator's own.

The bundle ships reduced copies of the External Secrets Operator's CRDs (``manifests/kubernetes/crds``, annotated
:data:`controlplane.platform.BOOTSTRAP_COPY_ANNOTATION`) for a cluster where nothing installed them. Where the live
CRD exists without that annotation, the operator (an add-on of ours or anyone else's installation) owns it:
applying the copy with ``force`` would replace its schema with one that preserves unknown fields, so the copy is
left out of the apply instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controlplane import platform
from controlplane.errors import KubernetesNotFoundError
from controlplane.kube.client import ApiClient, KubeClient, dynamic_client, request_json
from controlplane.kube.errors import translate_errors
from controlplane.observability import logger

_CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"


def _is_copy(obj: Mapping[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return obj.get("kind") == "CustomResourceDefinition" and platform.BOOTSTRAP_COPY_ANNOTATION in annotations


def without_foreign_crd_copies(api: ApiClient, objects: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``objects`` less each bootstrap copy whose CRD is live and not a copy (one GET per copy, none otherwise)."""
    kept: list[dict[str, Any]] = []
    dyn: KubeClient | None = None
    for obj in objects:
        if _is_copy(obj):
            name = str(obj["metadata"]["name"])
            dyn = dyn or dynamic_client(api)
            try:
                with translate_errors(f"CustomResourceDefinition/{name}"):
                    _, live = request_json(dyn, "GET", _CRD_PATH + name)
            except KubernetesNotFoundError:
                live = None
            if live is not None and not _is_copy(live):
                logger.info("bootstrap CRD copy left out: the operator's own CRD is installed", extra={"crd": name})
                continue
        kept.append(dict(obj))
    return kept
