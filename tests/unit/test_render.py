"""Rendering: the bundle loads and hashes stably, every environment renders with images pinned by digest, values
land at their well-known places, and bad input fails naming the file and the field before anything is returned."""

from __future__ import annotations

import copy
import hashlib
import io
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane import platform
from controlplane.errors import ManifestValidationError
from controlplane.render import (
    CERTIFICATE_ANNOTATION,
    IRSA_ANNOTATION,
    ManifestBundle,
    MissingImageDigestError,
    apply_order,
    load_bundle,
    render,
    without_hpa_replicas,
)

from local import demo

pytestmark = pytest.mark.unit

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests" / "kubernetes"
ACCOUNT = "123456789012"
REGION = "us-east-1"
DIGESTS = {name: f"sha256:{hashlib.sha256(name.encode()).hexdigest()}" for name in platform.SERVICE_NAMES}


@pytest.fixture(scope="module")
def bundle() -> ManifestBundle:
    return load_bundle(MANIFESTS)


@pytest.fixture
def copy_of_manifests(tmp_path: Path) -> Path:
    target = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, target)
    shutil.copytree(MANIFESTS.parent / "addons", tmp_path / "addons")  # the add-ons sit beside the bundle
    return target


def _render(bundle: ManifestBundle, environment: str = "production", **overrides: Any) -> list[dict[str, Any]]:
    arguments: dict[str, Any] = {"account_id": ACCOUNT, "region": REGION} | overrides
    images = arguments.pop("images", DIGESTS)
    return render(bundle, environment, images, **arguments)


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects"
    return matches[0]


def _edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1))


# --- the bundle ----------------------------------------------------------------------------------------------------


def test_bundle_holds_both_environments_and_every_yaml_file(bundle: ManifestBundle) -> None:
    assert set(bundle.environments) == set(platform.ENVIRONMENTS)
    on_disk = {p.relative_to(MANIFESTS).as_posix() for p in MANIFESTS.rglob("*.yaml")}
    addons = MANIFESTS.parent / "addons"
    on_disk |= {f"../addons/{p.relative_to(addons).as_posix()}" for p in addons.rglob("*.yaml")}
    assert set(bundle.files) == on_disk


def test_bundle_hash_is_the_same_for_the_same_files_anywhere(bundle: ManifestBundle, copy_of_manifests: Path) -> None:
    again = load_bundle(MANIFESTS)
    elsewhere = load_bundle(copy_of_manifests)
    assert bundle.hash == again.hash == elsewhere.hash
    assert bundle.hash.startswith("sha256:")
    assert len(bundle.hash) == len("sha256:") + 64


@pytest.mark.parametrize("relative", sorted(p.relative_to(MANIFESTS).as_posix() for p in MANIFESTS.rglob("*.yaml")))
def test_bundle_hash_changes_when_any_file_changes(
    bundle: ManifestBundle, copy_of_manifests: Path, relative: str
) -> None:
    path = copy_of_manifests / relative
    path.write_text(path.read_text() + "\n# an edit\n")
    assert load_bundle(copy_of_manifests).hash != bundle.hash


def test_bundle_hash_changes_when_a_file_moves(bundle: ManifestBundle, copy_of_manifests: Path) -> None:
    (copy_of_manifests / "storage" / "storage-classes.yaml").rename(copy_of_manifests / "storage" / "classes.yaml")
    assert load_bundle(copy_of_manifests).hash != bundle.hash


# --- rendering -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", platform.ENVIRONMENTS)
def test_every_container_is_pinned_to_its_service_digest(bundle: ManifestBundle, environment: str) -> None:
    objects = _render(bundle, environment)
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(platform.SERVICE_NAMES)
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == (
            f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/clinical-trials/{name}@{DIGESTS[name]}"
        )


@pytest.mark.parametrize("environment", platform.ENVIRONMENTS)
def test_every_object_carries_ownership_part_of_and_environment_labels(
    bundle: ManifestBundle, environment: str
) -> None:
    for obj in _render(bundle, environment):
        labels = obj["metadata"]["labels"]
        assert labels[platform.LABEL_MANAGED_BY] == "synthetictrialstudio-controlplane", obj["metadata"]["name"]
        assert labels[platform.LABEL_PART_OF] == "synthetictrialstudio"
        assert labels[platform.LABEL_ENVIRONMENT] == environment
        if obj["kind"] == "Deployment":
            assert obj["spec"]["template"]["metadata"]["labels"][platform.LABEL_MANAGED_BY] == platform.MANAGED_BY


