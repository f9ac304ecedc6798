"""The API server's request handling, independent of HTTP: authentication, authorization, routing.

:meth:`ApiServer.handle` takes a parsed :class:`Request` and returns a :class:`Response` (a body, a watch stream
or a connection reset). The verbs live in their own modules: ``reads`` (get, list, watch), ``writes`` (create,
update, patch, apply, delete, the garbage collector) and ``subresources`` (status, scale, proxy); the wire types
in ``wire``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from local.cluster import discovery, protowire, reviews, status
from local.cluster.access import ANONYMOUS, AccessEntries, Identities, User
from local.cluster.auth import DenyRule, TokenError, TokenVerifier, forbidden_message
from local.cluster.clock import SimClock
from local.cluster.faults import Fault, FaultInjector, RequestLog, RequestRecord
from local.cluster.rbac import Attributes, Authorizer
from local.cluster.resources import Registry, ResourceType
from local.cluster.status import ApiError
from local.cluster.store import Store
from local.cluster.subresources import ProxyFn, SubresourceVerbs
from local.cluster.wire import JSON, Info, Obj, Request, Response, encode, now_string, parse_info

__all__ = ["ApiServer", "Info", "ProxyFn", "Request", "Response", "now_string", "parse_info"]

logger = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset(
    {"/version", "/healthz", "/livez", "/readyz", "/.well-known/openid-configuration", "/openid/v1/jwks"}
)


def _forbidden(info: Info, user: User) -> ApiError:
    """403 Forbidden in RBAC's words, for a denied request, a deny rule or an injected 403."""
    message = forbidden_message(
        user.name,
        info.verb,
        resource=info.resource,
        subresource=info.subresource,
        group=info.group,
        namespace=info.namespace,
        name=info.name,
    )
    return status.forbidden(info.resource, info.group, info.name, message)


