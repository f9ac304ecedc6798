"""``kubernetes.utils.create_from_yaml`` and kubectl 1.32 against the emulator: a multi-document manifest of every
workload kind is created by the client's own dispatch (kind → typed API), then read back by kubectl."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from kubernetes import client, utils

from local.cluster import Cluster

pytestmark = pytest.mark.integration

NS = "from-yaml"
MANIFEST = f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: shop}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: shop-config}}
data: {{LOG_LEVEL: info}}
---
apiVersion: v1
kind: Secret
metadata: {{name: shop-secret}}
stringData: {{token: not-a-real-token}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: shop}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: shop}}}}
  template:
    metadata: {{labels: {{app: shop}}}}
    spec:
      serviceAccountName: shop
      containers:
      - name: shop
        image: repo/shop:v1
        ports: [{{containerPort: 8080}}]
        resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: shop}}
spec:
  selector: {{app: shop}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  replicas: 1
  serviceName: db
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      containers: [{{name: db, image: repo/db:v1}}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      containers: [{{name: agent, image: repo/agent:v1}}]
---
apiVersion: batch/v1
kind: Job
metadata: {{name: migrate}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: migrate, image: repo/migrate:v1}}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: nightly}}
spec:
  schedule: "0 2 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{{name: nightly, image: repo/nightly:v1}}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: shop}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: shop}}
  minReplicas: 2
  maxReplicas: 4
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: shop}}
spec:
  minAvailable: 1
  selector: {{matchLabels: {{app: shop}}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: shop}}
spec:
  podSelector: {{matchLabels: {{app: shop}}}}
  policyTypes: [Ingress]
  ingress: [{{from: [{{podSelector: {{}}}}]}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: shop}}
spec:
  defaultBackend: {{service: {{name: shop, port: {{number: 80}}}}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: shop-reader}}
rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: shop-reader}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: shop-reader}}
subjects: [{{kind: ServiceAccount, name: shop, namespace: {NS}}}]
"""


@pytest.fixture(scope="module")
def created(shared_cluster: Cluster, api: client.ApiClient) -> list[object]:
    docs = list(yaml.safe_load_all(MANIFEST))
    results = utils.create_from_yaml(api, yaml_objects=docs[:1])  # the namespace first, as kubectl would
    results += utils.create_from_yaml(api, yaml_objects=docs[1:], namespace=NS)
    shared_cluster.advance(30)
    return [item for group in results for item in group]


def test_create_from_yaml_creates_every_kind_through_its_typed_api(
    created: list[object], api: client.ApiClient
) -> None:
    kinds = sorted(type(obj).__name__ for obj in created)
    assert kinds == sorted(
        [
            "V1Namespace",
            "V1ServiceAccount",
            "V1ConfigMap",
            "V1Secret",
            "V1Deployment",
            "V1Service",
            "V1StatefulSet",
            "V1DaemonSet",
            "V1Job",
            "V1CronJob",
            "V2HorizontalPodAutoscaler",
            "V1PodDisruptionBudget",
            "V1NetworkPolicy",
            "V1Ingress",
            "V1Role",
            "V1RoleBinding",
        ]
    )
    apps = client.AppsV1Api(api)
    deployment = apps.read_namespaced_deployment_status("shop", NS)
    assert (deployment.status.ready_replicas, deployment.status.available_replicas) == (2, 2)
    assert apps.read_namespaced_stateful_set_status("db", NS).status.ready_replicas == 1
    pdb = client.PolicyV1Api(api).read_namespaced_pod_disruption_budget_status("shop", NS).status
    assert (pdb.current_healthy, pdb.desired_healthy, pdb.disruptions_allowed) == (2, 1, 1)
    job = client.BatchV1Api(api).read_namespaced_job_status("migrate", NS).status
    assert job.succeeded == 1
    secret = client.CoreV1Api(api).read_namespaced_secret("shop-secret", NS)
    assert secret.data == {"token": "bm90LWEtcmVhbC10b2tlbg=="}


def test_create_from_yaml_reports_an_existing_object_as_a_failure(created: list[object], api: client.ApiClient) -> None:
    docs = list(yaml.safe_load_all(MANIFEST))
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    with pytest.raises(utils.FailToCreateError) as failed:
        utils.create_from_yaml(api, yaml_objects=[config], namespace=NS)
    [exc] = failed.value.api_exceptions
    assert exc.status == 409
    assert json.loads(exc.body)["reason"] == "AlreadyExists"


Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(shared_cluster: Cluster, tmp_path: Path) -> Kubectl:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not on PATH")
    config = shared_cluster.write_kubeconfig(tmp_path / "kubeconfig")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "cache"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


@pytest.mark.kubectl
def test_kubectl_reads_every_kind_created_from_yaml(
    created: list[object], kubectl: object, shared_cluster: Cluster
) -> None:
    run = kubectl
    assert callable(run)
    kinds = "sa,cm,secret,deploy,svc,sts,ds,job,cronjob,hpa,pdb,netpol,ing,role,rolebinding"
    got = run("get", kinds, "-n", NS, "-o", "json")
    assert got.returncode == 0, got.stderr
    items = json.loads(got.stdout)["items"]
    names = {(i["kind"], i["metadata"]["name"]) for i in items}
    assert {("PodDisruptionBudget", "shop"), ("HorizontalPodAutoscaler", "shop"), ("DaemonSet", "agent")} <= names
    assert ("ConfigMap", "kube-root-ca.crt") in names
    pdb = next(i for i in items if i["kind"] == "PodDisruptionBudget")
    assert pdb["status"]["disruptionsAllowed"] == 1

    ca = run("get", "configmap", "kube-root-ca.crt", "-n", NS, "-o", "jsonpath={.data.ca\\.crt}")
    assert ca.returncode == 0, ca.stderr
    assert ca.stdout == shared_cluster.ca_pem.decode()

    rollout = run("rollout", "status", "statefulset/db", "-n", NS, "--timeout=5s")
    assert rollout.returncode == 0, rollout.stderr
    daemon = run("rollout", "status", "daemonset/agent", "-n", NS, "--timeout=5s")
    assert daemon.returncode == 0, daemon.stderr
