"""Serving certificates of vendored add-ons' admission webhooks, kept by the control plane (no cert-manager).

What a Helm chart's ``genCA`` does at install time, done when the add-on is applied: a webhook configuration that
carries :data:`CERTIFICATE_ANNOTATION` (``<namespace>/<secret>``) gets its certificate from that Secret (type
``kubernetes.io/tls``: ``ca.crt``, ``tls.crt``, ``tls.key``), which the add-on's pods mount. The Secret is made once
(a self-signed CA, 10 years, and a serving certificate for ``<service>.<namespace>``, ``.svc`` and
``.svc.cluster.local`` of every webhook's service, signed by it) and kept while it covers those names for more than
:data:`RENEW_BEFORE` ; every webhook's ``clientConfig.caBundle`` is set from its ``ca.crt`` in the objects applied,
so the API server trusts the webhook server. The key never leaves the Secret: nothing here logs or returns it.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from controlplane.errors import ManifestValidationError
from controlplane.kube.apply import CERTIFICATE_ANNOTATION, FIELD_MANAGER, WEBHOOK_KINDS
from controlplane.kube.client import ApiClient, KubeClient, dynamic_client, request_json
from controlplane.kube.errors import ApiError, translate_errors
from controlplane.models.kube import ObjectRef

VALIDITY: Final = dt.timedelta(days=3650)
RENEW_BEFORE: Final = dt.timedelta(days=30)
_KEY_SIZE: Final = 2048


def certificate_secrets(objects: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """``(namespace, secret) -> the DNS names`` its serving certificate must cover, from the annotated webhook
    configurations among ``objects`` (sorted, duplicates removed)."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for obj in objects:
        secret = _secret_of(obj)
        if secret is None:
            continue
        names = wanted.setdefault(secret, set())
        for webhook in obj.get("webhooks") or []:
            service = ((webhook or {}).get("clientConfig") or {}).get("service") or {}
            name, namespace = service.get("name"), service.get("namespace")
            if not name or not namespace:
                raise ManifestValidationError(
                    f"{obj['kind']}/{obj['metadata']['name']}: webhook {webhook.get('name')!r} has no "
                    f"clientConfig.service; {CERTIFICATE_ANNOTATION} serves webhooks behind a Service only"
                )
            names.update({f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"})
    return {key: sorted(names) for key, names in wanted.items()}


def with_webhook_certificates(
    api: ApiClient,
    objects: Sequence[Mapping[str, Any]],
    *,
    now: dt.datetime,
    before_first_write: Callable[[], None] | None = None,
    usable: Mapping[tuple[str, str], str] | None = None,
) -> list[dict[str, Any]]:
    """``objects`` with every annotated webhook's ``caBundle`` set from its Secret, making or renewing the Secret
    first when it is missing, incomplete, expiring or for other names (``before_first_write`` runs before that
    write). Objects without webhooks are returned unchanged. ``usable``: the bundles :func:`usable_bundles` just
    read, by Secret (not read again)."""
    bundles: dict[tuple[str, str], str] = dict(usable or {})
    dyn = dynamic_client(api)
    for (namespace, name), dns_names in certificate_secrets(objects).items():
        if (namespace, name) in bundles:
            continue
        path = f"/api/v1/namespaces/{namespace}/secrets/{name}"
        ref = ObjectRef(api_version="v1", kind="Secret", namespace=namespace, name=name)
        with translate_errors(ref):
            current = _read(dyn, path)
        ca_pem = _usable_ca(current, dns_names, now)
        if ca_pem is None:
            if before_first_write is not None:
                before_first_write()
                before_first_write = None
            ca_pem, body = _new_secret(namespace, name, dns_names, now)
            with translate_errors(ref):
                request_json(
                    dyn,
                    "PATCH",
                    path,
                    body=body,
                    content_type="application/apply-patch+yaml",
                    query_params=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                )
        bundles[(namespace, name)] = base64.b64encode(ca_pem).decode()
    return with_ca_bundles(objects, bundles)


def usable_bundles(
    api: ApiClient, objects: Iterable[Mapping[str, Any]], *, now: dt.datetime
) -> dict[tuple[str, str], str]:
    """The CA bundle (base64) of each webhook certificate Secret of ``objects`` that is usable as it is, read and
    never written: before a deploy's preflight, to tell whether the CA-filled webhook configurations will be sent.
    A Secret missing, incomplete, expiring, for other names or not readable (the preflight then names ``get``) is
    left out: :func:`with_webhook_certificates` reads (and makes) it."""
    bundles: dict[tuple[str, str], str] = {}
    dyn = dynamic_client(api)
    for (namespace, name), dns_names in certificate_secrets(objects).items():
        ref = ObjectRef(api_version="v1", kind="Secret", namespace=namespace, name=name)
        with translate_errors(ref):
            try:
                current = _read(dyn, f"/api/v1/namespaces/{namespace}/secrets/{name}")
            except ApiError as exc:
                if exc.status != 403:
                    raise
                continue  # not ours to read: the preflight names the missing get
        ca_pem = _usable_ca(current, dns_names, now)
        if ca_pem is not None:
            bundles[(namespace, name)] = base64.b64encode(ca_pem).decode()
    return bundles


def with_ca_bundles(
    objects: Iterable[Mapping[str, Any]], bundles: Mapping[tuple[str, str], str]
) -> list[dict[str, Any]]:
    """``objects`` (copies) with the ``caBundle`` of every annotated webhook whose Secret is in ``bundles``."""
    out = []
    for obj in objects:
        secret = _secret_of(obj)
        copied = copy.deepcopy(dict(obj))
        if secret is not None and secret in bundles:
            for webhook in copied.get("webhooks") or []:
                webhook.setdefault("clientConfig", {})["caBundle"] = bundles[secret]
        out.append(copied)
    return out


def _secret_of(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    if obj.get("kind") not in WEBHOOK_KINDS:
        return None
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(CERTIFICATE_ANNOTATION)
    if value is None:
        return None
    namespace, _, name = str(value).partition("/")
    if not namespace or not name:
        raise ManifestValidationError(
            f"{obj['kind']}/{obj['metadata']['name']}: {CERTIFICATE_ANNOTATION} must be <namespace>/<secret>, "
            f"got {value!r}"
        )
    return namespace, name


def _read(dyn: KubeClient, path: str) -> dict[str, Any] | None:
    try:
        return request_json(dyn, "GET", path)[1]
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def _usable_ca(secret: Mapping[str, Any] | None, dns_names: Sequence[str], now: dt.datetime) -> bytes | None:
    """The Secret's CA (PEM) when its certificate and key are all there, the serving certificate covers
    ``dns_names`` and neither expires within :data:`RENEW_BEFORE`; else ``None`` (make a new one)."""
    # cryptography (~20 ms to import) loads only where a webhook certificate is read or made: off every
    # handler's import path (ApplyRelease and the preflight import this module).
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    data = (secret or {}).get("data") or {}
    try:
        ca_pem = base64.b64decode(data["ca.crt"])
        cert = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
        ca = x509.load_pem_x509_certificate(ca_pem)
        serialization.load_pem_private_key(base64.b64decode(data["tls.key"]), password=None)
    except (KeyError, ValueError, TypeError):
        return None
    try:
        covered = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        return None
    fresh = min(cert.not_valid_after_utc, ca.not_valid_after_utc) - now > RENEW_BEFORE
    return ca_pem if fresh and set(dns_names) <= set(covered) and cert.issuer == ca.subject else None


def _new_secret(namespace: str, name: str, dns_names: Sequence[str], now: dt.datetime) -> tuple[bytes, dict[str, Any]]:
    """A new CA and serving certificate (genCA + genSignedCert) as the Secret to apply; returns the CA's PEM too."""
    from cryptography import x509  # noqa: PLC0415 - see _usable_ca
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    start, end = now - dt.timedelta(minutes=5), now + VALIDITY
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": {
            "ca.crt": base64.b64encode(ca_pem).decode(),
            "tls.crt": base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode(),
            "tls.key": base64.b64encode(key_pem).decode(),
        },
    }
    return ca_pem, body


__all__ = [
    "CERTIFICATE_ANNOTATION",
    "RENEW_BEFORE",
    "VALIDITY",
    "certificate_secrets",
    "with_webhook_certificates",
]
