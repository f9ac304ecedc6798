"""Apply's guards and bookkeeping that need no server: ownership labels, actions, drift of recorded objects."""

from __future__ import annotations

from typing import Any

import pytest
from controlplane.errors import KubernetesTransientError, ManifestValidationError
from controlplane.kube import apply
from controlplane.kube.apply import FIELD_MANAGER, OWNERSHIP_LABEL, OWNERSHIP_VALUE, apply_objects
from controlplane.kube.errors import ResourceNotFoundError
from controlplane.models.kube import AppliedObject, ObjectRef
from controlplane.platform import LABEL_MANAGED_BY, MANAGED_BY

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


def recorded(obj: dict[str, Any], *, rv: str = "5", generation: int | None = None) -> AppliedObject:
    return AppliedObject(
        ref=ObjectRef.of(obj), action="configured", resource_version=rv, generation=generation, uid="u-1"
    )


def live(obj: dict[str, Any], *, rv: str = "5", generation: int | None = None, uid: str = "u-1") -> dict[str, Any]:
    out = config_map(obj["metadata"]["name"], rv=rv)
    out["metadata"]["uid"] = uid
    if generation is not None:
        out["metadata"]["generation"] = generation
    return out


def test_an_object_nobody_touched_since_we_applied_it_has_not_drifted() -> None:
    obj = config_map("a")
    assert not apply._drifted(obj, live(obj), recorded(obj))
    # status writes move the resourceVersion, not the generation: objects with a generation compare that
    assert not apply._drifted(obj, live(obj, rv="9", generation=2), recorded(obj, generation=2))


@pytest.mark.parametrize(
    ("current", "why"),
    [
        (None, "deleted"),
        ({"uid": "u-2"}, "deleted and recreated"),
        ({"rv": "6"}, "written (no generation: its resourceVersion moved)"),
        ({"generation": 3}, "spec changed"),
        ({"labels": {OWNERSHIP_LABEL: "someone-else"}}, "label changed"),
    ],
)
def test_an_object_changed_in_the_cluster_has_drifted(current: dict[str, Any] | None, why: str) -> None:
    obj = config_map("a")
    last = recorded(obj, generation=2 if current and "generation" in current else None)
    if current is None:
        assert apply._drifted(obj, None, last), why
        return
    found = live(obj, rv=current.get("rv", "5"), generation=current.get("generation"), uid=current.get("uid", "u-1"))
    if "labels" in current:
        found["metadata"]["labels"] = current["labels"]
    assert apply._drifted(obj, found, last), why


def test_answer_with_the_recorded_resource_version_is_unchanged_without_listing() -> None:
    obj = config_map("a")
    assert apply._action(200, None, config_map("a", rv="5"), dry_run=False, recorded=recorded(obj)) == "unchanged"
    assert apply._action(200, None, config_map("a", rv="6"), dry_run=False, recorded=recorded(obj)) == "configured"


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
