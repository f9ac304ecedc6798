"""The simulated clock crosses idle stretches in one step, and that changes nothing anyone can see.

Two identical clusters run the same hour and more of every time-driven behaviour the emulator has (containers that
turn ready, crash-loop with back-off, fail to pull and retry, crash after a while, complete; a rollout past its
progress deadline; ``minReadySeconds``; a node that boots; a toleration that runs out; the cluster autoscaler's
loop scaling up or saying why not; events that expire): one
ticks every second (a listener without ``due`` forces it), the other skips the ticks at which the controllers say
they have nothing to do. Every store change, its content and the simulated second it happened at are the same.
"""

from __future__ import annotations

import math
import random
import uuid
from typing import Any

import pytest

from local.cluster import objects
from local.cluster.kubelet import Behaviour
from local.cluster.objects import DEPLOYMENTS, JOBS, PODS
from local.cluster.store import Event

from .conftest import START, Sim, deployment
from .test_controllers_autoscaler import install_autoscaler

pytestmark = pytest.mark.unit

HALF, LAST = 1_800.0, 100.0  # past the events' one-hour expiry in all
GENERAL = {"workload-class": "general"}  # where the cluster autoscaler add-on runs


def _job(name: str, image: str) -> dict[str, Any]:
    labels = {"job": name}
    template = {
        "metadata": {"labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "run", "image": image}]},
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": {"template": template}}


def _tolerating_pod(name: str, seconds: int) -> dict[str, Any]:
    toleration = {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"eks.amazonaws.com/nodegroup": "spot"},
            "tolerations": [toleration],
            "containers": [{"name": "app", "image": "registry.local/ok:v1"}],
        },
    }


def _run(monkeypatch: pytest.MonkeyPatch, *, tick_every_second: bool) -> tuple[list[tuple[Any, ...]], int]:
    """The store's changes as (simulated second, type, resource, object) and how many ticks the controllers saw."""
    uids = random.Random(11)  # uids (and the event names made from them) the same in both runs, all different
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=uids.getrandbits(128), version=4))
    monkeypatch.setattr(objects, "secrets", random.Random(7))
    sim = Sim(nodes=0)
    sim.nodes.set_group("general", 2, "t3.medium", boot_seconds=0, labels=GENERAL, min_size=1, max_size=3)
    sim.nodes.set_group("spot", 1, "t3.medium", boot_seconds=0)
    images = sim.images
    images.set("registry.local/ok:v1", Behaviour.ready(after=3))
    images.set("registry.local/crash:v1", Behaviour.crash_loop(run_for=3))
    images.set("registry.local/pull:v1", Behaviour.err_image_pull())
    images.set("registry.local/later:v1", Behaviour.crashes_after(100, ready_after=2))
    images.set("registry.local/never:v1", Behaviour.never_ready())
    images.set("registry.local/config:v1", Behaviour.create_container_config_error())
    changes: list[tuple[Any, ...]] = []

    def record(event: Event) -> None:
        changes.append((sim.clock.now(), event.type, event.gr, event.object))

    sim.store.subscribe(record)
    ticks = 0

    def count(_now: float) -> None:
        nonlocal ticks
        ticks += 1

    if tick_every_second:
        sim.clock.subscribe(count)  # a listener that cannot say when it acts: every tick is made
    else:
        sim.clock.subscribe(count, due=lambda _now: math.inf)
    install_autoscaler(sim)  # its loop every 10 s: a scale-up for "big", NotTriggerScaleUp for "huge"
    sim.apply(PODS, _tolerating_pod("spot-worker", 30))
    sim.advance(5)
    sim.nodes.set_group("spot", 1, "t3.medium", taints=[{"key": "spot", "value": "reclaimed", "effect": "NO_EXECUTE"}])
    sim.nodes.set_group("late", 1, "t3.medium", boot_seconds=45)
    sim.apply(DEPLOYMENTS, deployment("ok", "registry.local/ok:v1", 2, minReadySeconds=7))
    sim.apply(DEPLOYMENTS, deployment("crash", "registry.local/crash:v1", 1))
    sim.apply(DEPLOYMENTS, deployment("pull", "registry.local/pull:v1", 1))
    sim.apply(DEPLOYMENTS, deployment("later", "registry.local/later:v1", 1))
    sim.apply(DEPLOYMENTS, deployment("never", "registry.local/never:v1", 1, progressDeadlineSeconds=60))
    sim.apply(DEPLOYMENTS, deployment("config", "registry.local/config:v1", 1))
    sim.apply(JOBS, _job("once", "registry.local/ok:v1"))
    sim.advance(7)
    sim.apply(DEPLOYMENTS, deployment("big", "registry.local/ok:v1", 3, cpu="1500m"))
    sim.apply(DEPLOYMENTS, deployment("huge", "registry.local/ok:v1", 1, cpu="64"))
    sim.advance(HALF)
    sim.apply(DEPLOYMENTS, deployment("huge", "registry.local/ok:v1", 0, cpu="64"))
    sim.apply(DEPLOYMENTS, deployment("big", "registry.local/ok:v1", 0, cpu="1500m"))
    for name in ("crash", "pull", "later"):  # quiet: the clock now stops only for the events' expiry
        sim.apply(DEPLOYMENTS, deployment(name, f"registry.local/{name}:v1", 0))
    assert not [p for p in sim.store.list(PODS) if not p["spec"].get("nodeName")], "nothing pending"
    sim.advance(HALF + 206.5)  # past the first events' expiry: idle, the autoscaler's loops skipped, their phase kept
    sim.apply(DEPLOYMENTS, deployment("huge", "registry.local/ok:v1", 1, cpu="64"))  # pending again, mid-phase
    sim.advance(LAST)
    return changes, ticks


