"""Kubernetes requests per deploy: the control plane's apply against ``kubectl apply --server-side``, same emulator.

``python -m bench kube``. Each apply uses a fresh ``ApiClient`` (as a Lambda invocation would) and the ledger's
record of the previous apply (``last_applied``: what ``ApplyRelease`` reads from the ledger). Measured:

* a first deploy of the 7-service release (86 objects with the add-ons) on a new cluster, cold discovery, nothing
  recorded (goal: <= 1.05 requests per object); kubectl on another new cluster (two passes: the custom resources of
  a CRD applied in the same run fail the first pass);
* a redeploy where one service's image changed, warm discovery (as the next invocation of a warm Lambda): goal
  <= 12 requests, the same on a 100-service synthetic platform; kubectl re-applies every object;
* a 1,000-service synthetic platform (~8,000 objects) with ``KUBE_BENCH_SIZES=100,1000`` (not by default): the
  client renews its token (``token_source``: at 10 minutes, or once on a 401) as the handlers' client does, so an
  apply that outlasts an EKS token's 15 minutes goes on. Platforms over :data:`IDLE_CONTROLLERS_ABOVE` services are
  applied with the emulator's controllers idle (no ReplicaSets, pods or node work after each write: nothing the
  apply sends or reads depends on them, and the emulator reconciling ~8,000 objects after every write is quadratic:
  ~150 services in 8 minutes on the loaded machine, then a 10 s read timeout); what its record costs (digests,
  DynamoDB items) is measured by ``bench/payload_bench.py``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from controlplane import platform
from controlplane.kube.apply import apply_objects
from controlplane.kube.client import ClusterAccess, build_api_client
from controlplane.models.kube import AppliedObject
from controlplane.render import addon_objects, load_bundle, render_release
from pydantic import SecretStr

from local.cluster import Cluster

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests" / "kubernetes"
FIRST_DEPLOY_GOAL = 1.05
REDEPLOY_GOAL = 12
# Synthetic platforms beyond the 7 services (KUBE_BENCH_SIZES, e.g. "100,1000")
BENCH_SIZES = tuple(int(n) for n in os.environ.get("KUBE_BENCH_SIZES", "100").split(",") if n)
TEMPLATE_SERVICE = "edc-service"
RENEWALS: list[int] = []  # token renewals of each control_plane_apply's client
IDLE_CONTROLLERS_ABOVE = 100
CLIENT_TIMEOUT_S = 60.0  # the emulator under a loaded machine answers slower than an API server


def platform_objects(services: int = len(platform.SERVICE_NAMES), *, salt: str = "bench") -> list[dict[str, Any]]:
    """The staging release as ApplyRelease renders it (add-ons, then the platform); beyond its 7 services, copies
    of edc-service's objects (``svc-0007``...)."""
    digests = {n: f"sha256:{hashlib.sha256(f'{salt}:{n}'.encode()).hexdigest()}" for n in platform.SERVICE_NAMES}
    objects = render_release(
        load_bundle(MANIFESTS), "staging", digests, account_id="123456789012", region="us-east-1", cluster_name="bench"
    )
    own = [o for o in objects if TEMPLATE_SERVICE in json.dumps(o) and "api-gateway" not in json.dumps(o)]
    extra = []
    for i in range(len(platform.SERVICE_NAMES), services):
        name = f"svc-{i:04d}"
        extra += [json.loads(json.dumps(o).replace(TEMPLATE_SERVICE, name)) for o in own]
    return objects + extra


def with_new_image(
    objects: list[dict[str, Any]], service: str = TEMPLATE_SERVICE, *, salt: str = "f"
) -> list[dict[str, Any]]:
    """``objects`` with ``service``'s Deployment running another digest (a one-service push)."""
    changed = copy.deepcopy(objects)
    digest = hashlib.sha256(salt.encode()).hexdigest()
    for o in changed:
        if o["kind"] == "Deployment" and o["metadata"]["name"] == service:
            for c in o["spec"]["template"]["spec"]["containers"]:
                c["image"] = c["image"].split("@")[0] + "@sha256:" + digest
    return changed


def control_plane_apply(
    cluster: Cluster,
    objects: list[dict[str, Any]],
    recorded: dict[str, AppliedObject],
    drifted: frozenset[str] | None = None,
) -> tuple[int, dict[str, AppliedObject], dict[str, int]]:
    """(requests, the record for the next apply, actions) of one deploy's applies as the deploy makes them: with a
    record, InstallAddons (the add-ons) then ApplyRelease (everything). ``drifted``: what a recent drift check found
    (drift checks compare the add-ons too), ``None``: no recent check, the live objects are listed (the add-ons' by
    InstallAddons, which ApplyRelease then trusts)."""
    api = build_api_client(
        ClusterAccess(endpoint=cluster.endpoint, ca_data=cluster.ca_data, token=cluster.token()),
        timeout=CLIENT_TIMEOUT_S,
        token_source=lambda: SecretStr(cluster.token()),  # a long apply outlasts the token's 15 minutes
    )
    before = len(cluster.requests)
    try:
        verified: frozenset[str] = frozenset()
        if recorded:
            addons = apply_objects(
                api, addon_objects(objects), release_id="bench", last_applied=recorded, drifted=drifted
            )
            recorded = {**recorded, **{o.ref.key: o for o in addons.objects}}  # InstallAddons records what it sent
            verified = frozenset(o.ref.key for o in addons.objects)
        result = apply_objects(
            api,
            objects,
            release_id="bench",
            last_applied=recorded,
            before_first_write=lambda: None,
            drifted=drifted,
            verified=verified,
        )
    finally:
        RENEWALS.append(api.token_refreshes)
        api.close()
    actions: dict[str, int] = {}
    for o in result.objects:
        actions[o.action] = actions.get(o.action, 0) + 1
    return len(cluster.requests) - before, {o.ref.key: o for o in result.objects}, actions


