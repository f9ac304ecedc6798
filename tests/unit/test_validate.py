"""Validation: every rendered object of every environment passes (schema, restricted pod security, digests, labels),
and each check fails, naming the object and the field, when what it guards is broken."""

from __future__ import annotations

import copy
import functools
import hashlib
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from controlplane import platform
from controlplane.errors import ManifestValidationError
from controlplane.render import load_bundle, render
from controlplane.validate import object_problems, validate_objects

pytestmark = pytest.mark.unit

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests" / "kubernetes"
ACCOUNT = "123456789012"
REGION = "us-east-1"
DIGESTS = {name: f"sha256:{hashlib.sha256(name.encode()).hexdigest()}" for name in platform.SERVICE_NAMES}
CONTAINER = "spec.template.spec.containers[0]"


@functools.cache
def _rendered(environment: str) -> tuple[dict[str, Any], ...]:
    return tuple(render(load_bundle(MANIFESTS), environment, DIGESTS, account_id=ACCOUNT, region=REGION))


def _object(kind: str, name: str, environment: str = "production") -> dict[str, Any]:
    found = [o for o in _rendered(environment) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1
    return copy.deepcopy(found[0])


def _validate(*objects: dict[str, Any]) -> None:
    validate_objects(list(objects), account_id=ACCOUNT, region=REGION)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One case per rendered object per environment (rendered at collection, not at import)."""
    if "rendered_object" in metafunc.fixturenames:
        cases = [
            pytest.param(obj, id=f"{environment}-{obj['kind']}-{obj['metadata']['name']}")
            for environment in platform.ENVIRONMENTS
            for obj in _rendered(environment)
        ]
        metafunc.parametrize("rendered_object", cases)


def test_every_rendered_object_is_valid(rendered_object: dict[str, Any]) -> None:
    assert object_problems(rendered_object, account_id=ACCOUNT, region=REGION) == []


@pytest.mark.parametrize("environment", platform.ENVIRONMENTS)
def test_every_environment_validates_as_a_whole(environment: str) -> None:
    _validate(*_rendered(environment))


# --- each check fails when what it guards is broken ----------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting the dotted ``path`` (``a.b[0].c``) to ``value``; ``...`` deletes it."""

    def mutate(obj: dict[str, Any]) -> None:
        parts: list[Any] = []
        for piece in path.split("."):
            name, _, index = piece.partition("[")
            parts.append(name)
            if index:
                parts.append(int(index.rstrip("]")))
        node: Any = obj
        for part in parts[:-1]:
            if isinstance(part, str) and part not in node:
                node[part] = {}
            node = node[part]
        if value is ...:
            del node[parts[-1]]
        else:
            node[parts[-1]] = value

    return mutate


BROKEN_DEPLOYMENTS = [
    pytest.param(
        _set(f"{CONTAINER}.securityContext.privileged", value=True),
        f"{CONTAINER}.securityContext.privileged",
        id="privileged",
    ),
    pytest.param(
        _set(f"{CONTAINER}.securityContext.allowPrivilegeEscalation", value=True),
        f"{CONTAINER}.securityContext.allowPrivilegeEscalation",
        id="privilege-escalation",
    ),
    pytest.param(
        _set(f"{CONTAINER}.securityContext.capabilities.drop", ["NET_RAW"]),
        f"{CONTAINER}.securityContext.capabilities.drop",
        id="capabilities-not-dropped",
    ),
    pytest.param(
        _set(f"{CONTAINER}.securityContext.capabilities.add", ["SYS_ADMIN"]),
        f"{CONTAINER}.securityContext.capabilities.add",
        id="capability-added",
    ),
    pytest.param(
        _set("spec.template.spec.securityContext.runAsNonRoot", ...),
        f"{CONTAINER}.securityContext.runAsNonRoot",
        id="may-run-as-root",
    ),
    pytest.param(
        _set(f"{CONTAINER}.securityContext.runAsUser", 0), f"{CONTAINER}.securityContext.runAsUser", id="root-user"
    ),
    pytest.param(
        _set("spec.template.spec.securityContext.seccompProfile", {"type": "Unconfined"}),
        "spec.template.spec.securityContext.seccompProfile.type",
        id="seccomp-unconfined",
    ),
    pytest.param(
        _set("spec.template.spec.securityContext.seccompProfile", ...),
        f"{CONTAINER}.securityContext.seccompProfile.type",
        id="seccomp-missing",
    ),
    pytest.param(
        _set(f"{CONTAINER}.securityContext.readOnlyRootFilesystem", value=False),
        f"{CONTAINER}.securityContext.readOnlyRootFilesystem",
        id="writable-root",
    ),
    pytest.param(
        _set("spec.template.spec.hostNetwork", value=True), "spec.template.spec.hostNetwork", id="host-network"
    ),
    pytest.param(_set("spec.template.spec.hostPID", value=True), "spec.template.spec.hostPID", id="host-pid"),
    pytest.param(
        _set("spec.template.spec.volumes[0]", {"name": "tmp", "hostPath": {"path": "/var/run"}}),
        "spec.template.spec.volumes[0].hostPath",
        id="host-path",
    ),
    pytest.param(_set(f"{CONTAINER}.ports[0].hostPort", 8001), f"{CONTAINER}.ports[0].hostPort", id="host-port"),
    pytest.param(_set(f"{CONTAINER}.readinessProbe", ...), f"{CONTAINER}.readinessProbe", id="no-readiness-probe"),
    pytest.param(_set(f"{CONTAINER}.livenessProbe", ...), f"{CONTAINER}.livenessProbe", id="no-liveness-probe"),
    pytest.param(_set(f"{CONTAINER}.resources.limits", ...), f"{CONTAINER}.resources.limits.memory", id="no-limits"),
    pytest.param(
        _set(f"{CONTAINER}.resources.requests.cpu", ...), f"{CONTAINER}.resources.requests.cpu", id="no-cpu-request"
    ),
    pytest.param(
        _set(f"{CONTAINER}.image", f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/clinical-trials/edc-service:1.4"),
        f"{CONTAINER}.image",
        id="tag-instead-of-digest",
    ),
    pytest.param(
        _set(
            f"{CONTAINER}.image",
            f"210987654321.dkr.ecr.{REGION}.amazonaws.com/clinical-trials/edc-service@" + DIGESTS["edc-service"],
        ),
        f"{CONTAINER}.image",
        id="other-account",
    ),
    pytest.param(
        _set(
            f"{CONTAINER}.image",
            f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/clinical-trials/edc-service@" + DIGESTS["edc-service"],
        ),
        f"{CONTAINER}.image",
        id="other-region",
    ),
    pytest.param(
        _set(f"{CONTAINER}.image", "docker.io/library/python@" + DIGESTS["edc-service"]),
        f"{CONTAINER}.image",
        id="other-registry",
    ),
    pytest.param(
        _set(
            f"{CONTAINER}.image",
            f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/clinical-trials/miner@" + DIGESTS["edc-service"],
        ),
        f"{CONTAINER}.image",
        id="not-a-platform-service",
    ),
    pytest.param(_set(f"{CONTAINER}.imagePullPolice", "Always"), CONTAINER, id="unknown-field"),
    pytest.param(_set("spec.replicas", "three"), "spec.replicas", id="wrong-type"),
    pytest.param(
        _set("spec.strategy.rollingUpdate.maxSurgeCount", 1), "spec.strategy.rollingUpdate", id="unknown-nested-field"
    ),
    pytest.param(
        _set(f"metadata.labels.{platform.LABEL_MANAGED_BY.replace('.', '<dot>')}", None),
        f"metadata.labels.{platform.LABEL_MANAGED_BY}",
        id="no-ownership-label",
    ),
    pytest.param(_set("metadata.namespace", "default"), "metadata.namespace", id="wrong-namespace"),
    # The rest of the Pod Security Standards (baseline + restricted), each control at pod and container level.
    pytest.param(_set("spec.template.spec.hostIPC", value=True), "spec.template.spec.hostIPC", id="host-ipc"),
    pytest.param(
        _set(f"{CONTAINER}.securityContext.procMount", "Unmasked"),
        f"{CONTAINER}.securityContext.procMount",
        id="proc-mount-unmasked",
    ),
    pytest.param(
        _set("spec.template.spec.securityContext.sysctls", [{"name": "kernel.msgmax", "value": "65536"}]),
        "spec.template.spec.securityContext.sysctls[0].name",
        id="unsafe-sysctl",
    ),
    pytest.param(
        _set("spec.template.spec.securityContext.sysctls", [{"name": "net.core.somaxconn", "value": "1024"}]),
        "spec.template.spec.securityContext.sysctls[0].name",
        id="unsafe-net-sysctl",
    ),
    pytest.param(
        _set("spec.template.spec.securityContext.seLinuxOptions", {"type": "spc_t"}),
        "spec.template.spec.securityContext.seLinuxOptions.type",
        id="selinux-spc_t-pod",
    ),
    pytest.param(
        _set(f"{CONTAINER}.securityContext.seLinuxOptions", {"type": "spc_t"}),
        f"{CONTAINER}.securityContext.seLinuxOptions.type",
        id="selinux-spc_t-container",
    ),
    pytest.param(
        _set(f"{CONTAINER}.securityContext.seLinuxOptions", {"user": "system_u"}),
        f"{CONTAINER}.securityContext.seLinuxOptions.user",
        id="selinux-user",
    ),
    pytest.param(
        _set("spec.template.spec.securityContext.seLinuxOptions", {"role": "sysadm_r"}),
        "spec.template.spec.securityContext.seLinuxOptions.role",
        id="selinux-role",
    ),
    pytest.param(
        _set("spec.template.spec.securityContext.appArmorProfile", {"type": "Unconfined"}),
        "spec.template.spec.securityContext.appArmorProfile.type",
        id="apparmor-unconfined-pod",
    ),
    pytest.param(
        _set(f"{CONTAINER}.securityContext.appArmorProfile", {"type": "Unconfined"}),
        f"{CONTAINER}.securityContext.appArmorProfile.type",
        id="apparmor-unconfined-container",
    ),
    pytest.param(
        _set(
            "spec.template.metadata.annotations",
            {"container.apparmor.security.beta.kubernetes.io/edc-service": "unconfined"},
        ),
        "spec.template.metadata.annotations.container.apparmor.security.beta.kubernetes.io/edc-service",
        id="apparmor-unconfined-annotation",
    ),
    pytest.param(
        _set(f"{CONTAINER}.securityContext.seccompProfile", {"type": "Unconfined"}),
        f"{CONTAINER}.securityContext.seccompProfile.type",
        id="seccomp-unconfined-container",
    ),
    pytest.param(
        _set(f"{CONTAINER}.securityContext.windowsOptions", {"hostProcess": True}),
        f"{CONTAINER}.securityContext.windowsOptions.hostProcess",
        id="windows-host-process",
    ),
    pytest.param(
        _set("spec.template.spec.securityContext.runAsUser", 0),
        "spec.template.spec.securityContext.runAsUser",
        id="root-user-pod",
    ),
    pytest.param(
        _set(f"{CONTAINER}.securityContext.runAsNonRoot", value=False),
        f"{CONTAINER}.securityContext.runAsNonRoot",
        id="container-overrides-run-as-non-root",
    ),
    pytest.param(
        _set("spec.template.spec.securityContext.runAsGroup", 0),
        "spec.template.spec.securityContext.runAsGroup",
        id="root-group",
    ),
    pytest.param(
        _set(f"{CONTAINER}.securityContext.capabilities.add", ["NET_RAW"]),
        f"{CONTAINER}.securityContext.capabilities.add",
        id="capability-net-raw",
    ),
    pytest.param(
        _set("spec.template.spec.volumes[0]", {"name": "tmp", "nfs": {"server": "10.0.0.1", "path": "/"}}),
        "spec.template.spec.volumes[0].nfs",
        id="nfs-volume",
    ),
    pytest.param(
        _set(f"{CONTAINER}.livenessProbe.httpGet.host", "169.254.169.254"),
        f"{CONTAINER}.livenessProbe.httpGet.host",
        id="probe-aims-at-another-host",
    ),
    # One service account per workload.
    pytest.param(
        _set("spec.template.spec.serviceAccountName", "analytics-service"),
        "spec.template.spec.serviceAccountName",
        id="another-services-service-account",
    ),
    pytest.param(
        _set("spec.template.spec.serviceAccountName", ...),
        "spec.template.spec.serviceAccountName",
        id="default-service-account",
    ),
    pytest.param(
        _set("spec.template.spec.serviceAccount", "security-service"),
        "spec.template.spec.serviceAccount",
        id="another-services-service-account-deprecated-field",
    ),
    # One Secret per workload: the one its ExternalSecret writes.
    pytest.param(
        _set(f"{CONTAINER}.envFrom[2].secretRef.name", "security-service-secrets"),
        f"{CONTAINER}.envFrom[2].secretRef.name",
        id="another-services-secret-envfrom",
    ),
    pytest.param(
        _set(
            f"{CONTAINER}.env",
            [{"name": "JWT", "valueFrom": {"secretKeyRef": {"name": "security-service-secrets", "key": "JWT"}}}],
        ),
        f"{CONTAINER}.env[0].valueFrom.secretKeyRef.name",
        id="another-services-secret-env",
    ),
    pytest.param(
        _set("spec.template.spec.volumes[0]", {"name": "tmp", "secret": {"secretName": "api-gateway-secrets"}}),
        "spec.template.spec.volumes[0].secret.secretName",
        id="another-services-secret-volume",
    ),
]


def _fix_dots(mutate: Callable[[dict[str, Any]], None], obj: dict[str, Any]) -> None:
    mutate(obj)
    labels = obj["metadata"]["labels"]
    for key in [k for k in labels if "<dot>" in k]:
        del labels[key]
        del labels[key.replace("<dot>", ".")]


@pytest.mark.parametrize(("mutate", "field"), BROKEN_DEPLOYMENTS)
def test_broken_deployment_is_refused_naming_object_and_field(
    mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    deployment = _object("Deployment", "edc-service")
    _fix_dots(mutate, deployment)
    with pytest.raises(ManifestValidationError) as caught:
        _validate(deployment)
    lines = str(caught.value).splitlines()
    assert any(line.strip().startswith(f"Deployment/edc-service: {field}: ") for line in lines), lines


@pytest.mark.parametrize(
    ("kind", "name", "mutate", "field"),
    [
        ("ExternalSecret", "edc-service", _set("spec.secretStoreRef.name", ...), "spec.secretStoreRef.name"),
        ("ExternalSecret", "edc-service", _set("spec.data[0].remoteRef", {}), "spec.data[0].remoteRef.key"),
        ("ExternalSecret", "edc-service", _set("spec.refreshIntervall", "1h"), "spec.refreshIntervall"),
        ("ExternalSecret", "edc-service", _set("spec.target.name", "security-service-secrets"), "spec.target.name"),
        ("ExternalSecret", "edc-service", _set("metadata.labels", ["not", "a", "map"]), "metadata.labels"),
        (
            "ClusterSecretStore",
            "aws-secrets-manager",
            _set("spec.provider.aws.service", "Vault"),
            "spec.provider.aws.service",
        ),
        (
            "ClusterSecretStore",
            "aws-secrets-manager",
            _set("metadata.namespace", "clinical-trials"),
            "metadata.namespace",
        ),
        ("Service", "edc-service", _set("spec.ports[0].port", "http"), "spec.ports[0].port"),
        ("HorizontalPodAutoscaler", "edc-service", _set("spec.maxReplicas", ...), "spec"),
        ("Ingress", "clinical-trials", _set("spec.ingressClass", "alb"), "spec"),
        ("NetworkPolicy", "default-deny-all", _set("spec.policyTypes", "Ingress"), "spec.policyTypes"),
        ("StorageClass", "gp3-encrypted", _set("parameters.encrypted", value=True), "parameters.encrypted"),
    ],
)
def test_broken_objects_of_other_kinds_are_refused_naming_object_and_field(
    kind: str, name: str, mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    obj = _object(kind, name)
    mutate(obj)
    with pytest.raises(ManifestValidationError) as caught:
        _validate(obj)
    lines = [line.strip() for line in str(caught.value).splitlines()]
    assert any(line.startswith(f"{kind}/{name}: {field}: ") for line in lines), lines


def test_every_problem_of_every_object_is_listed() -> None:
    deployment = _object("Deployment", "edc-service")
    deployment["spec"]["template"]["spec"]["hostIPC"] = True
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    service = _object("Service", "quality-service")
    service["spec"]["sessionAffinityy"] = "None"
    with pytest.raises(ManifestValidationError) as caught:
        _validate(_object("Namespace", "clinical-trials"), deployment, service)
    message = str(caught.value)
    assert message.startswith("3 problem(s) in 3 object(s)")
    assert "Deployment/edc-service: spec.template.spec.hostIPC: " in message
    assert f"Deployment/edc-service: {CONTAINER}.securityContext.privileged: " in message
    assert "Service/quality-service: spec: Additional properties are not allowed ('sessionAffinityy'" in message


def test_a_kind_without_a_known_schema_is_refused() -> None:
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {
            "name": "w",
            "namespace": platform.NAMESPACE,
            "labels": _object("Service", "edc-service")["metadata"]["labels"],
        },
    }
    with pytest.raises(ManifestValidationError, match=r"Widget/w: apiVersion: no schema for example\.com/v1 Widget"):
        _validate(widget)


@pytest.mark.parametrize("version", ["1.99", "1.20", "one.thirty"])
def test_unsupported_kubernetes_versions_are_refused(version: str) -> None:
    with pytest.raises(ManifestValidationError, match="kubernetes_version"):
        validate_objects(
            [_object("Namespace", "clinical-trials")], kubernetes_version=version, account_id=ACCOUNT, region=REGION
        )


@pytest.mark.parametrize("version", ["1.30", "1.32", "1.33"])
def test_other_shipped_kubernetes_versions_validate_the_platform(version: str) -> None:
    validate_objects(_rendered("staging"), kubernetes_version=version, account_id=ACCOUNT, region=REGION)


def test_validation_is_bound_to_the_account_and_region_it_is_given() -> None:
    with pytest.raises(ManifestValidationError, match=r"image: .*not pinned by digest"):
        validate_objects(_rendered("production"), account_id="210987654321", region=REGION)


# --- broken copies of the files, end to end ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "            readOnlyRootFilesystem: true\n",
            "            readOnlyRootFilesystem: true\n            privileged: true\n",
            f"Deployment/edc-service: {CONTAINER}.securityContext.privileged: ",
        ),
        (
            "          readinessProbe:\n",
            "          startupProbe:\n",
            f"Deployment/edc-service: {CONTAINER}.readinessProbe: required",
        ),
        (
            "  progressDeadlineSeconds: 600\n",
            "  progressDeadline: 600\n",
            "Deployment/edc-service: spec: Additional properties are not allowed ('progressDeadline' was unexpected)",
        ),
    ],
)
def test_broken_manifest_files_fail_validation_naming_object_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    root = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, root)
    shutil.copytree(MANIFESTS.parent / "addons", tmp_path / "addons")
    path = root / "services" / "edc-service.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    objects = render(load_bundle(root), "production", DIGESTS, account_id=ACCOUNT, region=REGION)
    with pytest.raises(ManifestValidationError, match=re.escape(expected)):
        _validate(*objects)


