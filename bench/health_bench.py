"""The health step, watching vs polling, side by side on the local cloud (``make bench`` / ``python -m bench health``).

* verdict lag: the simulated time from the moment the cluster is healthy (kubectl's rollout rules hold for the
  changed Deployment, seen by a listener on the emulator's store) to the moment CheckHealth says so (its task state
  exits), p50/p95 over several 1-service deploys whose pods take 3-19 s to become ready (goal <= 2 s p95);
* detection time per failure kind: ApplyRelease's end to the rollback starting (goals: <= 15 s for an image that
  cannot be pulled or a missing Secret, <= 60 s for a crash loop, the readiness deadline for a pod never ready);
* pods no node can run, with the release's Cluster Autoscaler: a pod that fits only on a node the autoscaler adds
  (ApplyRelease's end to CheckHealth's healthy verdict: the node boots for 60 s) and a pod no node group can run even
  after a scale-up (``NotTriggerScaleUp``: ApplyRelease's end to the rollback starting; goal <= 15 s);
* bake regression lag: a release that passes its smoke test, then crash-loops during its bake period; from the
  moment its Deployment stops being healthy to the rollback starting (poll: the Bake loop looked every 30 s);
* estimated AWS cost per deploy: Step Functions standard transitions ($0.025 per 1,000), the health function's
  Lambda GB-seconds in CheckAddons, CheckHealth and Bake ($0.0000166667 per GB-s at its 512 MB; a watch is billed
  for the simulated time it watched, a look for :data:`LOOK_SECONDS`) and requests ($0.20 per million).

"watch" is the template's default (HealthWatchSeconds 90); "poll" is HealthWatchSeconds 0 (one look per invocation
and a 10 s Wait state between looks, the design before). Numbers to read, not timed tests.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from controlplane.aws import eks
from controlplane.kube.health import deployment_status

DEPLOYS = 6
READY_AFTER = (3.0, 6.0, 9.0, 12.0, 15.0, 19.0)
TRANSITION_USD = 0.025 / 1000
GB_SECOND_USD = 0.0000166667
REQUEST_USD = 0.20 / 1_000_000
MEMORY_GB = 0.5
LOOK_SECONDS = 0.3
"""Billed duration of one look (a handful of list requests from a warm function), for the cost estimate."""
HEALTH_STATES = ("CheckAddons", "CheckHealth", "Bake", "RollBackCheckHealth")
LAG_GOAL_S = 2.0
MODES = {"watch": {}, "poll": {"HealthWatchSeconds": 0}}


@contextmanager
def _pipeline(**overrides: Any) -> Iterator[Any]:
    from local.cluster import Behaviour, Cluster  # noqa: PLC0415
    from local.pipeline import pipeline  # noqa: PLC0415

    eks.clear_cache()
    with Cluster("sts-staging") as cluster:
        cluster.images.set_default(Behaviour.ready(after=0))
        with pipeline(cluster, **overrides) as pipe:
            yield pipe


class _HealthyAt:
    """When the watched Deployment next satisfies kubectl's rollout rules after it stopped doing so (simulated s)."""

    def __init__(self, cluster: Any, name: str) -> None:
        self.cluster, self.name = cluster, name
        self.unready_seen = False
        self.at: float | None = None
        cluster.store.subscribe(self)

    def arm(self) -> None:
        self.unready_seen, self.at = False, None

    def __call__(self, event: Any) -> None:
        obj = event.object
        if obj.get("kind") != "Deployment" or obj["metadata"]["name"] != self.name or self.at is not None:
            return
        if not deployment_status(obj).done:
            self.unready_seen = True
        elif self.unready_seen:
            self.at = self.cluster.clock.now()


@dataclass
class _Cost:
    transitions: int = 0
    health_invocations: int = 0
    health_seconds: float = 0.0

    def usd(self) -> float:
        lam = self.health_seconds * MEMORY_GB * GB_SECOND_USD + self.health_invocations * REQUEST_USD
        return self.transitions * TRANSITION_USD + lam


def _cost(history: list[Any]) -> _Cost:
    cost = _Cost(transitions=sum(1 for e in history if e.type.endswith("StateEntered")))
    entered: dict[str, Any] = {}
    for e in history:
        if e.type == "TaskStateEntered" and e.state_name in HEALTH_STATES:
            entered[e.state_name] = e.timestamp
        elif e.type == "TaskStateExited" and e.state_name in entered:
            cost.health_invocations += 1
            cost.health_seconds += (e.timestamp - entered.pop(e.state_name)).total_seconds() + LOOK_SECONDS
    return cost