def kubectl_apply(cluster: Cluster, objects: list[dict[str, Any]], workdir: Path, passes: int) -> list[int]:
    """Requests kubectl 1.32 makes in each of ``passes`` runs of ``apply --server-side`` ([] without kubectl).

    ``--validate=false``: kubectl's client-side schema check wants ``/openapi/v2``, which the emulator does not
    serve (the server validates anyway).
    """
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return []
    config = cluster.write_kubeconfig(workdir / "kubeconfig")
    manifest = workdir / "release.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    counts = []
    for _ in range(passes):
        before = len(cluster.requests)
        subprocess.run(
            [
                *(kubectl, "--kubeconfig", str(config), "--cache-dir", str(workdir / "cache")),
                *("apply", "--server-side", "--force-conflicts", "--validate=false", "-f", str(manifest)),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        counts.append(len(cluster.requests) - before)
    return counts


def _verdict(ok: bool) -> str:
    return "OK" if ok else "OVER GOAL"


def main() -> None:
    small = platform_objects()
    with tempfile.TemporaryDirectory() as tmp, Cluster("bench-kube") as cluster:
        requests, recorded, actions = control_plane_apply(cluster, small, {})
        ratio = requests / len(small)
        print(
            f"first deploy, 7 services ({len(small)} objects): {requests} requests, {ratio:.3f}/object "
            f"(goal <= {FIRST_DEPLOY_GOAL}: {_verdict(ratio <= FIRST_DEPLOY_GOAL)}) {actions}"
        )
        _redeploys(cluster, small, recorded, "7 services")
        with Cluster("bench-kubectl") as other:
            first = kubectl_apply(other, small, Path(tmp), passes=2)
            again = kubectl_apply(other, with_new_image(small), Path(tmp), passes=1)
        if first and again:
            print(
                f"kubectl apply --server-side: first deploy {sum(first)} requests over two passes {first} "
                f"({sum(first) / len(small):.3f}/object; the second pass alone {first[1] / len(small):.3f}), "
                f"1-service redeploy {again[0]} requests"
            )
    for services in BENCH_SIZES:
        large = platform_objects(services)
        with Cluster(f"bench-kube-{services}") as cluster:
            if services > IDLE_CONTROLLERS_ABOVE:
                cluster.controllers.reconcile = lambda: None  # type: ignore[method-assign]  # see the docstring
            started = time.perf_counter()
            requests, recorded, _ = control_plane_apply(cluster, large, {})
            ratio = requests / len(large)
            print(
                f"first deploy, {services} services ({len(large)} objects): {requests} requests, {ratio:.3f}/object,"
                f" {time.perf_counter() - started:.1f} s ({RENEWALS[-1]} token renewals)"
            )
            _redeploys(cluster, large, recorded, f"{services} services")


def _redeploys(cluster: Cluster, objects: list[dict[str, Any]], recorded: dict[str, AppliedObject], name: str) -> None:
    """A 1-service redeploy after a clean drift check (the deploy's usual case), then another with none recent."""
    changed = with_new_image(objects)
    started = time.perf_counter()
    requests, recorded, actions = control_plane_apply(cluster, changed, recorded, drifted=frozenset())
    print(
        f"1-service redeploy, {name}: {requests} requests, {time.perf_counter() - started:.2f} s "
        f"(goal <= {REDEPLOY_GOAL}, independent of size: {_verdict(requests <= REDEPLOY_GOAL)}) {actions}"
    )
    again = with_new_image(changed, salt="g")
    requests, recorded, actions = control_plane_apply(cluster, again, recorded)
    print(f"  without a drift check in DRIFT_TRUST_SECONDS (every type listed): {requests} requests {actions}")
    services = sorted(
        o["metadata"]["name"] for o in objects if o["kind"] == "Deployment" and "svc-" in o["metadata"]["name"]
    )
    for count in (10, 50):
        if len(services) < count:
            continue
        for service in services[:count]:
            again = with_new_image(again, service, salt=f"{count}")
        started = time.perf_counter()
        requests, recorded, actions = control_plane_apply(cluster, again, recorded, drifted=frozenset())
        print(
            f"  {count}-service redeploy: {requests} requests, {time.perf_counter() - started:.2f} s "
            f"(wall time grows with the objects sent) {actions}"
        )


if __name__ == "__main__":
    main()
