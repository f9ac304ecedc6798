"""kubectl 1.32 against the emulator: server-side apply (and its conflicts), get -o yaml, scale, rollout status."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
import yaml

from local.cluster import Cluster

Kubectl = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = [pytest.mark.integration, pytest.mark.kubectl]

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {{app: web}}
  ports:
  - name: http
    port: 80
    targetPort: 80
"""


def test_apply_server_side_get_and_reapply(kubectl: Kubectl) -> None:
    applied = kubectl("apply", "--server-side", "-f", "-", stdin=MANIFEST.format(replicas=2))
    assert applied.returncode == 0, applied.stderr
    assert "deployment.apps/web serverside-applied" in applied.stdout
    got = kubectl("get", "deployment", "web", "-n", "shop", "-o", "yaml", "--show-managed-fields")
    assert got.returncode == 0, got.stderr
    obj = yaml.safe_load(got.stdout)
    assert obj["spec"]["replicas"] == 2
    assert obj["metadata"]["generation"] == 1
    assert [m["manager"] for m in obj["metadata"]["managedFields"] if m["operation"] == "Apply"] == ["kubectl"]
    again = kubectl("apply", "--server-side", "-f", "-", stdin=MANIFEST.format(replicas=2))
    assert again.returncode == 0, again.stderr
    listed = kubectl("get", "deployments,services", "-n", "shop")
    assert listed.returncode == 0, listed.stderr
    assert "web" in listed.stdout


def test_apply_conflict_then_force(kubectl: Kubectl) -> None:
    assert kubectl("apply", "--server-side", "-f", "-", stdin=MANIFEST.format(replicas=2)).returncode == 0
    conflict = kubectl("apply", "--server-side", "--field-manager=ops", "-f", "-", stdin=MANIFEST.format(replicas=5))
    assert conflict.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas' in conflict.stderr
    forced = kubectl(
        "apply",
        "--server-side",
        "--field-manager=ops",
        "--force-conflicts",
        "-f",
        "-",
        stdin=MANIFEST.format(replicas=5),
    )
    assert forced.returncode == 0, forced.stderr
    replicas = kubectl("get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.replicas}")
    assert replicas.stdout == "5"


def test_scale_then_apply_conflicts_with_the_scale_subresource(kubectl: Kubectl) -> None:
    assert kubectl("apply", "--server-side", "-f", "-", stdin=MANIFEST.format(replicas=2)).returncode == 0
    scaled = kubectl("scale", "deployment/web", "-n", "shop", "--replicas=4")
    assert scaled.returncode == 0, scaled.stderr
    assert kubectl("get", "deploy", "web", "-n", "shop", "-o", "jsonpath={.spec.replicas}").stdout == "4"
    conflict = kubectl("apply", "--server-side", "-f", "-", stdin=MANIFEST.format(replicas=3))
    assert conflict.returncode != 0
    assert 'conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas' in conflict.stderr


def test_rollout_status_after_apply(cluster: Cluster, kubectl: Kubectl) -> None:
    assert kubectl("apply", "--server-side", "-f", "-", stdin=MANIFEST.format(replicas=2)).returncode == 0
    cluster.advance(60)
    status = kubectl("rollout", "status", "deployment/web", "-n", "shop", "--timeout=20s")
    assert status.returncode == 0, status.stderr
    assert 'deployment "web" successfully rolled out' in status.stdout


def test_dry_run_server_and_delete(kubectl: Kubectl) -> None:
    dry = kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", stdin=MANIFEST.format(replicas=2))
    assert dry.returncode != 0  # as on a real server: the namespace is not created by a dry run
    assert 'namespaces "shop" not found' in dry.stderr
    assert kubectl("get", "ns", "shop").returncode != 0
    namespace_only = MANIFEST.split("---", maxsplit=1)[0]
    assert kubectl("apply", "--server-side", "-f", "-", stdin=namespace_only).returncode == 0
    dry = kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", stdin=MANIFEST.format(replicas=2))
    assert dry.returncode == 0, dry.stderr
    assert "NotFound" in kubectl("get", "deploy", "web", "-n", "shop").stderr
    assert kubectl("apply", "--server-side", "-f", "-", stdin=MANIFEST.format(replicas=2)).returncode == 0
    deleted = kubectl("delete", "namespace", "shop", "--wait=false")
    assert deleted.returncode == 0, deleted.stderr
    assert "NotFound" in kubectl("get", "deploy", "web", "-n", "shop").stderr
