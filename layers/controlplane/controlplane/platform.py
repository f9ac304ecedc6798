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

# Where the platform's data stores live: the database subnets of the VPC (RDS PostgreSQL and ElastiCache Redis,
# per the seed's "Database Subnet"). NetworkPolicies allow egress to these CIDRs only; the Terraform/CloudFormation
# side must place the subnets here.
DATABASE_SUBNET_CIDRS: Final = ("10.0.20.0/24", "10.0.21.0/24", "10.0.22.0/24")
POSTGRES_PORT: Final = 5432
REDIS_PORT: Final = 6379

# Labels every rendered object carries. The control plane owns (and may prune) exactly the objects with MANAGED_BY.
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
# On a Deployment: how long its new pods may run without becoming ready before the release fails (seconds; rendered
# from the environment values' readiness_deadline_seconds, else the READINESS_DEADLINE_SECONDS setting applies).
READINESS_DEADLINE_ANNOTATION: Final = "synthetictrialstudio.io/readiness-deadline-seconds"
MANAGED_BY: Final = "synthetictrialstudio-controlplane"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
PART_OF: Final = "synthetictrialstudio"
LABEL_ENVIRONMENT: Final = "synthetictrialstudio.io/environment"
LABEL_NAME: Final = "app.kubernetes.io/name"
# On the bundle's bootstrap copies of an operator's CRDs (manifests/kubernetes/crds): never applied over a CRD
# whose live object lacks it (the operator's own).
BOOTSTRAP_COPY_ANNOTATION: Final = "synthetictrialstudio.io/bootstrap-copy-of"

# Kubernetes facts both rendering and validation rely on.
CLUSTER_SCOPED_KINDS: Final = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "StorageClass",
        "ClusterSecretStore",
        "ClusterRole",
        "ClusterRoleBinding",
        "PriorityClass",
        "PersistentVolume",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    }
)
# Where each workload kind keeps its pod spec.
POD_SPEC_PATHS: Final[dict[str, tuple[str, ...]]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}

# The eks stack's managed node groups (manifests/cloudformation/eks.yaml; a unit test keeps the two equal): each
# group's nodes carry ``workload-class: <name>`` and, except the general group, a NoSchedule taint that only the
# workloads meant for the group tolerate. A service's environment values choose its group (``node_group``); its pods
# are rendered with that nodeSelector and the toleration of that taint.
NODE_GROUP_LABEL: Final = "workload-class"


@dataclass(frozen=True)
class NodeGroup:
    """One of the eks stack's node groups: the label value its nodes carry and the taint keeping others off."""

    name: str
    taint_key: str | None = None
    taint_value: str | None = None

    def toleration(self) -> dict[str, str] | None:
        if self.taint_key is None:
            return None
        return {"key": self.taint_key, "operator": "Equal", "value": self.taint_value or "", "effect": "NoSchedule"}


NODE_GROUPS: Final[dict[str, NodeGroup]] = {
    g.name: g
    for g in (
        NodeGroup("general"),
        NodeGroup("compute-intensive", NODE_GROUP_LABEL, "compute-intensive"),
        NodeGroup("memory-optimized", NODE_GROUP_LABEL, "memory-optimized"),
        NodeGroup("spot", "capacity-type", "spot"),
    )
}

# The API gateway is the only service behind the load balancer; the others are reached through it.
EDGE_SERVICE: Final = "api-gateway"


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


def ecr_registry(account_id: str, region: str) -> str:
    """The ECR registry host of ``account_id`` in ``region``."""
    return f"{account_id}.dkr.ecr.{region}.amazonaws.com"


def pinned_image(account_id: str, region: str, service_name: str, digest: str) -> str:
    """``<account>.dkr.ecr.<region>.amazonaws.com/clinical-trials/<service>@sha256:<hex>``: the only image form."""
    return f"{ecr_registry(account_id, region)}/{REPOSITORY_PREFIX}{service_name}@{digest}"


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
