"""API emulator throughput: GET and server-side apply PATCH with the official python client over HTTPS.

``python -m bench cluster``. The emulator runs in its own process (``python -m local.cluster``, clock still) so the
client and the server each get a core, as a Lambda and EKS would; the client reuses keep-alive connections (one
TLS handshake per connection, not per request). Every SSA request changes a value, so each one is a real write
(validation, managedFields, store, watch event, controller reconcile). Target: >= 500 requests/s each on 2 cores.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient

ROOT = Path(__file__).resolve().parent.parent
TARGET = 500.0
GETS = 3000
APPLIES = 1500


def _start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    kubeconfig = workdir / "kubeconfig"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.cluster", "--kubeconfig", str(kubeconfig), "--realtime-factor", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not kubeconfig.exists() or not kubeconfig.read_text().strip():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the emulator did not start")
        time.sleep(0.05)
    config: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    return proc, config


def _api(config: dict[str, Any], workdir: Path) -> client.ApiClient:
    cluster = config["clusters"][0]["cluster"]
    ca = workdir / "ca.crt"
    ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    cfg = client.Configuration(host=cluster["server"])
    cfg.ssl_ca_cert = str(ca)
    cfg.api_key = {"authorization": config["users"][0]["user"]["token"]}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(cfg)


def _run(threads: int, total: int, work: Callable[[int, int], None]) -> float:
    """``total`` calls of ``work(thread, i)`` spread over ``threads`` threads; returns requests per second."""
    per = total // threads
    errors: list[BaseException] = []

    def loop(t: int) -> None:
        try:
            for i in range(per):
                work(t, i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return per * threads / elapsed


def _config_map(name: str, value: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "bench"}},
        "data": {"value": str(value), "static": "x" * 200},
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        workdir = Path(tmp)
        proc, config = _start_server(workdir)
        try:
            api = _api(config, workdir)
            core = client.CoreV1Api(api)
            configmaps = DynamicClient(api).resources.get(api_version="v1", kind="ConfigMap")
            for t in range(4):
                configmaps.server_side_apply(body=_config_map(f"bench-{t}", 0), field_manager="bench")
            for _ in range(50):  # warm connections
                core.read_namespaced_config_map("bench-0", "default")

            rows: list[tuple[str, int, int, float]] = []
            for threads in (1, 4):
                rate = _run(threads, GETS, lambda t, _i: core.read_namespaced_config_map(f"bench-{t}", "default"))
                rows.append(("GET configmap (typed client)", threads, GETS, rate))
            counter = [0]
            lock = threading.Lock()

            def apply(t: int, _i: int) -> None:
                with lock:
                    counter[0] += 1
                    value = counter[0]
                configmaps.server_side_apply(body=_config_map(f"bench-{t}", value), field_manager="bench")

            for threads in (1, 4):
                rate = _run(threads, APPLIES, apply)
                rows.append(("SSA PATCH configmap (DynamicClient)", threads, APPLIES, rate))
            api.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    print(f"{'operation':<38} {'threads':>7} {'requests':>8} {'req/s':>8} {'target':>7}  ok")
    for name, threads, total, rate in rows:
        ok = "yes" if rate >= TARGET else "NO"
        print(f"{name:<38} {threads:>7} {total:>8} {rate:>8.0f} {TARGET:>7.0f}  {ok}")


if __name__ == "__main__":
    main()
