"""The vendored add-ons (manifests/addons): recorded provenance, rendering, and what validation lets them do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane import platform
from controlplane.errors import ManifestValidationError
from controlplane.models.addons import ADDON_LABEL, ADDON_SPEC_ANNOTATION
from controlplane.render import ManifestBundle, addon_objects, load_bundle, render, render_addons, render_release
from controlplane.validate import validate_objects

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests" / "kubernetes"
ADDONS = REPO / "manifests" / "addons"
ACCOUNT, REGION, CLUSTER = "123456789012", "us-east-1", "sts-staging"
DIGESTS = dict.fromkeys(platform.SERVICE_NAMES, "sha256:" + "ab" * 32)
CATALOG = yaml.safe_load((ADDONS / "addons.yaml").read_text())["addons"]


@pytest.fixture(scope="module")
def bundle() -> ManifestBundle:
    return load_bundle(MANIFESTS)


@pytest.fixture(scope="module")
def addons(bundle: ManifestBundle) -> list[dict[str, Any]]:
    return render_addons(bundle, "staging", account_id=ACCOUNT, region=REGION, cluster_name=CLUSTER)


@pytest.fixture
def copy_of_manifests(tmp_path: Path) -> Path:
    shutil.copytree(MANIFESTS, tmp_path / "kubernetes")
    shutil.copytree(ADDONS, tmp_path / "addons")
    return tmp_path / "kubernetes"


def _validate(objects: list[dict[str, Any]], bundle: ManifestBundle | None) -> None:
    validate_objects(objects, account_id=ACCOUNT, region=REGION, addons=bundle.addons if bundle else None)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_addon_records_its_upstream_source_commit_and_licence(name: str) -> None:
    version = yaml.safe_load((ADDONS / name / "VERSION").read_text())
    assert version["name"] == name
    assert version["version"] == CATALOG[name]["version"]
    assert version["source"].startswith("https://github.com/")
    assert len(version["commit"]) == 40
    assert version["licence"] == "Apache-2.0"
    assert set(version["files"]) == set(CATALOG[name]["files"])
    assert [version["image"]] == CATALOG[name]["images"]


def test_both_environments_install_every_vendored_addon(bundle: ManifestBundle) -> None:
    for environment in platform.ENVIRONMENTS:
        assert set(bundle.environments[environment].addons) == set(CATALOG)


def test_addon_objects_are_labelled_stamped_and_have_their_placeholders_filled(addons: list[dict[str, Any]]) -> None:
    assert {o["metadata"]["labels"][ADDON_LABEL] for o in addons} == set(CATALOG)
    for obj in addons:
        labels = obj["metadata"]["labels"]
        assert labels[platform.LABEL_MANAGED_BY] == platform.MANAGED_BY
        spec = json.loads(obj["metadata"]["annotations"][ADDON_SPEC_ANNOTATION])
        assert spec["version"] == CATALOG[labels[ADDON_LABEL]]["version"]
    text = json.dumps(addons)
    assert "${" not in text
    service_account = next(
        o for o in addons if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "external-secrets"
    )
    role = service_account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role == f"arn:aws:iam::{ACCOUNT}:role/clinical-trials-staging-external-secrets"
    assert f"k8s.io/cluster-autoscaler/{CLUSTER}" in text
    assert f"--cluster-name={CLUSTER}" in text  # the load balancer controller's cluster


def test_a_release_carries_its_addons_first_and_no_bootstrap_copy_of_a_crd_an_addon_provides(
    bundle: ManifestBundle,
) -> None:
    objects = render_release(bundle, "staging", DIGESTS, account_id=ACCOUNT, region=REGION, cluster_name=CLUSTER)
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    assert {c["metadata"]["name"] for c in crds} == {name for entry in CATALOG.values() for name in entry["provides"]}
    assert all(ADDON_LABEL in c["metadata"]["labels"] for c in crds)  # the operator's real CRDs, not the copies
    assert len(addon_objects(objects)) == len(
        render_addons(bundle, "staging", account_id=ACCOUNT, region=REGION, cluster_name=CLUSTER)
    )
    _validate(objects, bundle)


def test_rendered_addons_pass_validation_and_replayed_ones_are_checked_against_their_own_entry(
    bundle: ManifestBundle, addons: list[dict[str, Any]]
) -> None:
    _validate(addons, bundle)
    _validate(addons, None)  # replayed from the ledger: each object carries the entry it was rendered from
    unstamped = json.loads(json.dumps(addons[0]))
    del unstamped["metadata"]["annotations"][ADDON_SPEC_ANNOTATION]
    with pytest.raises(ManifestValidationError, match=f"metadata.annotations.{ADDON_SPEC_ANNOTATION}: required"):
        _validate([unstamped], None)


def _changed(addons: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return json.loads(json.dumps(next(o for o in addons if o["kind"] == kind and o["metadata"]["name"] == name)))


@pytest.mark.parametrize(
    ("kind", "name", "change", "expected"),
    [
        (
            "Deployment",
            "external-secrets",
            lambda o: o["spec"]["template"]["spec"]["containers"][0].update(image="evil.example/eso:latest"),
            "spec.template.spec.containers[0].image: add-on external-secrets runs only",
        ),
        (
            "Deployment",
            "cluster-autoscaler",
            lambda o: o["metadata"].update(namespace="clinical-trials"),
            "metadata.namespace: must be add-on cluster-autoscaler's namespace 'kube-system'",
        ),
        (
            "ClusterRoleBinding",
            "external-secrets-controller",
            lambda o: o["roleRef"].update(name="cluster-admin"),
            "roleRef.name: an add-on may not bind a built-in role",
        ),
        (
            "CustomResourceDefinition",
            "secretstores.external-secrets.io",
            lambda o: o["metadata"].update(name="pushsecrets.external-secrets.io"),
            "metadata.name: add-on external-secrets provides only the CRDs",
        ),
        (
            "ServiceAccount",
            "external-secrets",
            lambda o: o.update(kind="Secret", type="Opaque"),
            "kind: Secret is not a kind an add-on may install",
        ),
    ],
    ids=["foreign-image", "other-namespace", "binds-cluster-admin", "crd-not-provided", "secret"],
)
def test_an_addon_object_outside_its_catalog_entry_is_refused_naming_the_field(
    bundle: ManifestBundle, addons: list[dict[str, Any]], kind: str, name: str, change: Any, expected: str
) -> None:
    obj = _changed(addons, kind, name)
    change(obj)
    with pytest.raises(ManifestValidationError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        _validate([obj], bundle)


def test_an_object_claiming_to_be_an_addon_outside_manifests_addons_is_refused(copy_of_manifests: Path) -> None:
    path = copy_of_manifests / "config" / "platform-settings.yaml"
    text = path.read_text()
    path.write_text(text.replace("metadata:\n", f"metadata:\n  labels: {{{ADDON_LABEL}: external-secrets}}\n", 1))
    with pytest.raises(ManifestValidationError, match=f"metadata.labels: {ADDON_LABEL} is for manifests/addons"):
        render(load_bundle(copy_of_manifests), "staging", DIGESTS, account_id=ACCOUNT, region=REGION)


def test_an_environment_listing_an_unknown_addon_or_a_missing_file_is_refused_at_load(copy_of_manifests: Path) -> None:
    values = copy_of_manifests / "environments" / "staging.yaml"
    values.write_text(values.read_text().replace("addons: [external-secrets,", "addons: [karpenter, external-secrets,"))
    (copy_of_manifests.parent / "addons" / "cluster-autoscaler" / "cluster-autoscaler.yaml").unlink()
    with pytest.raises(ManifestValidationError) as error:
        load_bundle(copy_of_manifests)
    assert "environments/staging.yaml: addons: not in ../addons/addons.yaml: ['karpenter']" in str(error.value)
    assert "../addons/cluster-autoscaler/cluster-autoscaler.yaml does not exist" in str(error.value)


def test_an_unknown_placeholder_in_a_substituted_file_is_refused_naming_the_file(copy_of_manifests: Path) -> None:
    path = copy_of_manifests.parent / "addons" / "external-secrets" / "controller.yaml"
    path.write_text(path.read_text().replace("${ENVIRONMENT}", "${STAGE}"))
    with pytest.raises(ManifestValidationError, match=r"external-secrets/controller.yaml: bad placeholder \('STAGE'\)"):
        render_addons(
            load_bundle(copy_of_manifests), "staging", account_id=ACCOUNT, region=REGION, cluster_name=CLUSTER
        )


def test_the_addons_are_part_of_the_bundle_hash(bundle: ManifestBundle, copy_of_manifests: Path) -> None:
    path = copy_of_manifests.parent / "addons" / "cluster-autoscaler" / "cluster-autoscaler.yaml"
    path.write_text(path.read_text().replace("--v=4", "--v=2"))
    assert load_bundle(copy_of_manifests).hash != bundle.hash
