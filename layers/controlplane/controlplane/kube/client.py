"""The Kubernetes client, built explicitly per invocation from eks:DescribeCluster and a fresh token.

No kubeconfig, no global configuration: :func:`build_api_client` makes an :class:`ApiClient` from a
:class:`ClusterAccess` (endpoint, CA, bearer token) with urllib3 retries disabled (the state machine retries,
after :mod:`controlplane.kube.errors` has classified the failure) and a timeout on every request.

:class:`ApiClient` is urllib3 and JSON, nothing more: the official ``kubernetes`` package costs a handler about half a
second of cold start (its package imports ~700 models, config loaders, watch and stream) and this package uses only
its raw ``call_api``, which :class:`ApiClient` keeps (same parameters, error answers raised as
:class:`controlplane.kube.errors.ApiError` with the official ``ApiException``'s attributes).

:func:`dynamic_client` wraps it in a :class:`KubeClient`: raw requests plus :class:`Discovery`, which resolves a
kind to its resource path from what it discovered about the endpoint (and CA) before, in this process, which lives
as long as the warm Lambda execution environment. A cold environment asks once for the aggregated discovery
documents (``/api`` and ``/apis`` as ``apidiscovery.k8s.io/v2``: every group in two requests); a server without
them is asked for the group versions it is asked about only (``/apis/<group>/<version>``). A kind the cache does
not know refreshes its own group version once per client (a CRD applied since, for example), never everything.
Kinds whose CustomResourceDefinition the caller holds can be :meth:`Discovery.hint`-ed: no discovery at all.

:func:`list_with_time` and :func:`watch_objects` are Kubernetes' "efficient detection of changes": list once, then
watch from the list's resourceVersion with a bounded ``timeoutSeconds``; a watch whose resourceVersion was compacted
meanwhile ends with :class:`WatchExpiredError` (410 ``Expired``), after which the caller lists again. Both tell the
caller the API server's time (its ``Date`` header), the clock the watch's ``timeoutSeconds`` counts on.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from controlplane.kube.errors import ApiError, ResourceNotFoundError

DEFAULT_TIMEOUT = 10.0
AGGREGATED_DISCOVERY = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


class ClusterAccess(BaseModel):
    """What it takes to reach one cluster's API server: its endpoint, its CA and a bearer token.

    ``ca_data`` is the base64-encoded PEM bundle exactly as ``eks:DescribeCluster`` returns it in
    ``certificateAuthority.data``. The token is a ``SecretStr``: reprs, logs and dumps show ``**********``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

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


@dataclass(frozen=True)
class ApiConfiguration:
    """Where an :class:`ApiClient` connects: the endpoint and the CA file it verifies the server against."""

    host: str
    ssl_ca_cert: str
    verify_ssl: bool = True
    retries: bool = False


RETRY_AFTER_BUDGET_S = 10.0
"""The longest ``Retry-After`` one request waits out inside the call (then it is sent once more). A longer one is
raised (``KubernetesTransientError``, the wait in its message) for the state machine's Retry, whose backoff reaches a
minute: no request is re-sent sooner than the server asked, and no invocation sleeps near its timeout."""

TOKEN_REFRESH_S = 600.0
"""Age (wall seconds) at which a client with a token source signs a new token before its next request. An EKS
token is accepted for 15 minutes after it was signed (aws-iam-authenticator checks ``X-Amz-Date``); ten minutes
leaves room for a long request and a clock that drifts."""

RETRY_AFTER_STATUSES = frozenset({429, 503})
"""Answers whose ``Retry-After`` means the request was not processed (API Priority and Fairness rejects with 429;
an API server not ready yet answers 503): safe to send again, whatever the verb."""


TokenSource = Callable[[], SecretStr]
"""Signs a fresh bearer token (``controlplane.aws.eks.get_token`` for the client's identity)."""


