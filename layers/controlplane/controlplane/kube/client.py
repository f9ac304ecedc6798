"""The Kubernetes client, built explicitly per invocation from eks:DescribeCluster and a fresh token.

No kubeconfig, no global configuration: :func:`build_api_client` makes an ``ApiClient`` from a
:class:`ClusterAccess` (endpoint, CA, bearer token) with urllib3 retries disabled (the state machine retries,
after :mod:`controlplane.kube.errors` has classified the failure) and a timeout on every request.

:func:`dynamic_client` wraps it in a ``DynamicClient`` whose discovery is cached per endpoint (and CA) in a file
under the temp directory, which lives as long as the warm Lambda execution environment: only the first invocation
of an environment pays for discovery (``/version``, ``/apis``, one request per group version it uses).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient, Configuration
from kubernetes.dynamic import DynamicClient
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from controlplane.kube.errors import translate_errors

DEFAULT_TIMEOUT = 10.0


class ClusterAccess(BaseModel):
    """What it takes to reach one cluster's API server: its endpoint, its CA and a bearer token.

    ``ca_data`` is the base64-encoded PEM bundle exactly as ``eks:DescribeCluster`` returns it in
    ``certificateAuthority.data``. The token is a ``SecretStr``: reprs, logs and dumps show ``**********``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str
    ca_data: str
    token: SecretStr

    @field_validator("endpoint")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("the API server endpoint must be an https:// URL")
        return value.rstrip("/")

    @field_validator("ca_data")
    @classmethod
    def _pem(cls, value: str) -> str:
        try:
            pem = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ValueError("ca_data must be base64 (certificateAuthority.data of eks:DescribeCluster)") from e
        if b"-----BEGIN CERTIFICATE-----" not in pem:
            raise ValueError("ca_data must decode to a PEM certificate bundle")
        return value

    @property
    def ca_pem(self) -> bytes:
        return base64.b64decode(self.ca_data)


class _TimeoutApiClient(ApiClient):  # type: ignore[misc]  # the client has no type stubs
    """An ``ApiClient`` that applies a default (connect, read) timeout to every request that sets none."""

    def __init__(self, configuration: Configuration, timeout: float) -> None:
        super().__init__(configuration)
        self._default_timeout = (timeout, timeout)

    def request(self, method: str, url: str, *args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return super().request(method, url, *args, _request_timeout=_request_timeout or self._default_timeout, **kwargs)


def build_api_client(access: ClusterAccess, *, timeout: float = DEFAULT_TIMEOUT) -> ApiClient:
    """An ``ApiClient`` for ``access``: verified TLS against the cluster's CA, bearer token, no urllib3 retries.

    ``timeout`` bounds connecting and each read of every request (seconds).
    """
    config = Configuration(host=access.endpoint)
    config.verify_ssl = True
    config.ssl_ca_cert = str(_ca_file(access.ca_pem))
    config.api_key = {"authorization": f"Bearer {access.token.get_secret_value()}"}
    config.retries = False  # a failure surfaces at once, classified; retrying is the state machine's job
    return _TimeoutApiClient(config, timeout)


def dynamic_client(api: ApiClient) -> DynamicClient:
    """A ``DynamicClient`` on ``api`` whose discovery is cached per endpoint and CA in the temp directory.

    A kind the cache does not know makes the client refresh it once (a CRD applied since, for example).
    """
    config = api.configuration
    cache_id = hashlib.sha256(f"{config.host}\n{config.ssl_ca_cert}".encode()).hexdigest()[:24]
    cache_file = Path(tempfile.gettempdir()) / f"stsc-discovery-{cache_id}.json"
    with translate_errors(f"API discovery at {config.host}"):
        return DynamicClient(api, cache_file=str(cache_file))


def request_json(
    dyn: DynamicClient, method: str, path: str, *, body: Any = None, **params: Any
) -> tuple[int, dict[str, Any]]:
    """One request through ``dyn``: the HTTP status and the decoded JSON body (``{}`` when empty).

    Errors are raised as the client raises them; wrap calls in :func:`translate_errors`.
    """
    response = dyn.request(method, path, body=body, serialize=False, **params)
    data = response.data
    status = int(response.status)
    if not data:
        return status, {}
    decoded = json.loads(data)
    return status, decoded if isinstance(decoded, dict) else {}


def list_objects(
    dyn: DynamicClient, resource: Any, namespace: str | None, *, label_selector: str | None = None
) -> list[dict[str, Any]]:
    """The items of one list request, each with its apiVersion and kind (list items omit them on the wire)."""
    _, body = request_json(dyn, "GET", resource.path(namespace=namespace), label_selector=label_selector)
    items = body.get("items") or []
    for item in items:
        item.setdefault("apiVersion", resource.group_version)
        item.setdefault("kind", resource.kind)
    return list(items)


def _ca_file(pem: bytes) -> Path:
    """The CA bundle as a file (urllib3 wants a path), named by its hash so warm invocations reuse it."""
    path = Path(tempfile.gettempdir()) / f"stsc-ca-{hashlib.sha256(pem).hexdigest()[:24]}.pem"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".stsc-ca-")
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        Path(tmp).replace(path)
    return path
