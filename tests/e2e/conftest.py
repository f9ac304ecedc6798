"""Fixtures of the end-to-end tier: a fresh emulator named like the staging cluster, and the pipeline on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.cluster import Cluster
from local.pipeline import Pipeline, pipeline


@pytest.fixture
def cluster() -> Iterator[Any]:
    with Cluster("sts-staging") as emulator:
        yield emulator


@pytest.fixture
def pipe(cluster: Any) -> Iterator[Pipeline]:
    with pipeline(cluster) as p:
        yield p