class ApiClient:
    """HTTPS requests to one API server with a bearer token (see the module docstring).

    With a ``token_source`` the token is renewed before it ages out (older than :data:`TOKEN_REFRESH_S`, on the
    wall clock: an EKS token expires 15 minutes after it was signed, which a long invocation or a 1,000-service
    apply outlasts) and once when the server answers 401 Unauthorized (the request is then sent once more with the
    new token). Without one, a 401 is raised as it came. The token never leaves this object (not in reprs, errors
    or logs).
    """

    retry_after_budget_s: float = RETRY_AFTER_BUDGET_S
    sleep: Callable[[float], None] = staticmethod(time.sleep)
    monotonic: Callable[[], float] = staticmethod(time.monotonic)

    def __init__(
        self, access: ClusterAccess, *, timeout: float = DEFAULT_TIMEOUT, token_source: TokenSource | None = None
    ) -> None:
        self.configuration = ApiConfiguration(host=access.endpoint, ssl_ca_cert=str(_ca_file(access.ca_pem)))
        self._token_source = token_source
        self._authorization = f"Bearer {access.token.get_secret_value()}"
        self._signed_at = self.monotonic()
        self.token_refreshes = 0
        self.default_timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self.pool = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED", ca_certs=self.configuration.ssl_ca_cert, retries=False, maxsize=4
        )

    def __repr__(self) -> str:
        return f"ApiClient(host={self.configuration.host!r})"

    def call_api(
        self,
        resource_path: str,
        method: str,
        *,
        query_params: Iterable[tuple[str, Any]] | None = None,
        header_params: Mapping[str, str] | None = None,
        body: Any = None,
        _preload_content: bool = True,
        _request_timeout: float | tuple[float, float] | None = None,
        **_unused: Any,
    ) -> Any:
        """One request (the official client's keyword arguments; other ones it takes are ignored); the urllib3
        response (``.status``, ``.data``, ``.headers``) when the status is 2xx, else :class:`ApiError`. Transport
        failures are urllib3's exceptions."""
        url = self.configuration.host + resource_path
        query = [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in query_params or ()]
        if query:
            url += "?" + urlencode(query)
        headers = {"Accept": "application/json", **(header_params or {})}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes | str) else json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        if self._token_source is not None and self.monotonic() - self._signed_at >= TOKEN_REFRESH_S:
            self._renew_token()

        def send() -> Any:
            return self.pool.request(
                method.upper(),
                url,
                body=data,
                headers={**headers, "Authorization": self._authorization},
                timeout=_timeout(_request_timeout) or self.default_timeout,
                preload_content=_preload_content,
                redirect=False,
            )

        response = self._send_with_retries(send)
        if not 200 <= response.status < 300:
            raise ApiError(response.status, response.reason or "", body=response.data, headers=dict(response.headers))
        return response

    def _send_with_retries(self, send: Callable[[], Any]) -> Any:
        """``send()`` once, again after a Retry-After within the budget, and again once with a new token after a 401
        (when there is a token source)."""
        waited = renewed = False
        while True:
            response = send()
            if response.status == 401 and self._token_source is not None and not renewed:
                _release(response)
                self._renew_token()  # the token aged out (or the clock drifted): sign a new one, send once more
                renewed = True
                continue
            wait = None if waited else self._retry_after(response)
            if wait is None:
                return response
            _release(response)
            self.sleep(wait)  # honour the server's Retry-After, then send the request once more
            waited = True

    def _renew_token(self) -> None:
        assert self._token_source is not None  # the callers checked
        self._authorization = f"Bearer {self._token_source().get_secret_value()}"
        self._signed_at = self.monotonic()
        self.token_refreshes += 1

    def _retry_after(self, response: Any) -> float | None:
        """Seconds to wait before sending the request again, when the answer asks for it within the budget."""
        if response.status not in RETRY_AFTER_STATUSES:
            return None
        value = (response.headers or {}).get("Retry-After")
        try:
            seconds = float(value) if value is not None else None
        except (TypeError, ValueError):
            return None  # an HTTP-date: the state machine's backoff waits instead
        if seconds is None or not 0 <= seconds <= self.retry_after_budget_s:
            return None
        return seconds

    def close(self) -> None:
        self.pool.clear()


