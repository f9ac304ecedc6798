"""Wall time of a simulated 7-service rolling update on the emulator (target < 1 s).

Seven Deployments (2-3 replicas, RollingUpdate defaults) are created and rolled out first; then each gets a new image
through the official client and the simulated clock is advanced one second at a time until kubectl's rollout rules
say every Deployment is done. The time measured is the wall time of that second phase: API writes, controller
reconciles and kubelet simulation, with no real waiting.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from local.cluster import Cluster, api_client

TARGET_SECONDS = 1.0
NAMESPACE = "bench"


def _deployment(name: str, image: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": image, "resources": {"requests": {"cpu": "50m"}}}]},
            },
        },
    }


def _rolled_out(apps: client.AppsV1Api, names: list[str]) -> bool:
    for name in names:
        d = apps.read_namespaced_deployment(name, NAMESPACE)
        s = d.status
        if (d.metadata.generation or 0) > (s.observed_generation or 0):
            return False
        wanted = d.spec.replicas or 0
        if (s.updated_replicas or 0) < wanted or (s.replicas or 0) > (s.updated_replicas or 0):
            return False
        if (s.available_replicas or 0) < (s.updated_replicas or 0):
            return False
    return True


def _advance_until_rolled_out(cluster: Cluster, apps: client.AppsV1Api, names: list[str]) -> int:
    for second in range(120):
        if _rolled_out(apps, names):
            return second
        cluster.advance(1)
    raise RuntimeError("the rolling update did not finish within 120 simulated seconds")


def main() -> None:
    with Cluster("bench") as cluster:
        api = api_client(cluster)
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        names = [f"svc-{i}" for i in range(7)]
        for i, name in enumerate(names):
            apps.create_namespaced_deployment(NAMESPACE, _deployment(name, f"repo/{name}:v1", 2 + i % 2))
        _advance_until_rolled_out(cluster, apps, names)

        started = time.perf_counter()
        for name in names:
            patch = {"spec": {"template": {"spec": {"containers": [{"name": name, "image": f"repo/{name}:v2"}]}}}}
            apps.patch_namespaced_deployment(name, NAMESPACE, patch)
        simulated = _advance_until_rolled_out(cluster, apps, names)
        elapsed = time.perf_counter() - started
        api.close()

    ok = "yes" if elapsed < TARGET_SECONDS else "NO"
    print(
        f"7-service rolling update: {elapsed:.2f} s wall, {simulated} s simulated "
        f"(target < {TARGET_SECONDS:.0f} s wall) {ok}"
    )


if __name__ == "__main__":
    main()
