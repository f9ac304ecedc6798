"""The seed plan's facts, pinned: written out here from the seed (not read from platform.py), so that a change to
the catalog or the manifests that contradicts the plan fails a test."""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path
from typing import Any

import pytest
from controlplane import platform
from controlplane.render import ManifestBundle, load_bundle, render

pytestmark = pytest.mark.unit

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests" / "kubernetes"
ACCOUNT = "123456789012"
REGION = "us-east-1"

# Seed: "Microservices Architecture" (name, port) and the EKS diagram's replica ranges (production).
SEED_SERVICES = {
    "api-gateway": 8000,
    "edc-service": 8001,
    "data-generation-service": 8002,
    "analytics-service": 8003,
    "quality-service": 8004,
    "security-service": 8005,
    "daft-analytics-service": 8007,
}
SEED_HPA_PRODUCTION = {  # api-gateway: "x3" is its floor; its ceiling is the catalog's
    "edc-service": (2, 10),
    "data-generation-service": (1, 5),
    "analytics-service": (2, 8),
    "quality-service": (2, 6),
    "security-service": (2, 5),
    "daft-analytics-service": (1, 3),
}
SEED_API_GATEWAY_MIN = 3
SEED_VPC = ipaddress.ip_network("10.0.0.0/16")
# Services with persistence (PostgreSQL) per the catalog; the seed says "Database access restricted to specific
# services" - the API gateway routes and rate-limits (Redis) but owns no tables.
DATABASE_SERVICES = {name for name in SEED_SERVICES if name != "api-gateway"}


@pytest.fixture(scope="module")
def bundle() -> ManifestBundle:
    return load_bundle(MANIFESTS)


@pytest.fixture(scope="module")
def production(bundle: ManifestBundle) -> list[dict[str, Any]]:
    digests = {name: f"sha256:{hashlib.sha256(name.encode()).hexdigest()}" for name in SEED_SERVICES}
    return render(bundle, "production", digests, account_id=ACCOUNT, region=REGION)


def _of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_catalog_has_the_seed_services_and_ports() -> None:
    assert {s.name: s.port for s in platform.SERVICES} == SEED_SERVICES
    assert platform.NAMESPACE == "clinical-trials"
    assert {s.repository for s in platform.SERVICES} == {f"clinical-trials/{name}" for name in SEED_SERVICES}


def test_catalog_and_production_values_have_the_seed_hpa_ranges(bundle: ManifestBundle) -> None:
    values = bundle.environments["production"].services
    for name, (low, high) in SEED_HPA_PRODUCTION.items():
        assert (platform.service(name).min_replicas, platform.service(name).max_replicas) == (low, high)
        assert (values[name].min_replicas, values[name].max_replicas) == (low, high)
    assert platform.service("api-gateway").min_replicas == SEED_API_GATEWAY_MIN
    assert values["api-gateway"].min_replicas == SEED_API_GATEWAY_MIN


def test_rendered_production_hpas_have_the_seed_ranges(production: list[dict[str, Any]]) -> None:
    hpas = _of_kind(production, "HorizontalPodAutoscaler")
    assert set(hpas) == set(SEED_SERVICES)
    for name, (low, high) in SEED_HPA_PRODUCTION.items():
        assert (hpas[name]["spec"]["minReplicas"], hpas[name]["spec"]["maxReplicas"]) == (low, high)
        assert hpas[name]["apiVersion"] == "autoscaling/v2"
        (metric,) = hpas[name]["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["type"] == "Utilization"
    assert hpas["api-gateway"]["spec"]["minReplicas"] == SEED_API_GATEWAY_MIN


def test_each_service_listens_and_is_probed_on_its_seed_port(production: list[dict[str, Any]]) -> None:
    services, deployments = _of_kind(production, "Service"), _of_kind(production, "Deployment")
    for name, port in SEED_SERVICES.items():
        spec = services[name]["spec"]
        assert spec["type"] == "ClusterIP"
        assert [(p["name"], p["port"]) for p in spec["ports"]] == [("http", port)]
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", port)]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/health", "port": port}


