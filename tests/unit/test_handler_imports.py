"""A handler's cold import loads only what its state uses.

``make bench`` (``bench startup``) times each handler's import against ``import boto3``; this keeps the gains from
silently regressing without timing anything: it names the heavy packages each handler may load on import and fails
when a handler's import pulls in one more (a top-level import of the renderer in a step that never renders, the
Kubernetes client in a gate that never reaches the cluster, the X-Ray SDK through an eager Tracer).

One interpreter imports what every handler shares (checked to load none of the heavy packages), then forks a child
per handler that imports ``app`` exactly as Lambda does (its directory first on ``sys.path``, the layer after it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import controlplane
import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
LAYER = Path(controlplane.__file__).resolve().parent.parent  # this checkout's, not an installed copy

HEAVY = (
    # third-party packages that cost a cold start tens of milliseconds or more
    "kubernetes",  # the official client: never, controlplane.kube.client is all the control plane needs (~0.5 s)
    "aws_xray_sdk",  # the Tracer's: built on the first traced call (observability.LazyTracer), ~0.5 s
    "cryptography",  # webhook serving certificates: loaded where one is read or made (kube.webhook_certs)
    "jsonschema",  # schema validation: loaded where objects are validated (controlplane.validate)
    "kubernetes_validate",
    "yaml",  # manifests and the stacks catalog
    # our own modules that bring the ones above or weigh as much
    "controlplane.validate",
    "controlplane.render",
    "controlplane.kube.client",
)

_RENDERS = {"yaml", "controlplane.render"}
_CLUSTER = {"controlplane.kube.client"}
NEEDS: dict[str, set[str]] = {
    # Handler -> the heavy modules its import loads: what its state uses on every invocation. The rest loads where it
    # is used: the schemas on the first validation (PlanRelease; ApplyRelease only for objects the plan did not
    # validate), the renderer and the client in the one function of a step module shared with a handler that needs
    # neither (RequestApproval's diff beside ApprovalTimedOut, DetectDrift's comparison beside HealDrift's polls).
    "plan": _RENDERS | {"controlplane.validate"},  # renders and validates; reads the version from EKS, never connects
    "apply": _RENDERS | _CLUSTER,
    "health": _CLUSTER,
    "smoke": _CLUSTER,
    "offhours_begin": _CLUSTER,
    "offhours_lock": _CLUSTER,
    "offhours_sleep": _CLUSTER,
    "offhours_wake": _CLUSTER,
    "stacks_advance": {"yaml"},  # the stacks catalog (YAML)
    "stacks_lock": {"yaml"},
    "stacks_start": {"yaml"},
}

_PROBE = """
import json, os, sys
heavy, handlers = json.loads(sys.argv[1]), sys.argv[2:]
# What every handler imports: the handler-facing Powertools pieces, the settings, the ledger table, the models.
import aws_lambda_powertools.utilities.typing, controlplane.observability, controlplane.settings
import controlplane.aws.table, controlplane.models.release
shared = sorted(name for name in heavy if name in sys.modules)
loaded = {}
for path in handlers:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        sys.path.insert(0, path)
        import app
        os.write(write, json.dumps(sorted(name for name in heavy if name in sys.modules)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        data = answer.read()
    _, status = os.waitpid(pid, 0)
    loaded[os.path.basename(path)] = json.loads(data) if status == 0 and data else f"import failed ({status})"
print(json.dumps({"shared": shared, "loaded": loaded}))
"""


@pytest.fixture(scope="module")
def imported() -> dict[str, object]:
    handlers = sorted(str(p.parent) for p in FUNCTIONS.glob("*/app.py"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_TRACE")}
    env.update(PYTHONPATH=str(LAYER), AWS_DEFAULT_REGION="us-east-1")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(HEAVY), *handlers],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_what_every_handler_shares_loads_no_heavy_package(imported: dict[str, object]) -> None:
    assert imported["shared"] == []


@pytest.mark.parametrize("handler", sorted(p.parent.name for p in FUNCTIONS.glob("*/app.py")))
def test_a_handler_imports_only_the_heavy_packages_its_state_uses(imported: dict[str, object], handler: str) -> None:
    loaded = imported["loaded"]
    assert isinstance(loaded, dict)
    assert loaded[handler] == sorted(NEEDS.get(handler, set()))


def test_the_table_names_only_real_handlers_and_heavy_packages() -> None:
    handlers = {p.parent.name for p in FUNCTIONS.glob("*/app.py")}
    assert set(NEEDS) <= handlers
    assert set().union(*NEEDS.values()) <= set(HEAVY)
