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
import io
import json
import logging
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from typing import Any, TextIO

from controlplane import platform
from controlplane.aws import eks
from controlplane.render import load_bundle, render
from controlplane.validate import validate_objects

from local.pipeline import ACCOUNT_ID, MANIFESTS, REGION, Pipeline, pipeline
from trialstudio import render as views
from trialstudio.render import END_EVENTS, Follower, timeline, wrap

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
    lines.append(f"   {'service':<26}{'port':>6}{'replicas':>12}")
    for service in platform.SERVICES:
        hpa = hpas.get(service.name)
        if hpa is not None:  # the HPA owns spec.replicas: rendering leaves it out
            replicas = f"hpa {hpa['spec']['minReplicas']}-{hpa['spec']['maxReplicas']}"
        else:
            replicas = str(deployments[service.name]["spec"]["replicas"])
        lines.append(f"   {service.name:<26}{service.port:>6}{replicas:>12}")
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


# -- following an execution while it runs ---------------------------------------------------------------------------
FOLLOW_TIMEOUT_S = 180.0  # wall seconds one execution may take before the demo gives up on it
_POLL_S = 0.2  # each look reads the whole history (GetExecutionHistory): often enough for a reader, cheap for the run


@dataclass
class Followed:
    """One execution as the demo saw it: the final result (None if it outlived the deadline) and its wall time."""

    result: Any
    wall: float


def follow(out: TextIO, pipe: Pipeline, arn: str, *, timeout: float = FOLLOW_TIMEOUT_S) -> Followed:
    """Poll the execution's history until it ends (at most ``timeout`` wall seconds), printing states as they come."""
    follower = Follower(out)
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while True:
        events = pipe.cloud.history(arn)
        follower.feed(events)
        if any(e.type in END_EVENTS for e in events):
            return Followed(pipe.cloud.wait_execution(arn, timeout=timeout), time.perf_counter() - started)
        if time.monotonic() >= deadline:
            follower.feed(events)
            out.write(f"\n   still running after {timeout:.0f} s wall: the demo stops following {arn}\n")
            return Followed(None, time.perf_counter() - started)
        time.sleep(_POLL_S)


def _report(out: TextIO, followed: Followed) -> None:
    result = followed.result
    if result is None:
        out.write("   outcome: did not end in time\n")
        return
    total = (result.history[-1].timestamp - result.history[0].timestamp).total_seconds() if result.history else 0.0
    out.write(f"   timeline ({total:.0f} s simulated, {followed.wall:.2f} s wall):\n")
    out.write("\n".join(timeline(result.history)) + "\n")
    out.write(f"   outcome: {result.status}" + (f" ({result.error})" if result.error else "") + "\n")
    if result.cause:
        out.write(wrap(result.cause, "   cause: ", "          ") + "\n")


def _images(pipe: Pipeline) -> str:
    return ", ".join(
        f"{name}@{pipe.deployment_image(name).rsplit('@sha256:', 1)[1][:12]}" for name in platform.SERVICE_NAMES
    )


def _detection_seconds(pipe: Pipeline) -> float | None:
    """The TimeToDetectFailure metric the health step published (an EMF line in its log stream), if any."""
    for line in reversed(pipe.cloud.runtime.logs):
        if '"TimeToDetectFailure"' in line.message:
            value = json.loads(line.message).get("TimeToDetectFailure")
            return float(value[0] if isinstance(value, list) else value)
    return None


# -- the ledger's view ----------------------------------------------------------------------------------------------
def ledger_view(pipe: Pipeline, environment: str) -> list[str]:
    """The releases of ``environment`` as the ledger holds them, its last known-good pointer and quarantined digests."""
    records = pipe.releases(environment)
    digests = {d for r in records for d in r.images.values()}
    return views.ledger_view(records, pipe.ledger.last_known_good(environment), pipe.ledger.quarantined(digests))


