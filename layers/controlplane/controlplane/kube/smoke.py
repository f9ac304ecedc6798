"""Smoke test: a service's health endpoint, reached through the API server's service proxy.

No network path to the pods is needed: ``GET /api/v1/namespaces/{ns}/services/{name}:{port}/proxy{path}``
goes through the EKS endpoint with the deploy role's token (RBAC: ``get`` on ``services/proxy``).

Whatever the service (or the proxy, on its behalf: no endpoints, connection refused) answers is returned as a
:class:`SmokeResult`; judging it is the caller's business. Failures that say nothing about the service raise the
Kubernetes error types instead (never a service's answer, so never a quarantine): a ``Status`` object the API
server answers with itself — our authorization (401/403), a missing Service (404), throttling (429), the API
server unavailable or timing out (5xx) — and no answer at all (timeouts, resets). The proxy's own ``Status``
answers *about the service* (``no endpoints available for service``, ``error trying to reach service``, ``no
service port``) are the service's answer: its pods are not serving.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import urllib3.exceptions

from controlplane.kube.client import ApiClient
from controlplane.kube.errors import ApiError, from_api_exception
from controlplane.models.kube import SmokeResult

EXCERPT_CHARS = 200
# The proxy's Status messages that report on the service (k8s.io/apiserver proxy and endpoints resolution): the
# service's answer. Any other Status object comes from the API server itself.
_ABOUT_THE_SERVICE = ("no endpoints available for service", "error trying to reach service", "no service port")


def smoke_test(api: ApiClient, *, namespace: str, service: str, port: int | str, path: str = "/health") -> SmokeResult:
    """``GET`` ``path`` on ``service:port`` in ``namespace`` through the service proxy; one request."""
    path = path if path.startswith("/") else f"/{path}"
    target = f"{quote(namespace, safe='')}/services/{quote(service, safe='')}:{quote(str(port), safe='')}"
    resource_path = f"/api/v1/namespaces/{target}/proxy{quote(path, safe='/?=&%:@')}"
    what = f"service proxy {namespace}/{service}:{port}{path}"
    try:
        response = api.call_api(
            resource_path,
            "GET",
            header_params={"Accept": "*/*"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
        )
        status, body = int(response.status), response.data
    except ApiError as e:
        if e.status == 0 or _from_the_api_server(e.body):
            raise from_api_exception(e, what=what) from e
        status, body = int(e.status), e.body
    except urllib3.exceptions.HTTPError as e:
        raise from_api_exception(e, what=what) from e
    return SmokeResult(
        namespace=namespace, service=service, port=port, path=path, status_code=status, body_excerpt=_excerpt(body)
    )


def _from_the_api_server(body: bytes | str | None) -> bool:
    """A ``Status`` body the API server answered on its own account (not the proxy reporting on the service)."""
    if not _is_status_object(body):
        return False
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    message = str(json.loads(text).get("message") or "")
    return not message.startswith(_ABOUT_THE_SERVICE)


def _is_status_object(body: bytes | str | None) -> bool:
    try:
        decoded = json.loads(body or "")
    except ValueError:
        return False
    return isinstance(decoded, dict) and decoded.get("kind") == "Status"


def _excerpt(body: bytes | str | None) -> str:
    """The start of the body on one line; for the API server's own Status answers, its message."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    if _is_status_object(text):
        text = f"API server: {json.loads(text).get('message') or text}"
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"