def test_skipping_idle_ticks_changes_nothing_the_controllers_write_nor_when(monkeypatch: pytest.MonkeyPatch) -> None:
    ticked, every_tick = _run(monkeypatch, tick_every_second=True)
    skipped, fewer_ticks = _run(monkeypatch, tick_every_second=False)

    assert every_tick == 5 + 5 + 7 + HALF + HALF + 207 + LAST
    assert len(ticked) > 200  # the scenario moves: every behaviour writes (some checked one by one below)
    reasons = {str(obj.get("reason")) for _, kind, gr, obj in ticked if gr.resource == "events"}
    assert {"BackOff", "Failed", "TaintManagerEviction", "TriggeredScaleUp", "NotTriggerScaleUp"} <= reasons
    deleted_events = [c for c in ticked if c[1] == "DELETED" and c[2].resource == "events"]
    assert deleted_events, "events expire after an hour"
    assert any(
        c[3]["metadata"]["name"] == "never" and "ProgressDeadlineExceeded" in str(c[3].get("status")) for c in ticked
    )
    assert skipped == ticked
    assert fewer_ticks < every_tick / 5


def _autoscaler_run(monkeypatch: pytest.MonkeyPatch, *, tick_every_second: bool) -> list[tuple[Any, ...]]:
    """The autoscaler idle for hours (its loops skipped), then a pod it cannot help, mid-phase on a half-second grid."""
    uids = random.Random(5)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=uids.getrandbits(128), version=4))
    monkeypatch.setattr(objects, "secrets", random.Random(3))
    sim = Sim(nodes=0)
    sim.nodes.set_group("general", 1, "t3.medium", boot_seconds=0, labels=GENERAL, min_size=1, max_size=1)
    changes: list[tuple[Any, ...]] = []
    sim.store.subscribe(lambda event: changes.append((sim.clock.now(), event.type, event.gr, event.object)))
    sim.clock.subscribe(lambda _now: None, due=None if tick_every_second else (lambda _now: math.inf))
    install_autoscaler(sim)
    sim.advance(2 * 3600 + 6.5)  # past every event's expiry
    sim.apply(DEPLOYMENTS, deployment("huge", "registry.local/ok:v1", 1, cpu="64"))
    sim.advance(30)
    return changes


def test_the_autoscalers_loop_keeps_its_phase_through_skipped_idle_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    ticked = _autoscaler_run(monkeypatch, tick_every_second=True)
    skipped = _autoscaler_run(monkeypatch, tick_every_second=False)

    [(at, *_)] = [c for c in ticked if c[2].resource == "events" and c[3].get("reason") == "NotTriggerScaleUp"]
    assert (at - START) % 10 == 0.5  # the loop's 10 s grid, seen at the first half-second tick after it
    assert skipped == ticked