def _health_exit(history: list[Any]) -> Any:
    return next(e for e in reversed(history) if e.type == "TaskStateExited" and e.state_name == "CheckHealth")


def verdict_lag_and_cost(mode: str) -> tuple[list[float], list[_Cost]]:
    from local.cluster import Behaviour  # noqa: PLC0415

    lags: list[float] = []
    costs: list[_Cost] = []
    with _pipeline(**MODES[mode]) as pipe:
        pipe.first_release()
        healthy = _HealthyAt(pipe.cluster, "edc-service")
        for i, ready_after in enumerate(READY_AFTER[:DEPLOYS]):
            healthy.arm()
            result = pipe.push_and_deploy("edc-service", f"main-{i + 2}", Behaviour.ready(after=ready_after))
            assert result.status == "SUCCEEDED", result.cause
            assert healthy.at is not None
            lags.append(_health_exit(result.history).timestamp.timestamp() - healthy.at)
            costs.append(_cost(result.history))
    return lags, costs


def detection(mode: str) -> dict[str, float]:
    from local.cluster import Behaviour  # noqa: PLC0415

    kinds = {
        "image not found": Behaviour.err_image_pull(),
        "missing Secret": Behaviour.create_container_config_error(),
        "crash loop": Behaviour.crash_loop(),
        "never ready": Behaviour.never_ready(),
    }
    found: dict[str, float] = {}
    with _pipeline(**MODES[mode]) as pipe:
        pipe.first_release()
        for i, (name, behaviour) in enumerate(kinds.items()):
            result = pipe.push_and_deploy("edc-service", f"main-{20 + i}", behaviour)
            history = result.history
            applied = next(e for e in history if e.type == "TaskStateExited" and e.state_name == "ApplyRelease")
            rollback = next(
                e for e in history if e.type.endswith("StateEntered") and e.state_name == "ResolveRollbackTarget"
            )
            found[name] = (rollback.timestamp - applied.timestamp).total_seconds()
    return found


def _cordon_every_node(pipe: Any) -> None:
    from kubernetes.client import CoreV1Api  # noqa: PLC0415

    from local.cluster import api_client  # noqa: PLC0415

    core = CoreV1Api(api_client(pipe.cluster))
    for node in core.list_node().items:
        core.patch_node(node.metadata.name, {"spec": {"unschedulable": True}})


def autoscaling(mode: str) -> dict[str, float]:
    """Simulated seconds from ApplyRelease's end: to healthy for a pod that fits only on a node the autoscaler adds,
    to the rollback for one no node group can run (the general group at its maximum size)."""
    from local.cluster.nodes import DEFAULT_GROUP  # noqa: PLC0415

    found: dict[str, float] = {}
    with _pipeline(**MODES[mode]) as pipe:
        pipe.first_release()
        general = pipe.cluster.nodes.groups()[DEFAULT_GROUP]
        pipe.cluster.nodes.set_group(
            DEFAULT_GROUP, general.desired, general.instance_type, max_size=general.desired + 1
        )
        _cordon_every_node(pipe)
        result = pipe.push_and_deploy("edc-service", "main-40")
        assert result.status == "SUCCEEDED", result.cause
        applied = next(e for e in result.history if e.type == "TaskStateExited" and e.state_name == "ApplyRelease")
        found["fits after a scale-up"] = (_health_exit(result.history).timestamp - applied.timestamp).total_seconds()
        _cordon_every_node(pipe)  # the new node too: the group is at its maximum size now
        result = pipe.push_and_deploy("edc-service", "main-41")
        assert result.error == "PlatformNotReadyError", result.cause
        applied = next(e for e in result.history if e.type == "TaskStateExited" and e.state_name == "ApplyRelease")
        rollback = next(
            e for e in result.history if e.type.endswith("StateEntered") and e.state_name == "ResolveRollbackTarget"
        )
        found["no node group fits"] = (rollback.timestamp - applied.timestamp).total_seconds()
    return found


