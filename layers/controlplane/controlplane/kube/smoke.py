"""Smoke test: a service's health endpoint, reached through the API server's service proxy.

No network path to the pods is needed: ``GET /api/v1/namespaces/{ns}/services/{name}:{port}/proxy{path}``
goes through the EKS endpoint with the deploy role's token (RBAC: ``get`` on ``services/proxy``).

Whatever the service (or the proxy, on its behalf: no endpoints, connection refused) answers is returned as a
:class:`SmokeResult`; judging it is the caller's business. Only failures that say nothing about the service
raise: our own authorization (401/403), API-server throttling (429) and no answer at all (timeouts, resets).
"""

from __future__ import annotations

import json
from urllib.parse import quote

import urllib3.exceptions
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from controlplane.kube.errors import from_api_exception
from controlplane.models.kube import SmokeResult

EXCERPT_CHARS = 200
# Raised instead of reported when the API server itself (a Status object) says so: not the service's answer.
_API_SERVER_FAILURES = frozenset({401, 403, 429})


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
    except ApiException as e:
        if e.status == 0 or (e.status in _API_SERVER_FAILURES and _is_status_object(e.body)):
            raise from_api_exception(e, what=what) from e
        status, body = int(e.status), e.body
    except urllib3.exceptions.HTTPError as e:
        raise from_api_exception(e, what=what) from e
    return SmokeResult(
        namespace=namespace, service=service, port=port, path=path, status_code=status, body_excerpt=_excerpt(body)
    )


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
