"""Interim demo (``make demo`` / ``python -m local.demo``): render and validate the platform for every environment.

Uses fake image digests and a fake account; touches no network and no AWS. Prints, per environment, the objects
by kind, each service's replicas and HPA range, and the manifests bundle hash. A later change turns this into a
deploy against the local emulator.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from controlplane import platform
from controlplane.render import load_bundle, render
from controlplane.validate import validate_objects

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests" / "kubernetes"
DEMO_ACCOUNT = "123456789012"
DEMO_REGION = "us-east-1"


def fake_digests() -> dict[str, str]:
    """A stable, obviously fake digest per service."""
    return {name: f"sha256:{hashlib.sha256(f'demo:{name}'.encode()).hexdigest()}" for name in platform.SERVICE_NAMES}


def summary(environment: str, objects: list[dict[str, Any]]) -> list[str]:
    kinds = Counter(obj["kind"] for obj in objects)
    lines = [
        f"== {environment}: {len(objects)} objects, valid",
        "   " + ", ".join(f"{k} {n}" for k, n in kinds.items()),
    ]
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    hpas = {o["spec"]["scaleTargetRef"]["name"]: o for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
    lines.append(f"   {'service':<26}{'port':>6}{'replicas':>10}{'hpa':>8}")
    for service in platform.SERVICES:
        replicas = deployments[service.name]["spec"]["replicas"]
        hpa = hpas[service.name]["spec"]
        lines.append(
            f"   {service.name:<26}{service.port:>6}{replicas:>10}{hpa['minReplicas']:>4}-{hpa['maxReplicas']:<3}"
        )
    return lines


def main(out: TextIO = sys.stdout) -> int:
    bundle = load_bundle(MANIFESTS)
    out.write(f"manifests bundle {bundle.hash} ({len(bundle.files)} files)\n")
    for environment in platform.ENVIRONMENTS:
        objects = render(bundle, environment, fake_digests(), account_id=DEMO_ACCOUNT, region=DEMO_REGION)
        validate_objects(objects, account_id=DEMO_ACCOUNT, region=DEMO_REGION)
        out.write("\n".join(summary(environment, objects)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
