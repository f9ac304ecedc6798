"""Property: for any initial state, scaling down and then up restores replicas, HPA bounds and node groups exactly."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import WORLD_PER_EXAMPLE_MAX
from tests.integration.offhours.conftest import CLUSTER, World, fresh_world, hpa, namespace, workload

pytestmark = pytest.mark.integration


@st.composite
def initial_states(draw: st.DrawFn) -> dict[str, Any]:
    replicas = {name: draw(st.integers(0, 4)) for name in ("alpha", "beta", "gamma", "store")}
    hpas = {}
    for name in ("alpha", "beta"):
        low = draw(st.one_of(st.none(), st.integers(1, 3)))
        hpas[name] = (low, draw(st.integers(low or 1, 6)))
    general_min = draw(st.integers(0, 2))
    general_desired = draw(st.integers(max(general_min, 1), 3))  # capacity for every pod: the property is about sizes
    spot_min = draw(st.integers(0, 1))
    spot_desired = draw(st.integers(spot_min, 2))
    groups = {
        "general": (general_min, draw(st.integers(general_desired, 4)), general_desired),
        "spot": (spot_min, draw(st.integers(max(spot_desired, 1), 3)), spot_desired),
    }
    return {"replicas": replicas, "hpas": hpas, "nodegroups": groups}


def arrange(world: World, state: dict[str, Any]) -> None:
    eks = boto3.client("eks", region_name="us-east-1")
    for name, (low, high, desired) in state["nodegroups"].items():
        eks.update_nodegroup_config(
            clusterName=CLUSTER,
            nodegroupName=name,
            scalingConfig={"minSize": low, "maxSize": high, "desiredSize": desired},
        )
    objects = [namespace()]
    for name, replicas in state["replicas"].items():
        objects.append(workload(name, replicas, kind="StatefulSet" if name == "store" else "Deployment"))
    for name, (low, high) in state["hpas"].items():
        objects.append(hpa(name, low, high))
    world.apply(objects)
    world.cluster.advance(60)


@pytest.mark.soak
@settings(deadline=None, max_examples=WORLD_PER_EXAMPLE_MAX)  # a new emulator and moto for each example
@given(initial=initial_states())
@pytest.mark.usefixtures("offhours_env")
def test_down_then_up_restores_every_size_exactly(initial: dict[str, Any]) -> None:
    with fresh_world() as world:  # one cluster and one moto per example: nothing leaks from the previous one
        arrange(world, initial)
        before = world.state()

        world.scale_down()
        asleep = world.state()
        world.scale_up()

        assert world.state() == before
        assert set(asleep["workloads"].values()) <= {0}
        for name, (_, _, desired) in asleep["nodegroups"].items():
            assert desired == (min(1, before["nodegroups"][name][2]) if name == "general" else 0)
