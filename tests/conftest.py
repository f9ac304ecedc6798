"""Shared fixtures. Each section belongs to one part of the suite; keep fixtures small and explicit."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from controlplane.aws import eks
from hypothesis import settings

# Hypothesis profiles: "ci" (the default) bounds every property test so `make test` stays inside its time budget;
# "soak" is opt-in for long runs (`make soak`, or HYPOTHESIS_PROFILE=soak on any pytest command).
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.register_profile("ci", max_examples=50, deadline=None, print_blob=True)
settings.register_profile("soak", max_examples=300, deadline=None, print_blob=True)
settings.load_profile(HYPOTHESIS_PROFILE)
WORLD_PER_EXAMPLE_MAX = 8 if HYPOTHESIS_PROFILE == "ci" else settings().max_examples
"""Examples of a property test that builds an emulator and a LocalCloud for each (~1.5 s apiece): fewer in ``ci``."""

REPO = Path(__file__).resolve().parent.parent
EVENTS = REPO / "tests" / "events"


@pytest.fixture(autouse=True)
def _cold_eks_cache() -> Iterator[None]:
    """Every test starts like a cold Lambda: no DescribeCluster answer cached from an earlier test's emulator."""
    eks.clear_cache()
    yield
    eks.clear_cache()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region, so nothing can reach a real account."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fake credential
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)


def load_event(name: str) -> dict[str, Any]:
    """A real-shaped event from tests/events (as AWS documents them)."""
    data: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return data


# --- local_cloud: the AWS side of the local cloud (local/aws) -------------------------------------------------------
HARNESS_TEMPLATE = REPO / "tests" / "fixtures" / "harness" / "template.yaml"


def _optional_cluster(request: pytest.FixtureRequest) -> Any:
    """The ``cluster`` fixture if the suite defines one, else None (the cloud then runs without an emulator)."""
    try:
        return request.getfixturevalue("cluster")
    except pytest.FixtureLookupError:
        return None


@pytest.fixture
def local_cloud(request: pytest.FixtureRequest) -> Iterator[Any]:
    """LocalCloud built from the project's template.yaml, sharing the ``cluster`` fixture's clock when there is one."""
    from local.aws import DEFAULT_TEMPLATE, LocalCloud  # noqa: PLC0415

    with LocalCloud(DEFAULT_TEMPLATE, cluster=_optional_cluster(request)) as cloud:
        yield cloud


@pytest.fixture
def pipe(cluster: Any) -> Iterator[Any]:
    """The deploy pipeline (``local.pipeline.Pipeline``): the project's template in a LocalCloud, with the ``cluster``
    fixture's emulator registered as the staging EKS cluster and the services' ECR repositories created."""
    from local.pipeline import pipeline  # noqa: PLC0415

    with pipeline(cluster) as p:
        yield p


@pytest.fixture
def harness_cloud() -> Iterator[Any]:
    """LocalCloud built from the small fixture template in tests/fixtures/harness (stack name ``harness``)."""
    from local.aws import LocalCloud  # noqa: PLC0415

    with LocalCloud(HARNESS_TEMPLATE, stack_name="harness") as cloud:
        yield cloud


# --- cluster: the Kubernetes API emulator (local/cluster) -----------------------------------------------------------


@pytest.fixture
def cluster() -> Iterator[Any]:
    """A fresh emulated EKS cluster (``local.cluster.Cluster``, named like the staging cluster: ``sts-staging``)
    serving HTTPS on a free loopback port."""
    from local.cluster import Cluster  # noqa: PLC0415

    with Cluster() as emulator:
        yield emulator
