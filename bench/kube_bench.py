"""Kubernetes requests per applied object, for the whole rendered platform against the emulator.

``python -m bench kube``. Applies the staging release twice with a fresh ``ApiClient`` each time (as two Lambda
invocations would): the first run pays for discovery, the second has a warm discovery cache and shows the steady
state (one PATCH per object plus one list per kind and namespace). The target is <= 1.2 requests per object.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from controlplane import platform
from controlplane.kube.apply import apply_objects
from controlplane.kube.client import ClusterAccess, build_api_client
from controlplane.render import load_bundle, render

from local.cluster import Cluster

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests" / "kubernetes"
TARGET = 1.2


def _objects() -> list[dict[str, Any]]:
    digests = {n: f"sha256:{hashlib.sha256(f'bench:{n}'.encode()).hexdigest()}" for n in platform.SERVICE_NAMES}
    return render(load_bundle(MANIFESTS), "staging", digests, account_id="123456789012", region="us-east-1")


def _apply(cluster: Cluster, objects: list[dict[str, Any]], release_id: str) -> tuple[int, float, dict[str, int]]:
    api = build_api_client(ClusterAccess(endpoint=cluster.endpoint, ca_data=cluster.ca_data, token=cluster.token()))
    before = len(cluster.requests)
    started = time.perf_counter()
    try:
        result = apply_objects(api, objects, release_id=release_id)
    finally:
        api.close()
    elapsed = time.perf_counter() - started
    actions: dict[str, int] = {}
    for o in result.objects:
        actions[o.action] = actions.get(o.action, 0) + 1
    return len(cluster.requests) - before, elapsed, actions


def main() -> None:
    objects = _objects()
    ratio = 0.0
    with Cluster("bench-kube") as cluster:  # a new cluster has a new endpoint and CA: discovery starts cold
        for label, release_id in (("cold discovery", "bench-1"), ("warm discovery", "bench-2")):
            requests, elapsed, actions = _apply(cluster, objects, release_id)
            ratio = requests / len(objects)
            print(
                f"{label:<15} {len(objects)} objects, {requests} requests, {ratio:.3f} requests/object, "
                f"{elapsed * 1000:.0f} ms, {actions}"
            )
    verdict = "OK" if ratio <= TARGET else "OVER TARGET"
    print(f"steady state: {ratio:.3f} requests per applied object (target <= {TARGET}): {verdict}")


if __name__ == "__main__":
    main()
