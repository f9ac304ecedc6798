"""Apply's guards and bookkeeping that need no server: ownership labels, release annotation, actions."""

from __future__ import annotations

from typing import Any

import pytest
from controlplane.errors import KubernetesTransientError, ManifestValidationError
from controlplane.kube import apply
from controlplane.kube.apply import FIELD_MANAGER, OWNERSHIP_LABEL, OWNERSHIP_VALUE, RELEASE_ANNOTATION, apply_objects
from controlplane.models.kube import ObjectRef
from controlplane.platform import LABEL_MANAGED_BY, MANAGED_BY
from kubernetes.dynamic.exceptions import ResourceNotFoundError

pytestmark = pytest.mark.unit


def config_map(name: str, *, owned: bool = True, rv: str | None = None, data: str = "1") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "clinical-trials"}
    if owned:
        meta["labels"] = {OWNERSHIP_LABEL: OWNERSHIP_VALUE}
    if rv:
        meta["resourceVersion"] = rv
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": data}}


class Untouchable:
    """An ApiClient stand-in that fails the test if anything tries to talk to the cluster."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the cluster was contacted ({name}) before validation finished")


def test_constants_match_the_platform_labels() -> None:
    assert FIELD_MANAGER == "synthetictrialstudio-controlplane"
    assert (OWNERSHIP_LABEL, OWNERSHIP_VALUE) == (LABEL_MANAGED_BY, MANAGED_BY)
    assert (OWNERSHIP_LABEL, OWNERSHIP_VALUE) == ("app.kubernetes.io/managed-by", "synthetictrialstudio-controlplane")


def test_objects_without_the_ownership_label_are_refused_before_any_request() -> None:
    objects = [config_map("a"), config_map("b", owned=False)]
    with pytest.raises(ManifestValidationError, match="ConfigMap/clinical-trials/b"):
        apply_objects(Untouchable(), objects, release_id="rel-1")


def test_release_annotation_is_added_to_a_copy() -> None:
    obj = config_map("a")
    body = apply._with_release(obj, "rel-9")
    assert body["metadata"]["annotations"] == {RELEASE_ANNOTATION: "rel-9"}
    assert "annotations" not in obj["metadata"]


@pytest.mark.parametrize(
    ("status", "before", "after", "dry_run", "action"),
    [
        (201, None, config_map("a", rv="5"), False, "created"),
        (200, None, config_map("a", rv="5"), False, "configured"),  # existed unlabelled: adopted
        (200, config_map("a", rv="5"), config_map("a", rv="5"), False, "unchanged"),
        (200, config_map("a", rv="5"), config_map("a", rv="6", data="2"), False, "configured"),
        (200, config_map("a", rv="5"), config_map("a", rv="6"), False, "unchanged"),  # server wrote a no-op
        (200, config_map("a", rv="5"), config_map("a", rv="5", data="2"), True, "configured"),  # dry run keeps rv
        (200, config_map("a", rv="5"), config_map("a", rv="5"), True, "unchanged"),
    ],
)
def test_action_from_status_resource_version_and_content(
    status: int, before: dict[str, Any] | None, after: dict[str, Any], dry_run: bool, action: str
) -> None:
    assert apply._action(status, before, after, dry_run=dry_run) == action


class NoSuchKind:
    class resources:  # noqa: N801 - mimics DynamicClient.resources
        @staticmethod
        def get(**_: Any) -> Any:
            raise ResourceNotFoundError("No matches found")


def test_kind_of_a_crd_applied_in_the_same_release_not_served_yet_is_transient() -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "externalsecrets.external-secrets.io"},
        "spec": {"group": "external-secrets.io", "names": {"kind": "ExternalSecret", "plural": "externalsecrets"}},
    }
    kinds = apply._kinds_defined_by_crds([crd, config_map("a")])
    assert kinds == {("external-secrets.io", "ExternalSecret")}
    secret = ObjectRef(api_version="external-secrets.io/v1", kind="ExternalSecret", namespace="ns", name="x")
    with pytest.raises(KubernetesTransientError, match="not established"):
        apply._resource(NoSuchKind(), secret, kinds)
    other = ObjectRef(api_version="example.com/v1", kind="Widget", namespace="ns", name="x")
    with pytest.raises(ResourceNotFoundError):  # a kind nobody defines stays a (permanent) not-found
        apply._resource(NoSuchKind(), other, kinds)