def _release(response: Any) -> None:
    """Let a streamed answer we will not read go back to the pool (a no-op for a preloaded one)."""
    with contextlib.suppress(Exception):
        response.drain_conn()
    with contextlib.suppress(Exception):
        response.release_conn()


def _timeout(value: float | tuple[float, float] | None) -> urllib3.Timeout | None:
    if value is None:
        return None
    connect, read = value if isinstance(value, tuple) else (value, value)
    return urllib3.Timeout(connect=connect, read=read)


def build_api_client(
    access: ClusterAccess, *, timeout: float = DEFAULT_TIMEOUT, token_source: TokenSource | None = None
) -> ApiClient:
    """An :class:`ApiClient` for ``access``: verified TLS against the cluster's CA, bearer token, no retries.

    ``timeout`` bounds connecting and each read of every request (seconds); ``token_source`` signs a new token
    when the one in ``access`` ages out or is refused (see :class:`ApiClient`).
    """
    return ApiClient(access, timeout=timeout, token_source=token_source)


@dataclass(frozen=True)
class Resource:
    """One API resource: where objects of ``kind`` (in ``group``/``version``) live."""

    group: str
    version: str
    kind: str
    name: str  # the plural resource name of the URL
    namespaced: bool

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, name: str | None = None, namespace: str | None = None) -> str:
        """The collection (no ``name``) or object URL path, in ``namespace`` when the resource is namespaced."""
        path = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            path += f"/namespaces/{namespace}"
        path += f"/{self.name}"
        return f"{path}/{name}" if name else path


# endpoint+CA -> group version -> kind -> resource; as long as the process (the warm Lambda environment) lives.
_DISCOVERED: dict[str, dict[str, dict[str, Resource]]] = {}
# endpoints that answered the aggregated discovery request with the legacy documents.
_NO_AGGREGATED: set[str] = set()


@dataclass
class Discovery:
    """Kind -> :class:`Resource` for one endpoint (see the module docstring for what it asks the server)."""

    kube: KubeClient
    cache_id: str
    _hints: dict[tuple[str, str], Resource] = field(default_factory=dict)
    _refreshed: set[str] = field(default_factory=set)

    @property
    def _known(self) -> dict[str, dict[str, Resource]]:
        return _DISCOVERED.setdefault(self.cache_id, {})

    def get(self, *, api_version: str, kind: str) -> Resource:
        """The resource serving ``kind`` in ``api_version``; ``ResourceNotFoundError`` when the server has none."""
        found = self._known.get(api_version, {}).get(kind) or self._hints.get((api_version, kind))
        if found is None and api_version not in self._refreshed:
            self._refresh(api_version)
            found = self._known.get(api_version, {}).get(kind)
        if found is None:
            raise ResourceNotFoundError(f"no resource serves kind {kind} in {api_version}")
        return found

    def hint(self, resources: Iterable[Resource]) -> None:
        """Resources known without asking (from CustomResourceDefinitions): used when discovery has no answer."""
        self._hints.update({(r.group_version, r.kind): r for r in resources})

    def _refresh(self, api_version: str) -> None:
        self._refreshed.add(api_version)
        if not self._known and self.cache_id not in _NO_AGGREGATED:
            self._aggregated()
            if api_version in self._known:
                return
        group, _, version = api_version.rpartition("/")
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            _, doc = request_json(self.kube, "GET", path)
        except ApiError as e:
            if e.status != 404:
                raise
            doc = {}
        self._known[api_version] = {
            r["kind"]: Resource(group, version, r["kind"], r["name"], bool(r.get("namespaced")))
            for r in doc.get("resources") or []
            if "/" not in r["name"]  # subresources
        }

    def _aggregated(self) -> None:
        for path in ("/api", "/apis"):
            _, doc = request_json(
                self.kube, "GET", path, header_params={"Accept": f"{AGGREGATED_DISCOVERY},application/json"}
            )
            if doc.get("kind") != "APIGroupDiscoveryList":
                _NO_AGGREGATED.add(self.cache_id)
                return
            for group in doc.get("items") or []:
                name = str((group.get("metadata") or {}).get("name") or "")
                for version in group.get("versions") or []:
                    self._known[f"{name}/{version['version']}" if name else str(version["version"])] = {
                        r["responseKind"]["kind"]: Resource(
                            name,
                            str(version["version"]),
                            r["responseKind"]["kind"],
                            r["resource"],
                            r["scope"] == "Namespaced",
                        )
                        for r in version.get("resources") or []
                    }