class ApiServer(SubresourceVerbs):
    """Everything between the socket and the store."""

    def __init__(
        self,
        *,
        store: Store,
        clock: SimClock,
        registry: Registry,
        faults: FaultInjector,
        requests: RequestLog,
        verifier: TokenVerifier,
        identities: Identities,
        access_entries: AccessEntries,
        deny_rules: list[DenyRule],
        after_write: Callable[[], None],
        proxy: ProxyFn | None,
        address: Callable[[], str],
    ) -> None:
        self.store = store
        self.clock = clock
        self.registry = registry
        self.faults = faults
        self.requests = requests
        self.verifier = verifier
        self.identities = identities
        self.access_entries = access_entries
        self.authorizer = Authorizer(store)
        self.deny_rules = deny_rules
        self.after_write = after_write
        self.proxy = proxy
        self.address = address
        self.stopping = threading.Event()
        self._ip_lock = threading.Lock()
        self._next_ip = 10
        self._next_node_port = 30000
        self._openapi_cache: tuple[int, Obj] | None = None
        store.subscribe(self._on_change)

    # ---------------------------------------------------------------------------------------------- entry point
    def handle(self, req: Request) -> Response:
        info = parse_info(req.method, req.path, req.query)
        record_verb = info.verb
        user = ANONYMOUS
        try:
            user = self._authenticate(req)
            if info.resource_request:
                resp = self._resource_request(req, info, user)
            else:
                resp = self._non_resource(req, info, user)
        except ApiError as err:
            resp = self.error(err)
        except Exception as exc:
            logger.exception("internal error serving %s %s", req.method, req.path)
            resp = self.error(status.internal_error(str(exc)))
        # The Date header follows the simulated clock (a client may take its time from the server, as on EKS).
        resp.headers.setdefault("Date", formatdate(self.clock.now(), usegmt=True))
        self.requests.append(
            RequestRecord(
                method=req.method,
                path=req.path,
                query={k: v[0] for k, v in req.query.items() if v},
                content_type=req.content_type,
                status=0 if resp.reset else resp.status,
                verb=record_verb,
                resource=info.resource,
                namespace=info.namespace,
                name=info.name,
                subresource=info.subresource,
                group=info.group,
                user_agent=req.header("User-Agent"),
                field_manager=req.q("fieldManager") or "",
                user=user.name,
            )
        )
        return resp

    @staticmethod
    def error(err: ApiError) -> Response:
        return Response(err.code, encode(err.status()), JSON, dict(err.headers))

    def _authenticate(self, req: Request) -> User:
        """Token -> access key -> caller ARN (STS) -> access entry -> user; 401 at any missing step, as on EKS."""
        if req.path.rstrip("/") in PUBLIC_PATHS and not req.header("Authorization"):
            return ANONYMOUS  # anonymous access to public info (a presented token must be valid, as on EKS)
        try:
            claims = self.verifier.verify(req.header("Authorization"))
        except TokenError as exc:
            logger.debug("refused token: %s", exc)
            raise status.unauthorized() from exc
        arn = self.identities.lookup(claims.access_key_id)
        if arn is None:
            logger.debug("refused token: STS knows no caller for its access key")
            raise status.unauthorized()
        user = self.access_entries.authenticate(arn, claims.access_key_id)
        if user is None:
            logger.debug("refused token: %s has no access entry", arn)
            raise status.unauthorized()
        return user

    # ----------------------------------------------------------------------------------------- non-resource paths
    def _non_resource(self, req: Request, info: Info, user: User) -> Response:
        verb = "get" if req.method in ("GET", "HEAD") else req.method.lower()
        if not self.authorizer.allowed(user, Attributes(verb=verb, resource_request=False, path=req.path)):
            raise ApiError(403, "Forbidden", f'forbidden: User "{user.name}" cannot {verb} path "{req.path}"')
        if req.method not in ("GET", "HEAD"):
            raise status.method_not_allowed()
        path = req.path.rstrip("/") or "/"
        if path == "/version":
            return self._json(200, discovery.VERSION_INFO)
        if path in ("/healthz", "/livez", "/readyz"):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if path in ("/api", "/apis") and discovery.wants_aggregated(req.header("Accept")):
            listing = discovery.aggregated(self.registry, core=path == "/api")
            return Response(200, encode(listing), discovery.AGGREGATED_CONTENT_TYPE, {})
        if path == "/api":
            return self._json(200, discovery.api_versions(self.address()))
        if path == "/apis":
            return self._json(200, discovery.api_group_list(self.registry))
        if path.startswith("/apis/") and info.group and not info.version:
            group = discovery.api_group(self.registry, info.group)
            if group is None:
                raise status.not_found_path()
            return self._json(200, group)
        if info.version and (path.startswith(("/api/", "/apis/"))):
            doc = discovery.resource_list(self.registry, info.group, info.version)
            if doc is None:
                raise status.not_found_path()
            return self._json(200, doc)
        if path == "/openapi/v3":
            return self._json(200, discovery.openapi_index(self.registry))
        if path.startswith("/openapi/v3/"):
            key = path[len("/openapi/v3/") :].split("/")
            if key[:1] == ["api"] and len(key) == 2:
                doc = discovery.openapi_document(self.registry, "", key[1])
            elif key[:1] == ["apis"] and len(key) == 3:
                doc = discovery.openapi_document(self.registry, key[1], key[2])
            else:
                doc = None
            if doc is None:
                raise status.not_found_path()
            return self._json(200, doc, {"Cache-Control": "public, immutable"})
        raise status.not_found_path()

    @staticmethod
    def _json(code: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
        return Response(code, encode(obj), JSON, headers or {})

    # ----------------------------------------------------------------------------------------- resource requests
    def _resource_request(self, req: Request, info: Info, user: User) -> Response:
        is_apply = info.verb == "patch" and req.content_type == "application/apply-patch+yaml"
        fault = self.faults.pick(
            "apply" if is_apply else info.verb, info.resource, info.subresource, info.namespace, info.name
        )
        if fault is not None:
            early = self._fire(fault, info, user)
            if early is not None:
                return early
        self._authorize(info, user)  # before routing, as the real filter chain: no 404 tells an outsider anything
        rt = self.registry.get(info.group, info.version, info.resource)
        if rt is None:
            raise status.not_found_path()
        if info.namespace and not rt.namespaced and info.resource != "namespaces":
            raise status.not_found_path()
        if (rt.group, rt.plural) in reviews.REVIEW_RESOURCES:
            return self._review(req, rt, info, user)
        if info.subresource:
            return self._subresource(req, info, rt, user)
        if info.verb == "get":
            return self._get(rt, info)
        if info.verb == "list":
            return self._list(req, rt, info)
        if info.verb == "watch":
            return self._watch(req, rt, info)
        if info.verb == "create":
            if info.name:
                raise status.method_not_allowed()
            return self._create(req, rt, info, user)
        if info.verb == "update":
            return self._update(req, rt, info, user)
        if info.verb == "patch":
            if not info.name:
                raise status.method_not_allowed()
            return self._patch(req, rt, info, user)
        if info.verb == "delete":
            return self._delete(req, rt, info)
        if info.verb == "deletecollection":
            return self._delete_collection(req, rt, info)
        raise status.method_not_allowed()

    def _fire(self, fault: Fault, info: Info, user: User) -> Response | None:
        if fault.latency > 0:
            time.sleep(fault.latency)
        if fault.reset:
            return Response(0, reset=True)
        code = fault.status
        if code is None:
            return None
        if code == 429:
            raise status.too_many_requests(fault.retry_after if fault.retry_after is not None else 1)
        if code == 403:
            raise _forbidden(info, user)
        if code == 500:
            err = status.internal_error("injected fault")
        elif code == 503:
            err = status.service_unavailable()
        elif code == 504:
            err = status.gateway_timeout()
        elif code == 404:
            err = status.not_found(info.resource, info.group, info.name)
        elif code == 409:
            err = status.conflict(info.resource, info.group, info.name, status.STALE)
        else:
            reasons = {400: "BadRequest", 401: "Unauthorized", 410: "Expired", 422: "Invalid", 502: "InternalError"}
            err = ApiError(code, reasons.get(code, "InternalError"), f"injected fault ({code})")
        if fault.retry_after is not None:
            err.retry_after = fault.retry_after
            err.headers["Retry-After"] = str(fault.retry_after)
        raise err

    def _authorize(self, info: Info, user: User) -> None:
        """The deny rules (tests' switch), then RBAC and the user's EKS access policies."""
        for rule in list(self.deny_rules):
            if rule.matches(info.verb, info.resource, info.subresource, info.namespace, info.name):
                raise _forbidden(info, user)
        attrs = Attributes(
            verb=info.verb,
            resource_request=True,
            group=info.group,
            resource=info.resource,
            subresource=info.subresource,
            namespace=info.namespace,
            name=info.name,
        )
        if not self.authorizer.allowed(user, attrs):
            raise _forbidden(info, user)

    # ------------------------------------------------------------------------------------------------ reviews
    def _review(self, req: Request, rt: ResourceType, info: Info, user: User) -> Response:
        """Self reviews are created, never stored (``dryRun`` changes nothing)."""
        if info.verb != "create" or info.name:
            raise status.method_not_allowed()
        if req.content_type == protowire.PROTOBUF:  # kubectl auth can-i / whoami send their reviews as protobuf
            try:
                body = protowire.review_body(req.body)
            except protowire.ProtobufError as exc:
                raise status.bad_request(f"error decoding protobuf: {exc}") from exc
        else:
            body = self._decode(req)
        self._check_type(rt, body)
        return self._respond(201, rt, reviews.review(rt.plural, body, user, self.authorizer))
