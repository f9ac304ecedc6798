"""Numbers of the deploy pipeline on the local cloud (``make bench`` / ``python -m bench deploy``).

* state transitions of a 1-service and a 7-service deploy (targets <= 40 and <= 60);
* Kubernetes requests per applied object by the ApplyFunction (target <= 1.2 with cached discovery);
* simulated time from a failing pod (CrashLoopBackOff, ImagePullBackOff) to the rollback starting (target <= 90 s);
* wall time of a 7-service deploy with instant rollouts;
* cold import time of each handler (a fresh interpreter per handler).

Not timed tests: numbers to read, with the targets next to them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from controlplane import platform
from controlplane.aws import eks

REPO = Path(__file__).resolve().parent.parent
FUNCTIONS = sorted(p.parent.name for p in (REPO / "functions").glob("*/app.py"))


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


def requests_per_object() -> None:
    with _pipeline() as pipe:
        result = pipe.first_release()
        plan = result.output["plan"]
        payload = {
            "release": plan["release"],
            "purpose": "deploy",
            "prune": True,
            "execution_arn": result.arn,
            "now": plan["started_at"],
        }
        for label in ("warm discovery, prune on", "warm discovery, prune off"):
            payload["prune"] = label.endswith("on")
            before = len(pipe.cluster.requests)
            out = pipe.cloud.invoke("ApplyFunction", payload).json()
            count = len(pipe.cluster.requests) - before
            ratio = count / out["applied"]
            verdict = "OK" if ratio <= 1.2 else "OVER"
            print(
                f"k8s requests per applied object ({label}): {count}/{out['applied']} = {ratio:.2f} (<= 1.2) {verdict}"
            )


def time_to_detect() -> None:
    from local.cluster import Behaviour  # noqa: PLC0415

    for name, behaviour in (
        ("CrashLoopBackOff", Behaviour.crash_loop()),
        ("ImagePullBackOff", Behaviour.err_image_pull()),
    ):
        with _pipeline() as pipe:
            pipe.first_release()
            result = pipe.push_and_deploy("edc-service", "main-2", behaviour)
            history = result.history
            applied = next(e for e in history if e.type == "TaskStateExited" and e.state_name == "ApplyRelease")
            rollback = next(
                e for e in history if e.type.endswith("StateEntered") and e.state_name == "ResolveRollbackTarget"
            )
            seconds = (_at(rollback) - _at(applied)).total_seconds()
            verdict = "OK" if seconds <= 90 else "OVER"
            print(
                f"simulated time, pods created with {name} -> rollback starts: {seconds:.0f} s (<= 90) {verdict}; "
                f"execution {result.status} {result.error}"
            )


def import_times() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "layers" / "controlplane"), "POWERTOOLS_TRACE_DISABLED": "true"}
    code = "import time; t = time.perf_counter(); import app; print(time.perf_counter() - t)"
    for stage in FUNCTIONS:
        out = subprocess.run(  # noqa: PLW1510 - the return code is checked below
            [sys.executable, "-c", code], cwd=REPO / "functions" / stage, env=env, capture_output=True, text=True
        )
        if out.returncode != 0:
            print(f"cold import {stage}: failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        print(f"cold import time, functions/{stage}/app.py: {float(out.stdout.strip()) * 1000:.0f} ms")


def main() -> None:
    import_times()
    transitions_and_wall_time()
    requests_per_object()
    time_to_detect()
    print(f"(services in the platform: {len(platform.SERVICE_NAMES)})")


if __name__ == "__main__":
    main()
