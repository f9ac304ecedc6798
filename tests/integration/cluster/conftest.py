"""Fixtures for the API emulator's conformance tests: an official-client ApiClient and a kubectl runner."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from local.cluster import Cluster, api_client

KUBECTL = shutil.which("kubectl")


@pytest.fixture
def kube(cluster: Cluster) -> Iterator[client.ApiClient]:
    """``local.cluster.api_client(cluster)``: host, CA file and a bearer token, no global kubeconfig."""
    api = api_client(cluster)
    yield api
    api.close()


Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(cluster: Cluster, tmp_path: Path) -> Kubectl:
    """Run kubectl against the cluster (skips the test when kubectl is not installed)."""
    if KUBECTL is None:
        pytest.skip("kubectl is not on PATH")
    config = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    cache = tmp_path / "kube-cache"

    def run(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        return subprocess.run(
            [KUBECTL, "--kubeconfig", str(config), "--cache-dir", str(cache), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
