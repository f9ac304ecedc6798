"""Numbers of the deploy pipeline on the local cloud (``make bench`` / ``python -m bench deploy``).

* state transitions of a 1-service and a 7-service deploy (targets <= 40 and <= 60);
* wall time of a 7-service deploy with instant rollouts;
* the Kubernetes requests of a 1-service redeploy through the deploy state machine after a clean drift check, by
  what made them (the apply steps' requests are ``bench/kube_bench.py``'s, goal <= 12; the preflight's self reviews,
  CheckAddons' reads of the add-ons' namespaces, CheckHealth's and Bake's of the release's namespace, the health
  steps' reads of the server's time after a watch, and the smoke test's proxy come on top).

Kubernetes requests per deploy: ``bench/kube_bench.py``; handler cold imports: ``bench/startup_bench.py``; verdict
lag, failure detection per kind and the health step's cost, watch vs poll: ``bench/health_bench.py``.

Not timed tests: numbers to read, with the targets next to them.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Any

from controlplane import platform
from controlplane.aws import eks


def _entered(history: Any) -> list[Any]:
    return [e for e in history if e.type.endswith("StateEntered")]


def _at(event: Any) -> datetime:
    return event.timestamp  # type: ignore[no-any-return]


def _pipeline(**overrides: Any) -> Any:
    from local.cluster import Behaviour, Cluster  # noqa: PLC0415
    from local.pipeline import pipeline  # noqa: PLC0415

    class _Run:
        def __enter__(self) -> Any:
            eks.clear_cache()
            self.cluster_cm = Cluster("sts-staging")
            cluster = self.cluster_cm.__enter__()
            cluster.images.set_default(Behaviour.ready(after=0))
            self.pipe_cm = pipeline(cluster, **overrides)
            return self.pipe_cm.__enter__()

        def __exit__(self, *exc: Any) -> None:
            self.pipe_cm.__exit__(*exc)
            self.cluster_cm.__exit__(*exc)

    return _Run()


def transitions_and_wall_time() -> None:
    with _pipeline() as pipe:
        started = time.perf_counter()
        seven = pipe.first_release()
        wall = time.perf_counter() - started
        one = pipe.push_and_deploy("edc-service", "main-2")
        assert one.status == "SUCCEEDED", one.cause
        n1, n7 = len(_entered(one.history)), len(_entered(seven.history))
        print(f"state transitions, 1-service deploy: {n1:3d} (target <= 40) {'OK' if n1 <= 40 else 'OVER'}")
        print(f"state transitions, 7-service deploy: {n7:3d} (target <= 60) {'OK' if n7 <= 60 else 'OVER'}")
        print(f"wall time, 7-service first deploy, instant rollouts: {wall:.2f} s")
        started = time.perf_counter()
        again = pipe.push_and_deploy("api-gateway", "main-3")
        print(f"wall time, 1-service deploy (warm): {time.perf_counter() - started:.2f} s ({again.status})")


def _health_part(namespace: str | None) -> str:
    if namespace == platform.NAMESPACE:
        return "CheckHealth and Bake"
    return "CheckAddons" if namespace else "health steps' server time"


def redeploy_requests() -> None:
    with _pipeline() as pipe:
        first = pipe.first_release()
        assert first.status == "SUCCEEDED", first.cause
        check = pipe.cloud.run("DriftStateMachine", {"environment": "staging"})
        assert check.status == "SUCCEEDED", check.cause
        pipe.cluster.requests.clear()
        one = pipe.push_and_deploy("edc-service", "main-2")
        assert one.status == "SUCCEEDED", one.cause
        parts: Counter[str] = Counter()
        for r in pipe.cluster.requests:
            if r.user == pipe.cluster.admin_username:
                continue
            function = r.user.rsplit("/", 1)[-1].rsplit("-", 1)[-1]  # ...:assumed-role/<role>/<stack>-ApplyFunction
            if r.resource == "selfsubjectaccessreviews":
                function = "preflight self reviews"
            elif function == "HealthFunction":  # CheckAddons reads the add-ons' namespaces, CheckHealth/Bake ours
                function = _health_part(r.namespace)
            parts[function] += 1
        apply = parts.get("ApplyFunction", 0)
        print(
            f"Kubernetes requests, 1-service redeploy through the state machine after a clean drift check: "
            f"{sum(parts.values())}; apply steps {apply} (goal <= 12: {'OK' if apply <= 12 else 'OVER'}), "
            f"by what made them: {dict(parts.most_common())}"
        )


def main() -> None:
    transitions_and_wall_time()
    redeploy_requests()
    print(f"(services in the platform: {len(platform.SERVICE_NAMES)})")


if __name__ == "__main__":
    main()