class _RegressedAt:
    """When the watched Deployment stops satisfying kubectl's rollout rules again after its rollout finished (the
    rollout's own unready stretch, then ready, then unready: simulated s)."""

    def __init__(self, cluster: Any, name: str) -> None:
        self.cluster, self.name = cluster, name
        self.phase = 0  # 0: before the rollout, 1: rolling out, 2: rolled out
        self.at: float | None = None
        cluster.store.subscribe(self)

    def __call__(self, event: Any) -> None:
        obj = event.object
        if self.at is not None or obj.get("kind") != "Deployment" or obj["metadata"]["name"] != self.name:
            return
        done = deployment_status(obj).done
        if self.phase == 0 and not done:
            self.phase = 1
        elif self.phase == 1 and done:
            self.phase = 2
        elif self.phase == 2 and not done:
            self.at = self.cluster.clock.now()


def bake_regression(mode: str) -> float:
    """Simulated seconds from a baking release's Deployment becoming unhealthy (its pod crashes 60 s after it
    started, after the smoke test) to the rollback starting."""
    from local.cluster import Behaviour  # noqa: PLC0415

    with _pipeline(**MODES[mode]) as pipe:
        pipe.first_release()
        regressed = _RegressedAt(pipe.cluster, "edc-service")
        result = pipe.push_and_deploy("edc-service", "main-50", Behaviour.crashes_after(60))
        assert result.status == "FAILED", result.cause
        assert "Bake" in result.states_entered(), result.states_entered()
        assert regressed.at is not None
        rollback = next(
            e for e in result.history if e.type.endswith("StateEntered") and e.state_name == "ResolveRollbackTarget"
        )
        return rollback.timestamp.timestamp() - regressed.at


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    goals = {"image not found": 15.0, "missing Secret": 15.0, "crash loop": 60.0, "never ready": 130.0}
    results = {mode: (verdict_lag_and_cost(mode), detection(mode)) for mode in MODES}
    scaling = {mode: autoscaling(mode) for mode in MODES}
    bake = {mode: bake_regression(mode) for mode in MODES}
    print(f"verdict lag (cluster healthy -> CheckHealth says so), {DEPLOYS} deploys, pods ready after 3-19 s:")
    for mode, ((lags, _), _) in results.items():
        p95 = _pct(lags, 0.95)
        verdict = "OK" if p95 <= LAG_GOAL_S else "OVER"
        print(
            f"  {mode:<5} p50 {statistics.median(lags):5.1f} s  p95 {p95:5.1f} s  max {max(lags):5.1f} s "
            f"(goal p95 <= {LAG_GOAL_S:.0f} s: {verdict}); each: {', '.join(f'{x:.1f}' for x in lags)}"
        )
    print("detection (ApplyRelease done -> rollback starts), simulated seconds:")
    for name, goal in goals.items():
        row = "  ".join(f"{mode} {results[mode][1][name]:5.0f} s" for mode in MODES)
        verdict = "OK" if results["watch"][1][name] <= goal else "OVER"
        print(f"  {name:<16} {row}  (goal <= {goal:.0f} s, watch: {verdict})")
    print("  (never ready: the readiness deadline is 120 s from the pod's start; the goal allows 10 s to see it)")
    print("pods no node can run, the Cluster Autoscaler installed (ApplyRelease done -> verdict), simulated seconds:")
    for name, goal in {"fits after a scale-up": None, "no node group fits": 15.0}.items():
        row = "  ".join(f"{mode} {scaling[mode][name]:5.0f} s" for mode in MODES)
        target = f"(goal <= {goal:.0f} s, watch: {'OK' if scaling['watch'][name] <= goal else 'OVER'})" if goal else ""
        print(f"  {name:<22} {row}  {target or '(healthy once the added node is Ready: it boots for 60 s)'}")
    print("bake regression lag (the baking release's Deployment unhealthy -> rollback starts), simulated seconds:")
    print("  " + "  ".join(f"{mode} {bake[mode]:5.1f} s" for mode in MODES))
    print("estimated AWS cost per 1-service deploy (transitions + health Lambda GB-s + requests), mean:")
    for mode, ((_, costs), _) in results.items():
        n = len(costs)
        print(
            f"  {mode:<5} {sum(c.transitions for c in costs) / n:5.1f} transitions, "
            f"{sum(c.health_invocations for c in costs) / n:4.1f} health invocations, "
            f"{sum(c.health_seconds for c in costs) / n:5.1f} s billed -> "
            f"${sum(c.usd() for c in costs) / n:.6f} per deploy"
        )


if __name__ == "__main__":
    main()
