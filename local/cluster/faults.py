"""Fault injection and the request log.

``cluster.faults.add(verb="patch", resource="deployments", status=429, retry_after=2, times=1)`` makes the next
matching request fail like the real server under load (API Priority and Fairness answers 429 with
``Retry-After``); ``status=500|503|504`` answer InternalError/ServiceUnavailable/Timeout Status bodies;
``reset=True`` closes the connection without answering; ``latency`` delays (real seconds) before handling.
Faults apply to resource requests (those naming a resource), not to discovery. Verbs are the RBAC verbs
(``get list watch create update patch delete deletecollection``) plus ``apply`` for server-side apply patches.

``cluster.requests`` records every request (``RequestRecord``) with its final status.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field


@dataclass
class Fault:
    verb: str | None = None
    resource: str | None = None
    name: str | None = None
    namespace: str | None = None
    status: int | None = None
    retry_after: int | None = None
    times: int | None = 1
    probability: float | None = None
    reset: bool = False
    latency: float = 0.0
    fired: int = 0

    def matches(self, verb: str, resource: str, subresource: str, namespace: str, name: str) -> bool:
        if self.verb is not None and self.verb != verb and not (self.verb == "patch" and verb == "apply"):
            return False
        if self.resource is not None and self.resource not in (resource, f"{resource}/{subresource}"):
            return False
        if self.namespace is not None and self.namespace != namespace:
            return False
        return self.name is None or self.name == name

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times


class FaultInjector:
    """Thread-safe list of :class:`Fault`; the first live matching fault fires."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._random = random.Random(seed)  # noqa: S311 - fault sampling, not cryptography

    def add(  # noqa: PLR0917 - keyword-friendly, positional-compatible fault spec
        self,
        verb: str | None = None,
        resource: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        times: int | None = 1,
        probability: float | None = None,
        *,
        reset: bool = False,
        latency: float = 0.0,
    ) -> Fault:
        if status is not None and not 400 <= status <= 599:
            raise ValueError(f"unsupported fault status {status}: use a 4xx or 5xx code (429, 500, 503, 504 ...)")
        if status is None and not reset and latency <= 0:
            status = 503
        fault = Fault(verb, resource, name, namespace, status, retry_after, times, probability, reset, latency)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for f in self._faults if not f.exhausted)

    def pick(self, verb: str, resource: str, subresource: str, namespace: str, name: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.exhausted or not fault.matches(verb, resource, subresource, namespace, name):
                    continue
                if fault.probability is not None and self._random.random() >= fault.probability:
                    continue
                fault.fired += 1
                return fault
        return None


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    status: int
    verb: str
    resource: str
    namespace: str
    name: str
    subresource: str = ""
    group: str = ""
    user_agent: str = ""
    field_manager: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    user: str = ""


class RequestLog(list[RequestRecord]):
    """``cluster.requests``: a plain list (``clear()`` empties it) with a few filters."""

    def matching(
        self,
        *,
        verb: str | None = None,
        resource: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        status: int | None = None,
    ) -> list[RequestRecord]:
        return [
            r
            for r in list(self)
            if (verb is None or r.verb == verb)
            and (resource is None or r.resource == resource)
            and (name is None or r.name == name)
            and (namespace is None or r.namespace == namespace)
            and (status is None or r.status == status)
        ]
