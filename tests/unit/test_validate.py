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
    path = root / "services" / "edc-service.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    objects = render(load_bundle(root), "production", DIGESTS, account_id=ACCOUNT, region=REGION)
    with pytest.raises(ManifestValidationError, match=re.escape(expected)):
        _validate(*objects)