class KubeClient:
    """Raw requests to one API server through ``client`` (an ``ApiClient``), and :class:`Discovery` of its kinds."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        config = client.configuration
        cache_id = hashlib.sha256(f"{config.host}\n{config.ssl_ca_cert}".encode()).hexdigest()[:24]
        self.resources = Discovery(self, cache_id)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        query_params: Iterable[tuple[str, str]] = (),
        label_selector: str | None = None,
        field_selector: str | None = None,
        header_params: Mapping[str, str] | None = None,
    ) -> Any:
        """One request; the raw urllib3 response (``.status``, ``.data``). Errors are the client's ``ApiException``."""
        query = list(query_params)
        if label_selector is not None:
            query.append(("labelSelector", label_selector))
        if field_selector is not None:
            query.append(("fieldSelector", field_selector))
        headers = {"Accept": "application/json", "Content-Type": content_type or "application/json"}
        headers.update(header_params or {})
        return self.client.call_api(
            path, method.upper(), query_params=query, header_params=headers, body=body, _preload_content=False
        )


def dynamic_client(api: ApiClient) -> KubeClient:
    """A :class:`KubeClient` on ``api``: its discovery remembers the endpoint (and CA) for the process's lifetime."""
    return KubeClient(api)


def request_json(
    dyn: KubeClient, method: str, path: str, *, body: Any = None, **params: Any
) -> tuple[int, dict[str, Any]]:
    """One request through ``dyn``: the HTTP status and the decoded JSON body (``{}`` when empty).

    Errors are raised as the client raises them; wrap calls in :func:`translate_errors`.
    """
    response = dyn.request(method, path, body=body, **params)
    data = response.data
    status = int(response.status)
    if not data:
        return status, {}
    decoded = json.loads(data)
    return status, decoded if isinstance(decoded, dict) else {}