# --- what a release may contain: kinds, Services, RBAC, NetworkPolicies -------------------------------------------


def _owned(kind: str, name: str, api_version: str = "v1", **body: Any) -> dict[str, Any]:
    """An object of ours: the platform's labels and namespace (unless cluster-scoped), ``body`` as top-level fields."""
    metadata: dict[str, Any] = {"name": name, "labels": dict(_object("Service", "edc-service")["metadata"]["labels"])}
    if kind not in platform.CLUSTER_SCOPED_KINDS:
        metadata["namespace"] = platform.NAMESPACE
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}


RBAC = "rbac.authorization.k8s.io/v1"
NETPOL = "networking.k8s.io/v1"
SA_SUBJECT = {"kind": "ServiceAccount", "name": "edc-service", "namespace": platform.NAMESPACE}


def _netpol(name: str, pod_selector: dict[str, Any], **rules: Any) -> dict[str, Any]:
    types = [t for t in ("Ingress", "Egress") if t.lower() in rules]
    return _owned("NetworkPolicy", name, NETPOL, spec={"podSelector": pod_selector, "policyTypes": types, **rules})


EDC = {"matchLabels": {platform.LABEL_NAME: "edc-service"}}
PORT = [{"protocol": "TCP", "port": 8001}]

REFUSED_OBJECTS = [
    pytest.param(_owned("Secret", "db", stringData={"password": "x"}), "kind", id="plain-secret"),
    pytest.param(_owned("Secret", "db", type="kubernetes.io/dockerconfigjson"), "kind", id="pull-secret"),
    pytest.param(
        _owned("Service", "lb", spec={"type": "LoadBalancer", "ports": [{"port": 80}]}), "spec.type", id="load-balancer"
    ),
    pytest.param(
        _owned("Service", "np", spec={"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        "spec.type",
        id="node-port",
    ),
    pytest.param(
        _owned("Service", "np", spec={"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        "spec.ports[0].nodePort",
        id="node-port-port",
    ),
    pytest.param(
        _owned("Service", "ext", spec={"type": "ExternalName", "externalName": "evil.example.com"}),
        "spec.type",
        id="external-name",
    ),
    pytest.param(
        _owned("Service", "eip", spec={"ports": [{"port": 80}], "externalIPs": ["203.0.113.7"]}),
        "spec.externalIPs",
        id="external-ips",
    ),
    pytest.param(
        _owned(
            "RoleBinding",
            "root",
            RBAC,
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            subjects=[SA_SUBJECT],
        ),
        "roleRef.name",
        id="rolebinding-to-cluster-admin",
    ),
    pytest.param(
        _owned(
            "RoleBinding",
            "editor",
            RBAC,
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            subjects=[SA_SUBJECT],
        ),
        "roleRef.name",
        id="rolebinding-to-edit",
    ),
    pytest.param(
        _owned(
            "ClusterRoleBinding",
            "root",
            RBAC,
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            subjects=[SA_SUBJECT],
        ),
        "roleRef.name",
        id="clusterrolebinding-to-cluster-admin",
    ),
    pytest.param(
        _owned(
            "ClusterRoleBinding",
            "root",
            RBAC,
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            subjects=[SA_SUBJECT],
        ),
        "kind",
        id="clusterrolebinding-kind",
    ),
    pytest.param(
        _owned(
            "RoleBinding",
            "everyone",
            RBAC,
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            subjects=[{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}],
        ),
        "subjects[0]",
        id="rolebinding-to-a-group",
    ),
    pytest.param(
        _owned("Role", "reader", RBAC, rules=[{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]),
        "rules[0].resources",
        id="role-reads-secrets",
    ),
    pytest.param(
        _owned("Role", "god", RBAC, rules=[{"apiGroups": ["*"], "resources": ["pods"], "verbs": ["*"]}]),
        "rules[0].verbs",
        id="role-with-wildcard-verbs",
    ),
    pytest.param(
        _owned("ClusterRole", "god", RBAC, rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
        "kind",
        id="clusterrole",
    ),
    pytest.param(_netpol("allow-all-in", {}, ingress=[{}]), "spec.ingress[0].from", id="netpol-allow-all-ingress"),
    pytest.param(_netpol("allow-all-out", {}, egress=[{}]), "spec.egress[0].to", id="netpol-allow-all-egress"),
    pytest.param(
        _netpol("edc-open", EDC, ingress=[{}]), "spec.ingress[0].from", id="netpol-allow-all-ingress-to-one-service"
    ),
    pytest.param(
        _netpol("edc-world", EDC, ingress=[{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]),
        "spec.ingress[0].from[0]",
        id="netpol-from-0.0.0.0/0-every-port",
    ),
    pytest.param(
        _netpol("edc-out", EDC, egress=[{"to": [{"podSelector": EDC}, {"ipBlock": {"cidr": "::/0"}}]}]),
        "spec.egress[0].to[1]",
        id="netpol-to-::/0-every-port",
    ),
    pytest.param(
        _netpol("all-from-cluster", {}, ingress=[{"from": [{"namespaceSelector": {}}], "ports": PORT}]),
        "spec.ingress[0].from[0]",
        id="netpol-every-pod-from-every-namespace",
    ),
    pytest.param(
        _netpol("all-from-world", {"matchLabels": {}}, ingress=[{"ports": PORT}]),
        "spec.ingress[0].from",
        id="netpol-every-pod-from-everywhere-on-a-port",
    ),
    pytest.param(
        _owned(
            "Ingress",
            "backdoor",
            NETPOL,
            spec={
                "ingressClassName": "alb",
                "rules": [
                    {
                        "http": {
                            "paths": [
                                {
                                    "path": "/edc",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "edc-service", "port": {"number": 8001}}},
                                }
                            ]
                        }
                    }
                ],
            },
        ),
        "spec.rules[0].http.paths[0].backend.service.name",
        id="ingress-past-the-api-gateway",
    ),
    pytest.param(_owned("Namespace", "kube-system"), "metadata.name", id="other-namespace"),
    pytest.param(
        _owned("PriorityClass", "top", "scheduling.k8s.io/v1", value=1_000_000_000), "kind", id="not-an-allowed-kind"
    ),
]


@pytest.mark.parametrize(("obj", "field"), REFUSED_OBJECTS)
def test_objects_outside_the_platform_policy_are_refused_naming_object_and_field(
    obj: dict[str, Any], field: str
) -> None:
    with pytest.raises(ManifestValidationError) as caught:
        _validate(obj)
    identity = f"{obj['kind']}/{obj['metadata']['name']}"
    lines = [line.strip() for line in str(caught.value).splitlines()]
    assert any(line.startswith(f"{identity}: {field}: ") for line in lines), lines


ACCEPTED_OBJECTS = [
    pytest.param(
        _owned(
            "Role", "config-reader", RBAC, rules=[{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
        ),
        id="narrow-role",
    ),
    pytest.param(
        _owned(
            "RoleBinding",
            "config-reader",
            RBAC,
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "config-reader"},
            subjects=[SA_SUBJECT],
        ),
        id="binding-of-own-role-to-own-service-account",
    ),
    pytest.param(
        _netpol("edc-from-vpc", EDC, ingress=[{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": PORT}]),
        id="one-service-open-on-one-port",
    ),
    pytest.param(_netpol("deny-all", {}, ingress=[], egress=[]), id="deny-all"),
    pytest.param(_owned("Service", "plain", spec={"ports": [{"port": 80}]}), id="service-default-type-clusterip"),
]


@pytest.mark.parametrize("obj", ACCEPTED_OBJECTS)
def test_objects_within_the_platform_policy_pass(obj: dict[str, Any]) -> None:
    assert object_problems(obj, account_id=ACCOUNT, region=REGION) == []


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(
            _set(
                "spec.template.spec.securityContext.sysctls", [{"name": "net.ipv4.tcp_keepalive_time", "value": "60"}]
            ),
            id="safe-sysctl",
        ),
        pytest.param(_set(f"{CONTAINER}.securityContext.seLinuxOptions", {"type": "container_t"}), id="selinux-type"),
        pytest.param(
            _set("spec.template.spec.securityContext.appArmorProfile", {"type": "RuntimeDefault"}), id="apparmor"
        ),
        pytest.param(
            _set(
                "spec.template.metadata.annotations",
                {"container.apparmor.security.beta.kubernetes.io/edc-service": "localhost/k8s-apparmor"},
            ),
            id="apparmor-annotation",
        ),
        pytest.param(_set(f"{CONTAINER}.securityContext.procMount", "Default"), id="proc-mount-default"),
        pytest.param(
            _set(f"{CONTAINER}.securityContext.capabilities.add", ["NET_BIND_SERVICE"]), id="net-bind-service"
        ),
    ],
)
def test_what_the_restricted_profile_allows_passes(mutate: Callable[[dict[str, Any]], None]) -> None:
    deployment = _object("Deployment", "edc-service")
    mutate(deployment)
    assert object_problems(deployment, account_id=ACCOUNT, region=REGION) == []
