"""The API server's service proxy (``/api/v1/namespaces/{ns}/services/{svc}:{port}/proxy/{path}``), simulated.

There is no network behind the emulator: a request "reaches" the first ready pod the Service selects and is answered
from that pod's simulated health (what the kubelet recorded from the image's behaviour).

Known deviations: no load balancing (always the first ready pod by name); every path answers with the pod's health
status; the body is the health body for health-like paths and a small JSON echo otherwise.
"""

from __future__ import annotations

import json

from local.cluster.clock import SimClock
from local.cluster.kubelet import health_of
from local.cluster.objects import PODS, SERVICES, condition_true, is_deleting, labels_of
from local.cluster.selectors import map_selector_matches
from local.cluster.store import Obj, Store

HEALTH_PATHS = frozenset({"health", "healthz", "ready", "readyz", "livez", "status"})


def _status(code: int, reason: str, message: str, details: Obj | None = None) -> tuple[int, bytes]:
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return code, json.dumps(body).encode()


def _port_matches(service_port: Obj, requested: str) -> bool:
    if not requested:
        return True
    return requested in (str(service_port.get("name", "")), str(service_port.get("port", "")))


def service_proxy(  # noqa: PLR0917 - the positional signature the API layer calls
    store: Store, clock: SimClock, namespace: str, service: str, port: str, path: str
) -> tuple[int, bytes]:
    """Answer a proxied request to ``service`` (``port`` is the service port's name or number, or empty)."""
    del clock  # health is recorded on the pod; kept for the interface the API half calls
    svc = store.get(SERVICES, namespace, service)
    if svc is None:
        return _status(404, "NotFound", f'services "{service}" not found', {"name": service, "kind": "services"})
    spec = svc.get("spec") or {}
    # "scheme:name:port" as in the proxy URL: the port part is what follows the last colon, if any.
    requested = port.rsplit(":", 1)[-1] if port else ""
    ports = spec.get("ports") or []
    if requested and ports and not any(_port_matches(p, requested) for p in ports):
        return _status(503, "ServiceUnavailable", f'no service port "{requested}" found for service "{service}"')
    selector = spec.get("selector")
    pods = [
        p
        for p in store.list(PODS, namespace)
        if map_selector_matches(selector, labels_of(p)) and condition_true(p, "Ready") and not is_deleting(p)
    ]
    if not pods:
        return _status(503, "ServiceUnavailable", f'no endpoints available for service "{service}"')
    pod = pods[0]
    code, body = health_of(pod)
    leaf = path.strip("/").split("?", 1)[0].rsplit("/", 1)[-1]
    if leaf in HEALTH_PATHS or not path.strip("/"):
        return code, body
    echo = {"service": service, "pod": pod["metadata"]["name"], "path": "/" + path.lstrip("/")}
    return code, json.dumps(echo).encode()
