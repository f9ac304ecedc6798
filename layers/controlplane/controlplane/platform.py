"""The platform the control plane deploys: the seed's facts, in one place.

Every other module (rendering, CloudFormation checks, planning) reads the services from here, and the tests pin
these values against the seed so that drift is caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

NAMESPACE: Final = "clinical-trials"
REPOSITORY_PREFIX: Final = "clinical-trials/"
VPC_CIDR: Final = "10.0.0.0/16"
ENVIRONMENTS: Final = ("staging", "production")


@dataclass(frozen=True)
class Service:
    """One microservice of the platform."""

    name: str
    port: int
    min_replicas: int
    max_replicas: int
    needs_database: bool
    needs_redis: bool

    @property
    def repository(self) -> str:
        return f"{REPOSITORY_PREFIX}{self.name}"


SERVICES: Final[tuple[Service, ...]] = (
    Service("api-gateway", 8000, 3, 10, needs_database=False, needs_redis=True),
    Service("edc-service", 8001, 2, 10, needs_database=True, needs_redis=True),
    Service("data-generation-service", 8002, 1, 5, needs_database=True, needs_redis=False),
    Service("analytics-service", 8003, 2, 8, needs_database=True, needs_redis=True),
    Service("quality-service", 8004, 2, 6, needs_database=True, needs_redis=False),
    Service("security-service", 8005, 2, 5, needs_database=True, needs_redis=True),
    Service("daft-analytics-service", 8007, 1, 3, needs_database=True, needs_redis=False),
)

SERVICE_NAMES: Final = tuple(s.name for s in SERVICES)


def service(name: str) -> Service:
    """The service called ``name``; ``KeyError`` naming it when there is none."""
    for s in SERVICES:
        if s.name == name:
            return s
    raise KeyError(f"unknown service {name!r}; known: {', '.join(SERVICE_NAMES)}")


def service_for_repository(repository: str) -> Service:
    """The service whose ECR repository is ``repository`` (e.g. ``clinical-trials/edc-service``)."""
    if not repository.startswith(REPOSITORY_PREFIX):
        raise KeyError(f"repository {repository!r} is not under {REPOSITORY_PREFIX!r}")
    return service(repository.removeprefix(REPOSITORY_PREFIX))