@pytest.mark.parametrize("environment", platform.ENVIRONMENTS)
def test_replicas_hpa_bounds_and_resources_come_from_the_environment(bundle: ManifestBundle, environment: str) -> None:
    config = bundle.environments[environment]
    objects = _render(bundle, environment)
    for name, values in config.services.items():
        deployment = _one(objects, "Deployment", name)
        hpa = _one(objects, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert "replicas" not in deployment["spec"], f"{name}: its HPA owns spec.replicas"
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (values.min_replicas, values.max_replicas)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["resources"] == values.resources.model_dump()


def _without_hpa(root: Path, relative: str) -> None:
    path = root / relative
    documents = path.read_text().split("\n---\n")
    kept = [doc for doc in documents if "kind: HorizontalPodAutoscaler" not in doc]
    assert len(kept) == len(documents) - 1
    path.write_text("\n---\n".join(kept))


def test_a_workload_an_hpa_scales_never_carries_replicas_even_when_its_file_sets_them(copy_of_manifests: Path) -> None:
    _edit(
        copy_of_manifests,
        "services/api-gateway.yaml",
        "  revisionHistoryLimit: 5\n",
        "  replicas: 7\n  revisionHistoryLimit: 5\n",
    )
    objects = _render(load_bundle(copy_of_manifests))
    assert "replicas" not in _one(objects, "Deployment", "api-gateway")["spec"]
    assert not [o["metadata"]["name"] for o in objects if o["kind"] == "Deployment" and "replicas" in o["spec"]]


def test_a_deployment_without_an_hpa_keeps_replicas_from_the_environment(copy_of_manifests: Path) -> None:
    _without_hpa(copy_of_manifests, "services/edc-service.yaml")
    bundle = load_bundle(copy_of_manifests)
    objects = _render(bundle, "production")
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] == "edc-service"]
    assert (
        _one(objects, "Deployment", "edc-service")["spec"]["replicas"]
        == bundle.environments["production"].services["edc-service"].replicas
    )
    assert "replicas" not in _one(objects, "Deployment", "api-gateway")["spec"]  # still scaled by its HPA


def test_a_services_readiness_deadline_from_the_environment_is_a_deployment_annotation(
    copy_of_manifests: Path,
) -> None:
    _edit(
        copy_of_manifests,
        "environments/production.yaml",
        "  edc-service:\n    replicas: 2\n",
        "  edc-service:\n    replicas: 2\n    readiness_deadline_seconds: 90\n",
    )
    objects = _render(load_bundle(copy_of_manifests), "production")
    annotations = _one(objects, "Deployment", "edc-service")["metadata"]["annotations"]
    assert annotations[platform.READINESS_DEADLINE_ANNOTATION] == "90"
    other = _one(objects, "Deployment", "api-gateway")["metadata"].get("annotations") or {}
    assert platform.READINESS_DEADLINE_ANNOTATION not in other  # unset: the health check's default applies


def test_a_stateful_set_an_hpa_scales_loses_replicas_and_one_without_keeps_its_own(copy_of_manifests: Path) -> None:
    def stateful_set(name: str) -> str:
        return (
            "apiVersion: apps/v1\nkind: StatefulSet\n"
            f"metadata: {{name: {name}, namespace: clinical-trials}}\n"
            f"spec:\n  replicas: 2\n  serviceName: {name}\n"
            f"  selector: {{matchLabels: {{app: {name}}}}}\n"
            f"  template:\n    metadata: {{labels: {{app: {name}}}}}\n"
            f"    spec:\n      containers: [{{name: {name}, image: clinical-trials/edc-service}}]\n"
        )

    hpa = (
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n"
        "metadata: {name: quality-store, namespace: clinical-trials}\n"
        "spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: quality-service}\n"
        "  minReplicas: 1\n  maxReplicas: 3\n"
    )
    (copy_of_manifests / "services" / "stores.yaml").write_text(
        stateful_set("quality-service") + "---\n" + stateful_set("fixed") + "---\n" + hpa
    )
    objects = _render(load_bundle(copy_of_manifests))
    assert "replicas" not in _one(objects, "StatefulSet", "quality-service")["spec"]
    assert _one(objects, "StatefulSet", "fixed")["spec"]["replicas"] == 2
    assert "replicas" not in _one(objects, "Deployment", "quality-service")["spec"]  # its own HPA, same name


