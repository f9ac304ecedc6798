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
import re
import sys
import textwrap
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from datetime import datetime
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
_END_EVENTS = ("ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted")
_CRASH = re.compile(r"/(?P<container>[\w.-]+): (?P<reason>\w+): restarted (?P<times>\d+) times")


@dataclass
class Followed:
    """One execution as the demo saw it: the final result (None if it outlived the deadline) and its wall time."""

    result: Any
    wall: float


def _digest12(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def _workload_names(pending: list[str]) -> str:
    """``Deployment.apps/ns/name: message`` entries -> ``name, name``."""
    return ", ".join(entry.split(":", 1)[0].rsplit("/", 1)[-1] for entry in pending)


def _failure(error: str, cause: str) -> str:
    """A failed task in a few words: the crash loop when there is one, else the error and its message, shortened."""
    try:
        message = str(json.loads(cause).get("errorMessage", cause))
    except (ValueError, AttributeError):
        message = cause
    crash = _CRASH.search(message)
    if crash:
        return f"{crash['reason']}: {crash['container']} restarted {crash['times']} times"
    return _short(f"{error}: {message}", 90)


class _Follower:
    """Prints an execution's states as they are entered, and what each Task did when it exits."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.seen = 0
        self.started: datetime | None = None
        self.open_line: str | None = None  # the state whose line is written up to its name
        self.summary = ""
        self.workloads = 0
        self.rollback_target: str | None = None

    def feed(self, events: list[Any]) -> None:
        for event in events[self.seen :]:
            self._event(event)
        self.seen = len(events)
        self.out.flush()

    def _event(self, event: Any) -> None:
        kind = event.type
        if kind == "ExecutionStarted":
            self.started = event.timestamp
        elif kind.endswith("StateEntered"):
            self._close()
            offset = (event.timestamp - self.started).total_seconds() if self.started else 0.0
            self.out.write(f"   +{offset:>4.0f}s  {event.state_name}")
            self.open_line = str(event.state_name)
        elif kind in {"LambdaFunctionSucceeded", "TaskSucceeded"}:
            self.summary = self._summary(_json(event.details.get("output")))
        elif kind in {"LambdaFunctionFailed", "TaskFailed", "LambdaFunctionTimedOut", "TaskTimedOut"}:
            self.summary = _failure(str(event.details.get("error", "")), str(event.details.get("cause", "")))
        elif kind.endswith("StateExited") or kind in _END_EVENTS:
            self._close()

    def _close(self) -> None:
        if self.open_line is not None:
            padding = " " * max(1, 26 - len(self.open_line))
            self.out.write(f"{padding}{self.summary}\n" if self.summary else "\n")
        self.open_line, self.summary = None, ""

    def _summary(self, output: Any) -> str:
        """What a step's output says, in a few words (the shapes are the steps' output models)."""
        if not isinstance(output, dict):
            return ""
        if isinstance(output.get("Payload"), dict):  # the lambda:invoke integration wraps the handler's result
            output = output["Payload"]
        if "applied" in output:
            self.workloads = len(output.get("workloads") or [])
            pruned = f", pruned {output['pruned']}" if output.get("pruned") else ""
            return f"applied {output['applied']} objects{pruned} ({output.get('release_id')})"
        if "healthy" in output:
            pending = output.get("pending") or []
            total = self.workloads or len(pending)
            rolled = f"{total - len(pending)}/{total} workloads rolled out"
            if output["healthy"]:
                return rolled
            waiting = _workload_names(pending) if len(pending) <= 2 else f"{len(pending)} workloads"
            return f"{rolled}, waiting for {waiting}"
        if "passed" in output:
            return f"smoke tests passed: {len(output['passed'])} services"
        if "message" in output and "outcome" in output:  # the record steps
            release, outcome = output.get("release_id"), output["outcome"]
            if outcome == "succeeded":
                return f"{release} recorded as last known-good"
            if outcome == "rolled_back":
                return f"{release} recorded failed; rolled back to {self.rollback_target}"
            if outcome == "restored":
                return f"rolled back to {release}, now last known-good"
            return f"{release} recorded {outcome}"
        if "owner" in output and "outcome" in output:
            return f"lock on {output.get('environment')} {str(output['outcome']).lower()}"
        if "released" in output:
            return "lock released" if output["released"] else "lock was not held"
        if "action" in output:  # the plan
            release = (output.get("release") or {}).get("release_id")
            changed = output.get("changed") or {}
            if output["action"] != "deploy":
                return f"nothing to deploy: {output.get('reason')}"
            if len(changed) > 2:
                return f"{release}: {len(changed)} services changed"
            names = ", ".join(f"{s}@{_digest12(d)}" for s, d in sorted(changed.items()))
            return f"{release}: {names}"
        if "frozen" in output:
            if output["frozen"]:
                return f"frozen: {output.get('window_reason')}" + (" (forced)" if output.get("forced") else "")
            return "no freeze window"
        if "scans" in output:
            return f"{len(output['scans'])} image(s) scanned: {output.get('status')}"
        if "results" in output:  # promotion tags
            tagged = sum(1 for r in output["results"] if r.get("outcome") == "TAGGED")
            return f"{tagged} tags written, {len(output['results']) - tagged} unchanged"
        if "found" in output:  # the rollback target
            if not output["found"]:
                return f"no rollback target: {output.get('reason')}"
            self.rollback_target = (output.get("release") or {}).get("release_id")
            return f"target {self.rollback_target}"
        return ""


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return text


def follow(out: TextIO, pipe: Pipeline, arn: str, *, timeout: float = FOLLOW_TIMEOUT_S) -> Followed:
    """Poll the execution's history until it ends (at most ``timeout`` wall seconds), printing states as they come."""
    follower = _Follower(out)
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while True:
        events = pipe.cloud.history(arn)
        follower.feed(events)
        if any(e.type in _END_EVENTS for e in events):
            return Followed(pipe.cloud.wait_execution(arn, timeout=timeout), time.perf_counter() - started)
        if time.monotonic() >= deadline:
            follower.feed(events)
            out.write(f"\n   still running after {timeout:.0f} s wall: the demo stops following {arn}\n")
            return Followed(None, time.perf_counter() - started)
        time.sleep(_POLL_S)


