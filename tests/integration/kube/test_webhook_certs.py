"""The AWS Load Balancer Controller's webhook certificate, kept by the control plane (controlplane.kube.webhook_certs):
made once as a Secret in kube-system (a CA and a serving certificate for the webhook Service), its CA set as every
webhook's caBundle, reused while valid, renewed before it expires; the key is never in what is applied."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from controlplane.kube.apply import OWNERSHIP_LABEL, OWNERSHIP_VALUE, apply_objects, diff_objects
from controlplane.kube.client import ClusterAccess, build_api_client
from controlplane.kube.webhook_certs import (
    CERTIFICATE_ANNOTATION,
    certificate_secrets,
    usable_bundles,
    with_ca_bundles,
    with_webhook_certificates,
)
from cryptography import x509
from kubernetes.client import CoreV1Api

from local.cluster import api_client

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
CONTROLLER = REPO / "manifests" / "addons" / "aws-load-balancer-controller" / "controller.yaml"
WEBHOOKS = [
    d
    for d in yaml.safe_load_all(CONTROLLER.read_text())
    if d and d["kind"] in {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
]
SERVICE_NAMES = [
    "aws-load-balancer-webhook-service.kube-system",
    "aws-load-balancer-webhook-service.kube-system.svc",
    "aws-load-balancer-webhook-service.kube-system.svc.cluster.local",
]
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def _secret(cluster: Any) -> Any:
    return CoreV1Api(api_client(cluster)).read_namespaced_secret("aws-load-balancer-tls", "kube-system")


def test_the_vendored_webhooks_name_their_secret_and_the_service_names_it_must_cover() -> None:
    assert len(WEBHOOKS) == 2
    assert {w["metadata"]["annotations"][CERTIFICATE_ANNOTATION] for w in WEBHOOKS} == {
        "kube-system/aws-load-balancer-tls"
    }
    assert certificate_secrets(WEBHOOKS) == {("kube-system", "aws-load-balancer-tls"): sorted(SERVICE_NAMES)}


def test_the_certificate_is_made_once_set_as_every_ca_bundle_and_renewed_before_it_expires(cluster: Any) -> None:
    api = build_api_client(ClusterAccess(endpoint=cluster.endpoint, ca_data=cluster.ca_data, token=cluster.token()))
    writes: list[str] = []

    first = with_webhook_certificates(api, WEBHOOKS, now=NOW, before_first_write=lambda: writes.append("write"))

    secret = _secret(cluster)
    assert secret.type == "kubernetes.io/tls"
    assert set(secret.data) == {"ca.crt", "tls.crt", "tls.key"}
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret.data["ca.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret.data["tls.crt"]))
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(names.get_values_for_type(x509.DNSName)) == sorted(SERVICE_NAMES)
    bundles = {w["clientConfig"]["caBundle"] for obj in first for w in obj["webhooks"]}
    assert bundles == {secret.data["ca.crt"]}
    assert sum(len(obj["webhooks"]) for obj in first) == 9
    assert secret.data["tls.key"] not in str(first)
    assert writes == ["write"]
    assert all("caBundle" not in w["clientConfig"] for obj in WEBHOOKS for w in obj["webhooks"])  # not modified

    again = with_webhook_certificates(api, WEBHOOKS, now=NOW + dt.timedelta(days=365), before_first_write=writes.clear)

    assert again == first  # still valid: reused, nothing written
    assert writes == ["write"]
    assert _secret(cluster).data == secret.data

    renewed = with_webhook_certificates(api, WEBHOOKS, now=NOW + dt.timedelta(days=3640))  # 10 days left

    new_secret = _secret(cluster)
    assert new_secret.data["ca.crt"] != secret.data["ca.crt"]
    assert {w["clientConfig"]["caBundle"] for obj in renewed for w in obj["webhooks"]} == {new_secret.data["ca.crt"]}


def test_a_usable_certificate_is_read_ahead_without_writing_and_not_read_again(cluster: Any) -> None:
    """InstallAddons reads the CA before its preflight (to tell whether the webhook configurations will be sent):
    nothing when the Secret is missing or expiring; the CA the apply then fills in, read once."""
    api = build_api_client(ClusterAccess(endpoint=cluster.endpoint, ca_data=cluster.ca_data, token=cluster.token()))
    assert usable_bundles(api, WEBHOOKS, now=NOW) == {}  # missing: made by the apply, which the preflight asks
    assert with_ca_bundles(WEBHOOKS, {}) == WEBHOOKS
    filled = with_webhook_certificates(api, WEBHOOKS, now=NOW)

    usable = usable_bundles(api, WEBHOOKS, now=NOW)

    assert usable == {("kube-system", "aws-load-balancer-tls"): _secret(cluster).data["ca.crt"]}
    assert with_ca_bundles(WEBHOOKS, usable) == filled
    assert usable_bundles(api, WEBHOOKS, now=NOW + dt.timedelta(days=3640)) == {}  # expiring: to be renewed
    before = len(cluster.requests)
    assert with_webhook_certificates(api, WEBHOOKS, now=NOW, usable=usable) == filled
    assert len(cluster.requests) == before  # not read again


def test_a_diff_of_the_rendered_webhooks_leaves_out_the_ca_bundle_the_apply_fills_in(cluster: Any) -> None:
    """The release's render has no caBundle (the apply sets it from the Secret): a dry-run diff (approval, drift,
    `trialstudio diff`) must not read that as "remove the CA", and still shows a real change to a webhook."""
    api = build_api_client(ClusterAccess(endpoint=cluster.endpoint, ca_data=cluster.ca_data, token=cluster.token()))
    rendered = yaml.safe_load(yaml.safe_dump(WEBHOOKS))
    for obj in rendered:
        obj["metadata"].setdefault("labels", {})[OWNERSHIP_LABEL] = OWNERSHIP_VALUE
    apply_objects(api, with_webhook_certificates(api, rendered, now=NOW), release_id="rel-webhooks")

    assert {(d.ref.kind, d.action) for d in diff_objects(api, rendered)} == {
        ("MutatingWebhookConfiguration", "unchanged"),
        ("ValidatingWebhookConfiguration", "unchanged"),
    }

    changed = yaml.safe_load(yaml.safe_dump(rendered))
    changed[0]["webhooks"][0]["failurePolicy"] = "Ignore"
    diffs = {d.ref.kind: d for d in diff_objects(api, changed)}
    first = diffs[changed[0]["kind"]]
    assert first.action == "configured"
    assert [c.path for c in first.changes] == [f"webhooks[name={changed[0]['webhooks'][0]['name']}].failurePolicy"]
    assert diffs[changed[1]["kind"]].action == "unchanged"