def list_objects(
    dyn: KubeClient,
    resource: Resource,
    namespace: str | None,
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> list[dict[str, Any]]:
    """The items of one list request, each with its apiVersion and kind (list items omit them on the wire)."""
    _, body = request_json(
        dyn, "GET", resource.path(namespace=namespace), label_selector=label_selector, field_selector=field_selector
    )
    items = body.get("items") or []
    for item in items:
        item.setdefault("apiVersion", resource.group_version)
        item.setdefault("kind", resource.kind)
    return list(items)


class WatchExpiredError(Exception):
    """The watch's resourceVersion is older than the server keeps (410 ``Expired``/``Gone``): list again."""


@dataclass(frozen=True)
class Listing:
    """One list answer: the items (with apiVersion and kind), the list's resourceVersion, the server's time."""

    items: list[dict[str, Any]]
    resource_version: str
    served_at: datetime | None


def served_at(headers: Mapping[str, str] | None) -> datetime | None:
    """The API server's time from an answer's ``Date`` header (whole seconds: a lower bound of when it answered)."""
    value = (headers or {}).get("Date") or (headers or {}).get("date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def list_with_time(
    dyn: KubeClient,
    resource: Resource,
    namespace: str | None,
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> Listing:
    """One list request: its items, its resourceVersion (where a watch starts) and the server's time."""
    response = dyn.request(
        "GET", resource.path(namespace=namespace), label_selector=label_selector, field_selector=field_selector
    )
    body = json.loads(response.data or b"{}")
    items = body.get("items") or []
    for item in items:
        item.setdefault("apiVersion", resource.group_version)
        item.setdefault("kind", resource.kind)
    version = str((body.get("metadata") or {}).get("resourceVersion") or "")
    return Listing(list(items), version, served_at(response.headers))


def server_time(dyn: KubeClient) -> datetime | None:
    """The API server's time now: the ``Date`` of a ``GET /version`` (readable by anyone authenticated)."""
    response = dyn.request("GET", "/version")
    return served_at(response.headers)


class WatchStream:
    """One watch request's events (``(type, object)``; BOOKMARKs included), read as they arrive.

    ``opened_at`` is the server's time when it answered; the request asked it to end after ``timeout_s`` seconds.
    :meth:`close` may be called from another thread to end the stream early (the reader then sees it end).
    """

    def __init__(self, response: Any, resource: Resource, timeout_s: int) -> None:
        self._response = response
        self._resource = resource
        self.timeout_s = timeout_s
        self.opened_at = served_at(response.headers)
        self.closed = False

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        buffer = b""
        try:
            for chunk in self._response.stream(64 * 1024, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield self._event(json.loads(line))
        except (urllib3.exceptions.HTTPError, OSError, ValueError):
            if not self.closed:
                raise
        finally:
            self._response.release_conn()

    def _event(self, event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kind, obj = str(event.get("type")), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") in (410,) or obj.get("reason") in ("Expired", "Gone"):
                raise WatchExpiredError(str(obj.get("message") or "resource version expired"))
            raise ApiError(int(obj.get("code") or 500), str(obj.get("reason") or ""), body=json.dumps(obj).encode())
        obj.setdefault("apiVersion", self._resource.group_version)
        obj.setdefault("kind", self._resource.kind)
        return kind, obj

    def close(self) -> None:
        """End the stream now (from any thread)."""
        self.closed = True
        with contextlib.suppress(Exception):
            self._response.shutdown()


WATCH_READ_SLACK_S = 10.0
"""How much longer than its ``timeoutSeconds`` a watch's reads may wait for the server before it is a timeout."""


def watch_objects(
    dyn: KubeClient,
    resource: Resource,
    namespace: str | None,
    *,
    resource_version: str,
    timeout_s: int,
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> WatchStream:
    """A watch of ``resource`` in ``namespace`` from ``resource_version`` that the server ends after ``timeout_s``
    seconds (bookmarks asked for, so a quiet watch still learns how far it got)."""
    query = [
        ("watch", "true"),
        ("resourceVersion", resource_version),
        ("timeoutSeconds", str(timeout_s)),
        ("allowWatchBookmarks", "true"),
    ]
    if label_selector is not None:
        query.append(("labelSelector", label_selector))
    if field_selector is not None:
        query.append(("fieldSelector", field_selector))
    try:
        response = dyn.client.call_api(
            resource.path(namespace=namespace),
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            _preload_content=False,
            _request_timeout=(DEFAULT_TIMEOUT, timeout_s + WATCH_READ_SLACK_S),
        )
    except ApiError as e:
        if e.status == 410:  # answered as a status rather than an ERROR event: the same thing
            raise WatchExpiredError(f"resource version {resource_version} expired") from e
        raise
    return WatchStream(response, resource, timeout_s)


def _ca_file(pem: bytes) -> Path:
    """The CA bundle as a file (urllib3 wants a path), named by its hash so warm invocations reuse it."""
    path = Path(tempfile.gettempdir()) / f"stsc-ca-{hashlib.sha256(pem).hexdigest()[:24]}.pem"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".stsc-ca-")
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        Path(tmp).replace(path)
    return path
