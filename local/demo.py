"""Demo (``make demo`` / ``python -m local.demo``): the deploy pipeline, end to end, on the local cloud.

Our real template.yaml, ASL and Lambda handlers run in moto; the Kubernetes API emulator plays the EKS cluster.
No AWS account, no Docker, no network. The story, each step through the real state machines:

1. the environment's first release, started from the console with every service's tag;
2. an ECR push of a new edc-service image: EventBridge starts the deploy, the cluster becomes healthy, the ledger
   records the release as last known-good;
3. an ECR push of an analytics-service image that crash-loops: the deploy fails fast, rolls back to release 2 and
   quarantines the digest;
4. an operator rolls the environment back to release 1 with the rollback state machine.

Time inside the executions is simulated (Wait states and retries advance the clock), so the whole story takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from controlplane import platform
from controlplane.aws import eks
from controlplane.render import load_bundle, render
from controlplane.validate import validate_objects

from local.pipeline import ACCOUNT_ID, MANIFESTS, REGION, Pipeline, pipeline

DEMO_ACCOUNT = ACCOUNT_ID
DEMO_REGION = REGION


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


def render_summary(out: TextIO) -> str:
    """Render and validate every environment with fake digests (no AWS, no cluster); returns the bundle hash."""
    bundle = load_bundle(MANIFESTS)
    out.write(f"manifests bundle {bundle.hash} ({len(bundle.files)} files) -> ManifestsLayer\n")
    for environment in platform.ENVIRONMENTS:
        objects = render(bundle, environment, fake_digests(), account_id=DEMO_ACCOUNT, region=DEMO_REGION)
        validate_objects(objects, account_id=DEMO_ACCOUNT, region=DEMO_REGION)
        out.write("\n".join(summary(environment, objects)) + "\n")
    return bundle.hash


def _states(result: Any) -> str:
    names = [e.state_name for e in result.history if e.type.endswith("StateEntered")]
    return " > ".join(names)


def _duration(result: Any) -> float:
    stamps = [e.timestamp for e in result.history]
    return float((max(stamps) - min(stamps)).total_seconds()) if stamps else 0.0


def _report(out: TextIO, title: str, result: Any, wall: float) -> None:
    out.write(f"\n== {title}\n")
    out.write(f"   execution {result.status}" + (f" ({result.error})" if result.error else "") + "\n")
    out.write(f"   {wall:.2f} s wall, {_duration(result):.0f} s simulated\n")
    out.write(f"   states: {_states(result)}\n")
    if result.cause:
        out.write(f"   cause: {result.cause}\n")


def _images(pipe: Pipeline) -> str:
    return ", ".join(
        f"{name}@{pipe.deployment_image(name).rsplit('@sha256:', 1)[1][:12]}" for name in platform.SERVICE_NAMES
    )


@contextmanager
def _local_cloud() -> Iterator[Pipeline]:
    from local.cluster import Behaviour, Cluster  # noqa: PLC0415 - the emulator starts a server: only when run

    eks.clear_cache()
    with Cluster("sts-staging") as cluster:
        cluster.images.set_default(Behaviour.ready(after=5))
        with pipeline(cluster, LogLevel="ERROR") as pipe:  # the story on stdout, not every handler's log
            yield pipe


def _timed(action: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def main(out: TextIO = sys.stdout, *, deploy: bool = False) -> int:
    """The render summary; with ``deploy`` (``make demo``) the whole story on the local cloud."""
    render_summary(out)
    if not deploy:
        return 0
    from local.cluster import Behaviour  # noqa: PLC0415

    with _local_cloud() as pipe:
        first, wall = _timed(pipe.first_release)
        _report(out, "1. first release of staging, from the console (7 services)", first, wall)
        release_1 = pipe.ledger.last_known_good("staging")
        out.write(f"   last known-good: {release_1.release_id if release_1 else None}\n")
        out.write(f"   cluster: {_images(pipe)}\n")

        second, wall = _timed(lambda: pipe.push_and_deploy("edc-service", "main-2"))
        _report(out, "2. ECR push clinical-trials/edc-service:main-2 -> EventBridge -> deploy", second, wall)
        release_2 = pipe.ledger.last_known_good("staging")
        out.write(f"   last known-good: {release_2.release_id if release_2 else None}\n")
        out.write(f"   cluster: {_images(pipe)}\n")

        third, wall = _timed(lambda: pipe.push_and_deploy("analytics-service", "main-3", Behaviour.crash_loop()))
        _report(out, "3. ECR push clinical-trials/analytics-service:main-3 (crash-loops) -> rollback", third, wall)
        out.write(f"   cluster: {_images(pipe)}\n")
        bad = pipe.digests["analytics-service"]
        out.write(f"   quarantined: {json.dumps(pipe.ledger.quarantined([bad]))}\n")

        target = release_1.release_id if release_1 else None
        fourth, wall = _timed(lambda: pipe.rollback({"environment": "staging", "release_id": target, "reason": "demo"}))
        _report(out, f"4. operator rollback of staging to {target}", fourth, wall)
        out.write(f"   cluster: {_images(pipe)}\n")
        lkg = pipe.ledger.last_known_good("staging")
        out.write(f"   last known-good: {lkg.release_id if lkg else None}\n")
        ok = (first.status, second.status, third.status, fourth.status) == (
            "SUCCEEDED",
            "SUCCEEDED",
            "FAILED",
            "SUCCEEDED",
        )
    out.write(f"\ndemo {'OK' if ok else 'FAILED'}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(deploy=True))