def timeline(result: Any) -> list[str]:
    """Per state (first entered order; Choice states take no time and are left out): entered at, time spent, visits."""
    events = list(result.history)
    if not events:
        return []
    start, end = events[0].timestamp, events[-1].timestamp
    entered = [e for e in events if e.type.endswith("StateEntered")]
    rows: dict[str, list[float]] = {}  # state -> [first entered, total seconds, visits]
    for index, event in enumerate(entered):
        if event.type == "ChoiceStateEntered":
            continue
        left = entered[index + 1].timestamp if index + 1 < len(entered) else end
        row = rows.setdefault(event.state_name, [(event.timestamp - start).total_seconds(), 0.0, 0])
        row[1] += (left - event.timestamp).total_seconds()
        row[2] += 1
    lines = [f"   {'state':<26}{'entered':>9}{'took':>7}  visits"]
    for state, (at, took, visits) in rows.items():
        lines.append(
            f"   {state:<26}{f'+{at:.0f}s':>9}{f'{took:.0f}s':>7}  {int(visits) if visits > 1 else ''}".rstrip()
        )
    return lines


def _report(out: TextIO, followed: Followed) -> None:
    result = followed.result
    if result is None:
        out.write("   outcome: did not end in time\n")
        return
    total = (result.history[-1].timestamp - result.history[0].timestamp).total_seconds() if result.history else 0.0
    out.write(f"   timeline ({total:.0f} s simulated, {followed.wall:.2f} s wall):\n")
    out.write("\n".join(timeline(result)) + "\n")
    out.write(f"   outcome: {result.status}" + (f" ({result.error})" if result.error else "") + "\n")
    if result.cause:
        out.write(_wrap(result.cause, "   cause: ", "          ") + "\n")


def _wrap(text: str, first: str, rest: str) -> str:
    """``text`` wrapped at 110 columns (names with hyphens stay whole)."""
    return textwrap.fill(text, 110, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False)


def _short(text: str, width: int) -> str:
    return textwrap.shorten(text, width, placeholder=" ...")


def _images(pipe: Pipeline) -> str:
    return ", ".join(
        f"{name}@{pipe.deployment_image(name).rsplit('@sha256:', 1)[1][:12]}" for name in platform.SERVICE_NAMES
    )


def _detection_seconds(pipe: Pipeline) -> float | None:
    """The TimeToDetectFailure metric the health step published (an EMF line in its log stream), if any."""
    for line in reversed(pipe.cloud.runtime.logs):
        if '"TimeToDetectFailure"' in line.message:
            value = _json(line.message).get("TimeToDetectFailure")
            return float(value[0] if isinstance(value, list) else value)
    return None


# -- the ledger's view ----------------------------------------------------------------------------------------------
def _execution(arn: str) -> str:
    """``arn:aws:states:...:execution:<stack>-deploy:<uuid>`` -> ``deploy:<uuid prefix>``."""
    parts = arn.split(":")
    return f"{parts[-2].rsplit('-', 1)[-1]}:{parts[-1][:8]}"


def _after(start: datetime, at: datetime | None) -> str:
    return f"+{(at - start).total_seconds():.0f}s" if at else "-"


def ledger_view(pipe: Pipeline, environment: str) -> list[str]:
    """The releases of ``environment`` as the ledger holds them, its last known-good pointer and quarantined digests."""
    records = pipe.releases(environment)
    header = f"{'release':<26}{'status':<13}{'trigger':<18}{'changed':<32}{'started':<10}{'healthy':>8}{'ended':>7}"
    lines = [f"   {header}  execution"]
    for r in records:
        trigger = r.trigger.kind.value + (f" {r.trigger.tag}" if r.trigger.tag else "")
        changed = (
            f"{len(r.changed)} services"
            if len(r.changed) > 1
            else ", ".join(f"{s}@{_digest12(d)}" for s, d in r.changed.items()) or "-"
        )
        healthy, ended = _after(r.started_at, r.healthy_at), _after(r.started_at, r.finished_at)
        lines.append(
            f"   {r.release_id:<26}{r.status.value:<13}{trigger:<18}{changed:<32}{r.started_at:%H:%M:%S}  "
            f"{healthy:>8}{ended:>7}  {_execution(r.execution_arn)}"
        )
    for r in records:
        if r.rolled_back_to or r.cause:
            note = f"{r.release_id}: " + (f"rolled back to {r.rolled_back_to}; " if r.rolled_back_to else "")
            lines.append(_wrap(_short(note + (r.cause or ""), 210), "   ", "      "))
    lkg = pipe.ledger.last_known_good(environment)
    if lkg is None:
        lines.append("   last known-good: none")
    else:
        lines.append(
            f"   last known-good: {lkg.release_id} (previously {lkg.previous_release_id}; "
            f"set {lkg.updated_at:%H:%M:%S} by {_execution(lkg.execution_arn)})"
        )
    services = {d: s for r in records for s, d in r.images.items()}
    quarantined = pipe.ledger.quarantined(services)
    lines.append(f"   quarantined digests: {len(quarantined) or 'none'}")
    lines += [f"     {_short(f'{services[d]}@{_digest12(d)}: {why}', 105)}" for d, why in sorted(quarantined.items())]
    return lines


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