def test_without_hpa_replicas_strips_recorded_objects_of_an_older_release(bundle: ManifestBundle) -> None:
    objects = _render(bundle)
    recorded = copy.deepcopy(objects)
    for obj in recorded:
        if obj["kind"] == "Deployment":
            obj["spec"]["replicas"] = 5
    lone = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "lone", "namespace": "x"},
            "spec": {"replicas": 4}}  # fmt: skip
    stripped = without_hpa_replicas([*recorded, lone])
    assert [o for o in stripped if o["kind"] == "Deployment" and "replicas" in o["spec"]] == [lone]
    assert all(o["spec"]["replicas"] == 5 for o in recorded if o["kind"] == "Deployment")  # the input is unchanged


def test_staging_is_smaller_than_production(bundle: ManifestBundle) -> None:
    staging, production = bundle.environments["staging"], bundle.environments["production"]
    for name in platform.SERVICE_NAMES:
        assert staging.services[name].max_replicas <= production.services[name].max_replicas
        assert staging.services[name].min_replicas <= production.services[name].min_replicas


@pytest.mark.parametrize("environment", platform.ENVIRONMENTS)
def test_irsa_certificate_host_settings_and_secrets_are_rendered_for_the_environment(
    bundle: ManifestBundle, environment: str
) -> None:
    config = bundle.environments[environment]
    objects = _render(bundle, environment)
    for name in platform.SERVICE_NAMES:
        account = _one(objects, "ServiceAccount", name)
        role = account["metadata"]["annotations"][IRSA_ANNOTATION]
        assert role == f"arn:aws:iam::{ACCOUNT}:role/clinical-trials-{environment}-{name}"
        for item in _one(objects, "ExternalSecret", name)["spec"]["data"]:
            assert item["remoteRef"]["key"].startswith(f"clinical-trials/{environment}/")
    ingress = _one(objects, "Ingress", "clinical-trials")
    assert ingress["metadata"]["annotations"][CERTIFICATE_ANNOTATION].startswith(f"arn:aws:acm:{REGION}:{ACCOUNT}:")
    assert {rule["host"] for rule in ingress["spec"]["rules"]} == {config.hostname}
    settings = _one(objects, "ConfigMap", "platform-settings")["data"]
    assert settings["ENVIRONMENT"] == environment
    assert settings["LOG_LEVEL"] == config.log_level
    for flag, enabled in config.feature_flags.items():
        assert settings[f"FEATURE_{flag.upper()}"] == str(enabled).lower()
    store = _one(objects, "ClusterSecretStore", "aws-secrets-manager")
    assert store["spec"]["provider"]["aws"]["region"] == REGION


def test_rendering_leaves_the_bundle_untouched_and_is_repeatable(bundle: ManifestBundle) -> None:
    first = _render(bundle)
    second = _render(bundle)
    assert first == second
    deployment = next(d for d in bundle.documents if d.kind == "Deployment")
    assert deployment.body["spec"]["template"]["spec"]["containers"][0]["image"].startswith("clinical-trials/")


def test_bootstrap_crds_come_first_and_can_be_switched_off(copy_of_manifests: Path) -> None:
    # An environment without add-ons: the copies are its only ESO CRDs.
    addons = "addons: [external-secrets, cluster-autoscaler, aws-load-balancer-controller]"
    _edit(copy_of_manifests, "environments/staging.yaml", addons, "addons: []")
    objects = _render(load_bundle(copy_of_manifests), "staging")
    assert [o["kind"] for o in objects[:3]] == ["CustomResourceDefinition", "CustomResourceDefinition", "Namespace"]
    _edit(
        copy_of_manifests, "environments/staging.yaml", "install_bootstrap_crds: true", "install_bootstrap_crds: false"
    )
    objects = _render(load_bundle(copy_of_manifests), "staging")
    assert "CustomResourceDefinition" not in {o["kind"] for o in objects}


# --- apply order ---------------------------------------------------------------------------------------------------