def test_ingress_routes_api_docs_and_health_to_the_api_gateway(production: list[dict[str, Any]]) -> None:
    (ingress,) = _of_kind(production, "Ingress").values()
    assert ingress["spec"]["ingressClassName"] == "alb"
    routes = {
        path["path"]: (path["backend"]["service"]["name"], path["backend"]["service"]["port"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert routes == {route: ("api-gateway", {"name": "http"}) for route in ("/api", "/docs", "/health")}
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert annotations["alb.ingress.kubernetes.io/ssl-redirect"] == "443"
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/health"
    assert '{"HTTPS": 443}' in annotations["alb.ingress.kubernetes.io/listen-ports"]
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"].startswith("arn:aws:acm:")


def test_namespace_enforces_the_restricted_pod_security_standard(production: list[dict[str, Any]]) -> None:
    labels = _of_kind(production, "Namespace")["clinical-trials"]["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"].startswith("v1.")


# --- network policies ----------------------------------------------------------------------------------------------


def _selected(policy: dict[str, Any]) -> str | None:
    """The service a policy selects, None for the whole namespace."""
    selector = policy["spec"]["podSelector"]
    return selector["matchLabels"][platform.LABEL_NAME] if selector else None


def _egress_ports(policies: dict[str, dict[str, Any]], service: str, port: int) -> list[dict[str, Any]]:
    """The egress rules that let ``service`` reach ``port``."""
    return [
        rule
        for policy in policies.values()
        if _selected(policy) in (service, None)
        for rule in policy["spec"].get("egress", [])
        if any(p["port"] == port for p in rule.get("ports", []))
    ]


def test_default_deny_covers_ingress_and_egress_of_every_pod(production: list[dict[str, Any]]) -> None:
    policies = _of_kind(production, "NetworkPolicy")
    deny = [
        p
        for p in policies.values()
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and "ingress" not in p["spec"]
        and "egress" not in p["spec"]
    ]
    assert len(deny) == 1


def test_only_database_services_may_reach_postgres(production: list[dict[str, Any]]) -> None:
    policies = _of_kind(production, "NetworkPolicy")
    allowed = {name for name in SEED_SERVICES if _egress_ports(policies, name, 5432)}
    assert allowed == DATABASE_SERVICES == {s.name for s in platform.SERVICES if s.needs_database}
    for name in allowed:
        for rule in _egress_ports(policies, name, 5432):
            for peer in rule["to"]:
                assert ipaddress.ip_network(peer["ipBlock"]["cidr"]).subnet_of(SEED_VPC)


def test_only_redis_services_may_reach_redis(production: list[dict[str, Any]]) -> None:
    policies = _of_kind(production, "NetworkPolicy")
    allowed = {name for name in SEED_SERVICES if _egress_ports(policies, name, 6379)}
    assert allowed == {s.name for s in platform.SERVICES if s.needs_redis}


def test_dns_is_the_only_egress_every_pod_has(production: list[dict[str, Any]]) -> None:
    policies = _of_kind(production, "NetworkPolicy")
    everyone = [p for p in policies.values() if p["spec"]["podSelector"] == {} and p["spec"].get("egress")]
    (dns,) = everyone
    (rule,) = dns["spec"]["egress"]
    assert {(p["protocol"], p["port"]) for p in rule["ports"]} == {("UDP", 53), ("TCP", 53)}
    (peer,) = rule["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}


def test_load_balancer_reaches_only_the_api_gateway_and_it_reaches_each_service(
    production: list[dict[str, Any]],
) -> None:
    policies = _of_kind(production, "NetworkPolicy")
    ingress_rules = {_selected(p): p["spec"]["ingress"] for p in policies.values() if "ingress" in p["spec"]}
    (from_vpc,) = ingress_rules["api-gateway"]
    assert from_vpc["from"] == [{"ipBlock": {"cidr": str(SEED_VPC)}}]
    assert from_vpc["ports"] == [{"protocol": "TCP", "port": SEED_SERVICES["api-gateway"]}]
    for name, port in SEED_SERVICES.items():
        if name == "api-gateway":
            continue
        (rule,) = ingress_rules[name]
        assert rule["from"] == [{"podSelector": {"matchLabels": {platform.LABEL_NAME: "api-gateway"}}}]
        assert rule["ports"] == [{"protocol": "TCP", "port": port}]
        gateway_egress = _egress_ports(policies, "api-gateway", port)
        assert any(
            peer.get("podSelector", {}).get("matchLabels") == {platform.LABEL_NAME: name}
            for rule in gateway_egress
            for peer in rule["to"]
        )


def test_storage_classes_are_encrypted_ebs_bound_on_first_consumer(production: list[dict[str, Any]]) -> None:
    classes = _of_kind(production, "StorageClass")
    assert set(classes) == {"gp3-encrypted", "io2-high-perf"}
    assert classes["gp3-encrypted"]["parameters"]["type"] == "gp3"
    assert classes["io2-high-perf"]["parameters"]["type"] == "io2"
    assert "iopsPerGB" in classes["io2-high-perf"]["parameters"]
    for storage_class in classes.values():
        assert storage_class["provisioner"] == "ebs.csi.aws.com"
        assert storage_class["parameters"]["encrypted"] == "true"
        assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
        assert storage_class["allowVolumeExpansion"] is True
