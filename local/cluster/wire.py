"""The API server's wire types, independent of HTTP: requests, responses, what a request addresses, encoding."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from local.cluster.clock import SimClock

Obj = dict[str, Any]
JSON = "application/json"
MAX_RETRIES = 20


# ------------------------------------------------------------------------------------------------ wire types


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def flag(self, name: str) -> bool:
        value = self.q(name)
        return value is not None and value.lower() in ("true", "1", "yes")

    def header(self, name: str) -> str:
        return str(self.headers.get(name) or "")

    @property
    def content_type(self) -> str:
        return self.header("Content-Type").split(";", 1)[0].strip().lower()


Alive = Callable[[], bool]


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    stream: Callable[[Alive], Iterator[bytes]] | None = None
    reset: bool = False


@dataclass
class Info:
    """What a request addresses (``k8s.io/apiserver``'s RequestInfo)."""

    verb: str
    resource_request: bool = False
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    rest: list[str] = field(default_factory=list)


_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def _kube_verb(method: str, name: str, query: Mapping[str, list[str]]) -> str:
    """The Kubernetes verb of a resource request (``k8s.io/apiserver``'s RequestInfoFactory)."""
    m = method.upper()
    if m in ("GET", "HEAD"):
        watch = (query.get("watch") or [""])[0].lower() in ("true", "1")
        return "watch" if watch else ("get" if name else "list")
    if m == "DELETE":
        return "delete" if name else "deletecollection"
    return _WRITE_VERBS.get(m, method.lower())


def _group_version(parts: list[str]) -> tuple[str, str, list[str]] | Info | None:
    """(group, version, rest) of an ``/api`` or ``/apis`` path, an Info for a discovery path, None otherwise."""
    if not parts or parts[0] not in ("api", "apis"):
        return None
    if parts[0] == "api":
        return ("", parts[1], parts[2:]) if len(parts) >= 2 else None
    if len(parts) < 3:
        return Info("", group=parts[1] if len(parts) == 2 else "")
    return parts[1], parts[2], parts[3:]


def parse_info(method: str, path: str, query: Mapping[str, list[str]]) -> Info:
    parts = [p for p in path.strip("/").split("/") if p != ""]
    verb = method.lower()
    gv = _group_version(parts)
    if gv is None:
        return Info(verb)
    if isinstance(gv, Info):
        gv.verb = verb
        return gv
    group, version, rest = gv
    if not rest:
        return Info(verb, group=group, version=version)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    if resource == "namespaces" and name:
        namespace = name
    return Info(
        _kube_verb(method, name, query),
        resource_request=True,
        group=group,
        version=version,
        resource=resource,
        subresource=rest[2] if len(rest) > 2 else "",
        namespace=namespace,
        name=name,
        rest=rest[3:],
    )


# ------------------------------------------------------------------------------------------------- helpers


class YamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML 1.1 as sigs.k8s.io/yaml reads it, but timestamps stay strings (they are JSON strings on the wire)."""


YamlLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def encode(obj: Any) -> bytes:
    """Compact JSON ending with a newline, as apimachinery's JSON serializer writes every body and watch frame."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def clone(obj: Obj) -> Obj:
    """A deep copy of a JSON-shaped object (a JSON round trip is faster than ``copy.deepcopy``)."""
    out: Obj = json.loads(json.dumps(obj))
    return out


def now_string(clock: SimClock) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(clock.now())))


def get_path(obj: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def set_path(obj: Obj, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur = obj
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    cur[parts[-1]] = value