TIERS = [
    {"Namespace", "CustomResourceDefinition"},
    {"ConfigMap", "Secret", "ExternalSecret", "ClusterSecretStore", "ServiceAccount", "Role", "StorageClass"},
    {"NetworkPolicy"},
    {"Service"},
    {"Deployment", "StatefulSet", "DaemonSet", "Job"},
    {"HorizontalPodAutoscaler", "PodDisruptionBudget"},
    {"Ingress"},
]


def _tier(kind: str) -> int:
    return next((i for i, kinds in enumerate(TIERS) if kind in kinds), len(TIERS))


@pytest.mark.parametrize("environment", platform.ENVIRONMENTS)
def test_render_returns_objects_in_dependency_order(bundle: ManifestBundle, environment: str) -> None:
    tiers = [_tier(o["kind"]) for o in _render(bundle, environment)]
    assert tiers == sorted(tiers)


def test_apply_order_sorts_by_dependency_and_keeps_order_within_a_tier() -> None:
    def obj(kind: str, name: str) -> dict[str, Any]:
        return {"kind": kind, "metadata": {"name": name}}

    shuffled = [
        obj("Ingress", "i"),
        obj("HorizontalPodAutoscaler", "h"),
        obj("Deployment", "d"),
        obj("Widget", "unknown-kind"),
        obj("Service", "s"),
        obj("NetworkPolicy", "n"),
        obj("ConfigMap", "c2"),
        obj("ServiceAccount", "sa"),
        obj("ConfigMap", "c1"),
        obj("CustomResourceDefinition", "crd"),
        obj("Namespace", "ns"),
    ]
    names = [o["metadata"]["name"] for o in apply_order(shuffled)]
    assert names == ["crd", "ns", "c2", "sa", "c1", "n", "s", "d", "h", "i", "unknown-kind"]


# --- bad input fails naming file and field -------------------------------------------------------------------------


def test_missing_digest_names_the_service(bundle: ManifestBundle) -> None:
    images = {k: v for k, v in DIGESTS.items() if k != "edc-service"}
    with pytest.raises(MissingImageDigestError, match="edc-service") as caught:
        _render(bundle, images=images)
    assert caught.value.service == "edc-service"
    assert isinstance(caught.value, ManifestValidationError)


@pytest.mark.parametrize(
    ("images", "expected"),
    [
        (DIGESTS | {"edc-service": "sha256:abc"}, "images.edc-service: 'sha256:abc' is not a digest"),
        (DIGESTS | {"edc-service": "v1.2.3"}, "images.edc-service"),
        (DIGESTS | {"billing-service": DIGESTS["edc-service"]}, "images: 'billing-service' is not a service"),
    ],
)
def test_bad_digests_are_refused_naming_the_service(
    bundle: ManifestBundle, images: dict[str, str], expected: str
) -> None:
    with pytest.raises(ManifestValidationError, match=expected):
        _render(bundle, images=images)


def test_unknown_environment_is_named(bundle: ManifestBundle) -> None:
    with pytest.raises(ManifestValidationError, match=r"environments/qa\.yaml.*staging"):
        _render(bundle, "qa")


def test_region_other_than_the_environments_is_refused(bundle: ManifestBundle) -> None:
    with pytest.raises(ManifestValidationError, match=r"environments/production\.yaml: region: .*us-east-1.*eu-west-1"):
        _render(bundle, region="eu-west-1")


def test_environment_pinned_to_an_account_refuses_another(copy_of_manifests: Path) -> None:
    _edit(copy_of_manifests, "environments/production.yaml", "account_id: null", 'account_id: "999999999999"')
    with pytest.raises(ManifestValidationError, match=r"environments/production\.yaml: account_id: .*999999999999"):
        _render(load_bundle(copy_of_manifests))


