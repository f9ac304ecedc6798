"""Outage tolerance and the failed-rollback alarm path, measured on the local cloud (simulated time).

``python -m bench faults``:

* **longest outage survived**: the API server answers every resource request with 503 from the moment the deploy
  reaches ApplyRelease, for D simulated seconds; D grows (2, 5, 10, 11, 12 minutes) until a deploy no longer ends
  ``Deployed``. Reported: the longest D survived, next to the budget the ASL's transient Retry promises (>= 600 s).
* **failed rollback -> degraded mark**: a crash-looping release whose rollback is forbidden from writing; the time
  from the rollback's failing task to the ledger's ``DEGRADED`` mark (``since`` = RecordRollbackFailed's entry),
  in simulated seconds, and the wall time of the whole failing execution.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from controlplane.aws import eks

from local.cluster import Behaviour, Cluster
from local.pipeline import Pipeline, pipeline

OUTAGES_S = (120, 300, 600, 660, 720)
TARGET_OUTAGE_S = 600
REPO = Path(__file__).resolve().parents[1]


def retry_budget_s() -> float:
    """What ApplyRelease's transient Retry waits in total (no jitter), from the ASL itself."""
    states = json.loads((REPO / "statemachines" / "deploy.asl.json").read_text())["States"]
    [retrier] = [r for r in states["ApplyRelease"]["Retry"] if "KubernetesTransientError" in r["ErrorEquals"]]
    interval, rate, cap = retrier["IntervalSeconds"], retrier["BackoffRate"], retrier["MaxDelaySeconds"]
    return float(sum(min(interval * rate**n, cap) for n in range(retrier["MaxAttempts"])))


def _deploy_through_outage(pipe: Pipeline, seconds: int, tag: str) -> bool:
    started = pipe.cloud.clock.now()
    fault = pipe.cluster.faults.add(status=503, times=None)

    def heal(now: float) -> None:
        if now - started >= seconds and fault.times is None:
            fault.times = fault.fired

    pipe.cloud.clock.subscribe(heal)
    result = pipe.push_and_deploy("edc-service", tag, timeout=300)
    fault.times = fault.fired
    return bool(result.status == "SUCCEEDED")


def longest_outage_survived() -> int:
    survived = 0
    with Cluster("sts-staging") as cluster, pipeline(cluster) as pipe:
        pipe.first_release()
        for i, seconds in enumerate(OUTAGES_S):
            if not _deploy_through_outage(pipe, seconds, f"main-{i + 2}"):
                break
            survived = seconds
    return survived


def failed_rollback_to_degraded() -> tuple[float, float]:
    eks.clear_cache()  # a new emulator (new port): no DescribeCluster answer cached from the outage run's
    with Cluster("sts-staging") as cluster, pipeline(cluster) as pipe:
        pipe.first_release()
        started = pipe.cloud.clock.now()
        armed: list[Any] = []

        def break_writes(now: float) -> None:
            if now - started >= 20 and not armed:
                armed.append(pipe.cluster.faults.add(verb="patch", status=403, times=None))

        pipe.cloud.clock.subscribe(break_writes)
        wall = time.perf_counter()
        result = pipe.push_and_deploy("edc-service", "main-2", Behaviour.crash_loop(), timeout=300)
        wall = time.perf_counter() - wall
        degraded = pipe.ledger.degraded("staging")
        if result.status != "FAILED" or degraded is None:
            raise RuntimeError(f"expected a failed rollback and a degraded mark, got {result.status}")
        history = pipe.cloud.history(result.arn)
        entered = next(e for e in history if e.type == "TaskStateEntered" and e.state_name == "RecordRollbackFailed")
        failures = [e for e in history if e.type in ("TaskFailed", "LambdaFunctionFailed") and e.id < entered.id]
        failed_at = failures[-1].timestamp if failures else entered.timestamp
        return (degraded.since - failed_at).total_seconds(), wall


def main() -> None:
    budget = retry_budget_s()
    survived = longest_outage_survived()
    ok = "yes" if survived >= TARGET_OUTAGE_S else "NO"
    print(f"longest API-server outage survived: {survived} s simulated (tried {', '.join(map(str, OUTAGES_S))} s)")
    print(f"  ASL transient retry budget: {budget:.0f} s; target >= {TARGET_OUTAGE_S} s met: {ok}")
    to_mark, wall = failed_rollback_to_degraded()
    print(f"failed rollback -> degraded mark: {to_mark:.1f} s simulated (whole failing execution: {wall:.1f} s wall)")