# -- the story ------------------------------------------------------------------------------------------------------
@contextmanager
def _local_cloud() -> Iterator[Pipeline]:
    from local.cluster import Behaviour, Cluster  # noqa: PLC0415 - the emulator starts a server: only when run

    eks.clear_cache()
    with Cluster("sts-staging") as cluster:
        cluster.images.set_default(Behaviour.ready(after=5))
        with pipeline(cluster, LogLevel="ERROR") as pipe:  # the story on stdout, not every handler's log
            yield pipe


@contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Keep the library noise of an expected failure off the terminal, in this process only.

    moto logs every Fail state at ERROR with a repr of the whole state; Powertools warns when a handler published no
    metric; the harness echoes the log lines of a handler that raised (the health step does, on purpose, in step 3)
    to stderr. stderr is held back and shown only if the story breaks: the caller replays it when a step ends
    unexpectedly.
    """
    loggers = {name: logging.getLogger(name) for name in ("moto", "moto.stepfunctions")}
    levels = {name: logger.level for name, logger in loggers.items()}
    loggers["moto"].setLevel(logging.WARNING)
    loggers["moto.stepfunctions"].setLevel(logging.CRITICAL)
    held = io.StringIO()
    try:
        with warnings.catch_warnings(), redirect_stderr(held):
            warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
            yield held
    except BaseException:
        sys.stderr.write(held.getvalue())
        raise
    finally:
        for name, logger in loggers.items():
            logger.setLevel(levels[name])


def _step(out: TextIO, title: str) -> None:
    out.write(f"\n== {title}\n")
    out.flush()


def story(out: TextIO, pipe: Pipeline) -> bool:
    """The four steps; True when each ended as it should."""
    from local.cluster import Behaviour  # noqa: PLC0415

    _step(out, "1. first release of staging, from the console (7 services)")
    first = follow(out, pipe, pipe.start_first_release())
    _report(out, first)
    release_1 = pipe.ledger.last_known_good("staging")
    out.write(f"   cluster: {_images(pipe)}\n")

    _step(out, "2. ECR push clinical-trials/edc-service:main-2 -> EventBridge -> deploy")
    second = follow(out, pipe, pipe.start_push("edc-service", "main-2"))
    _report(out, second)
    out.write(f"   cluster: {_images(pipe)}\n")

    _step(out, "3. ECR push clinical-trials/analytics-service:main-3 (crash-loops) -> fail fast -> rollback")
    third = follow(out, pipe, pipe.start_push("analytics-service", "main-3", Behaviour.crash_loop()))
    _report(out, third)
    detected = _detection_seconds(pipe)
    if detected is not None:
        out.write(f"   fail fast: crash loop detected {detected:.0f} s into the release (TimeToDetectFailure)\n")
    out.write(f"   cluster: {_images(pipe)}\n")

    target = release_1.release_id if release_1 else None
    _step(out, f"4. operator rollback of staging to {target}, from the console")
    fourth = follow(out, pipe, pipe.start_rollback({"environment": "staging", "release_id": target, "reason": "demo"}))
    _report(out, fourth)
    out.write(f"   cluster: {_images(pipe)}\n")

    _step(out, "the ledger's view of staging")
    out.write("\n".join(ledger_view(pipe, "staging")) + "\n")
    statuses = tuple(f.result.status if f.result else "RUNNING" for f in (first, second, third, fourth))
    return statuses == ("SUCCEEDED", "SUCCEEDED", "FAILED", "SUCCEEDED")


def main(out: TextIO = sys.stdout, *, deploy: bool = False) -> int:
    """The render summary; with ``deploy`` (``make demo``) the whole story on the local cloud."""
    render_summary(out)
    if not deploy:
        return 0
    started = time.perf_counter()
    with _quiet() as held, _local_cloud() as pipe:
        ok = story(out, pipe)
    if not ok:
        sys.stderr.write(held.getvalue())
    out.write(f"\ndemo {'OK' if ok else 'FAILED'} in {time.perf_counter() - started:.1f} s\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(deploy=True))