@pytest.mark.parametrize(
    ("relative", "old", "new", "expected"),
    [
        pytest.param(
            "services/edc-service.yaml",
            "kind: Service\n",
            "kind: Service\n  bad: [unclosed\n",
            r"services/edc-service\.yaml: line \d+, column \d+: YAML syntax error",
            id="yaml-syntax-error",
        ),
        pytest.param(
            "storage/storage-classes.yaml",
            "kind: StorageClass\nmetadata:\n  name: gp3-encrypted\n",
            "metadata:\n  name: gp3-encrypted\n",
            r"storage/storage-classes\.yaml: document 1: kind: required",
            id="document-without-kind",
        ),
        pytest.param(
            "network-policies/default-deny.yaml",
            "  name: default-deny-all\n",
            "  labels: {}\n",
            r"network-policies/default-deny\.yaml: document 1: metadata\.name: required",
            id="document-without-name",
        ),
        pytest.param(
            "environments/staging.yaml",
            "log_level: DEBUG\n",
            "log_level: DEBUG\nreplica_count: 3\n",
            r"environments/staging\.yaml: replica_count: Extra inputs are not permitted",
            id="unknown-overlay-key",
        ),
        pytest.param(
            "environments/production.yaml",
            "    replicas: 2\n    min_replicas: 2\n    max_replicas: 10\n",
            "    replicas: 2\n    min_replicas: 2\n    max_replicas: 10\n    replicaz: 4\n",
            r"environments/production\.yaml: services\.edc-service\.replicaz: Extra inputs are not permitted",
            id="unknown-service-value",
        ),
        pytest.param(
            "environments/production.yaml",
            "    replicas: 2\n    min_replicas: 2\n    max_replicas: 10\n",
            "    replicas: 2\n    min_replicas: 12\n    max_replicas: 10\n",
            r"environments/production\.yaml: services\.edc-service: .*min_replicas <= replicas <= max_replicas",
            id="hpa-bounds-inverted",
        ),
        pytest.param(
            "environments/staging.yaml",
            "  quality-service:\n",
            "  qualty-service:\n",
            r"environments/staging\.yaml: services: .*missing \['quality-service'\], unknown \['qualty-service'\]",
            id="overlay-service-typo",
        ),
        pytest.param(
            "environments/staging.yaml",
            'irsa_role_arn_pattern: "arn:aws:iam::{account_id}:role/clinical-trials-{environment}-{service}"',
            'irsa_role_arn_pattern: "arn:aws:iam::{account}:role/clinical-trials-{environment}-{service}"',
            r"environments/staging\.yaml: irsa_role_arn_pattern: .*unknown placeholder",
            id="overlay-unknown-placeholder",
        ),
        pytest.param(
            "config/platform-settings.yaml",
            "  name: platform-settings\n",
            "  name: edc-service-config\n",
            r"services/edc-service\.yaml: ConfigMap/edc-service-config: metadata\.name: also defined in config/",
            id="duplicate-object",
        ),
    ],
)
def test_broken_files_fail_to_load_naming_file_and_field(
    copy_of_manifests: Path, relative: str, old: str, new: str, expected: str
) -> None:
    _edit(copy_of_manifests, relative, old, new)
    with pytest.raises(ManifestValidationError, match=expected):
        load_bundle(copy_of_manifests)


@pytest.mark.parametrize(
    ("new_image", "expected"),
    [
        ("clinical-trials/edc-service:1.4.2", "tag"),
        ("nginx@sha256:" + "0" * 64, "foreign"),
        ("clinical-trials/billing-service", "unknown-service"),
    ],
)
def test_images_written_into_manifests_are_refused_naming_file_object_and_field(
    copy_of_manifests: Path, new_image: str, expected: str
) -> None:
    del expected  # the id of the case
    _edit(copy_of_manifests, "services/edc-service.yaml", "image: clinical-trials/edc-service", f"image: {new_image}")
    with pytest.raises(
        ManifestValidationError,
        match=r"services/edc-service\.yaml: Deployment/edc-service: spec\.template\.spec\.containers\[0\]\.image: ",
    ):
        _render(load_bundle(copy_of_manifests))


def test_deployment_of_no_service_is_refused_naming_the_overlay(copy_of_manifests: Path) -> None:
    documents = yaml.safe_load_all((copy_of_manifests / "services" / "quality-service.yaml").read_text())
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    deployment["metadata"]["name"] = "quality-extra"
    (copy_of_manifests / "services" / "extra.yaml").write_text(yaml.safe_dump(deployment))
    with pytest.raises(ManifestValidationError, match=r"Deployment/quality-extra: metadata\.name: 'quality-extra'"):
        _render(load_bundle(copy_of_manifests))


def test_not_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestValidationError, match="not a manifests directory"):
        load_bundle(tmp_path / "missing")


def test_demo_renders_and_validates_both_environments() -> None:
    out = io.StringIO()
    assert demo.main(out) == 0
    text = out.getvalue()
    assert "== staging: " in text
    assert "== production: " in text
    assert load_bundle(MANIFESTS).hash in text
