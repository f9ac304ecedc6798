"""Numbers of off-hours scaling on the local cloud (``make bench`` / ``python -m bench offhours``).

One weeknight of staging through the real off-hours ASL: scale-down at 20:00, eleven hours of simulated sleep,
scale-up at 07:00. Printed:

* state transitions and Lambda invocations of the scale-down and of the scale-up (Step Functions bills transitions);
* the night's savings as FinishWake computes them (node-hours, pod-hours, estimated USD from the price table), and
  the same extrapolated to a month of weeknights plus weekends (Friday's scale-down lasts until Monday);
* simulated time of the scale-up (nodes boot, waves roll out) and the wall time of the whole cycle.

Not timed tests: numbers to read.
"""

from __future__ import annotations

import time
from typing import Any

from controlplane.aws import eks

NIGHT_HOURS = 11  # 20:00 -> 07:00
WEEKEND_HOURS = 24 * 2 + 11  # Friday 20:00 -> Monday 07:00
NIGHTS_PER_MONTH = 4 * 52 / 12  # Monday..Thursday nights
WEEKENDS_PER_MONTH = 52 / 12


def _transitions(result: Any) -> int:
    return sum(1 for e in result.history if e.type.endswith("StateEntered"))


def _invocations(result: Any) -> int:
    return result.count("LambdaFunctionScheduled") or result.count("TaskScheduled")


def main() -> None:
    from local.cluster import Behaviour, Cluster  # noqa: PLC0415
    from local.offhours import offhours_pipeline  # noqa: PLC0415

    eks.clear_cache()
    started = time.perf_counter()
    with Cluster("sts-staging", default_nodes=False) as cluster, offhours_pipeline(cluster) as env:
        cluster.images.set_default(Behaviour.ready(after=2))
        env.pipe.first_release()
        before = env.state()

        down = env.run("down")
        cluster.advance(NIGHT_HOURS * 3600)
        wake_started = cluster.clock.utcnow()
        up = env.run("up")
        wake_took = (cluster.clock.utcnow() - wake_started).total_seconds()
        restored = env.state() == before
    wall = time.perf_counter() - started
    eks.clear_cache()

    assert down.status == "SUCCEEDED", (down.error, down.cause)
    assert up.status == "SUCCEEDED", (up.error, up.cause)
    night = up.output["savings"]
    per_hour_nodes = night["node_hours"] / night["hours"]
    per_hour_pods = night["pod_hours"] / night["hours"]
    per_hour_cost = night["estimated_cost"] / night["hours"]
    month_hours = NIGHTS_PER_MONTH * NIGHT_HOURS + WEEKENDS_PER_MONTH * WEEKEND_HOURS

    print(f"scale-down: {_transitions(down)} state transitions, {_invocations(down)} Lambda invocations")
    print(f"scale-up:   {_transitions(up)} state transitions, {_invocations(up)} Lambda invocations, "
          f"{wake_took:.0f} s simulated until every workload was healthy")  # fmt: skip
    print(f"restored exactly (replicas, HPA bounds, node-group sizes): {restored}")
    print(f"one night ({night['hours']:.2f} h asleep): {night['node_hours']:.2f} node-hours, "
          f"{night['pod_hours']:.2f} pod-hours, ~{night['estimated_cost']:.2f} USD saved")  # fmt: skip
    for group in night["nodegroups"]:
        if group["nodes_saved"]:
            print(f"  {group['name']}: {group['nodes_saved']} x {group['instance_type']} -> {group['cost']:.2f} USD")
    print(f"per month (4 weeknights x 11 h + weekends x 59 h = {month_hours:.0f} h asleep): "
          f"{per_hour_nodes * month_hours:.0f} node-hours, {per_hour_pods * month_hours:.0f} pod-hours, "
          f"~{per_hour_cost * month_hours:.2f} USD")  # fmt: skip
    print("  (the harness creates node groups ON_DEMAND; the real SpotNodeGroup is SPOT, priced at spot_price_factor)")
    print(f"wall time of the whole cycle (first release included): {wall:.1f} s")


if __name__ == "__main__":
    main()
