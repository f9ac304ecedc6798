"""Step Functions matches error names exactly: every name a Retry/Catch lists is raised by our code, every error
class our code raises is retried or caught where intended, and the transient retry waits out an outage.

Lambda reports the exception's class name as ``errorType``; ``ErrorEquals`` compares it as a string, with no
notion of subclasses. A Retry on ``RetryableError`` therefore matches nothing (only subclasses are raised), and a
new subclass nobody lists is silently not retried. This module proves neither can happen.
"""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import controlplane
import pytest
from controlplane.errors import ControlPlaneError, RetryableError

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "layers" / "controlplane" / "controlplane"
MACHINES = sorted((REPO / "statemachines").glob("*.asl.json"))
SUBSTITUTION = re.compile(r"\$\{(\w+)\}")

OUTAGE_TOLERANCE_S = 600
"""The longest API-server or AWS outage every step waits out (issue 12: "up to 10 minutes")."""
TRANSIENT = frozenset({"KubernetesTransientError", "AwsThrottledError"})
# Lambda's own invocation failures (the service, not our code): Step Functions names them ``Lambda.*``.
LAMBDA_SERVICE = frozenset(
    {
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    }
)
# Retryable classes that are deliberately not retried by a Retry, with the reason.
NOT_RETRIED = {
    "LockHeldError": "raised by off-hours only once its own wait for the lock (a Wait loop) is over: caught, ends it",
}
# Lambda tasks without the outage retry, with the reason.
WITHOUT_OUTAGE_RETRY = {
    "RequestApproval": "waitForTaskToken: a retry would send a second approval request; failures end in ReleaseLock",
}


def _error_classes() -> dict[str, type[ControlPlaneError]]:
    for module in pkgutil.walk_packages(controlplane.__path__, "controlplane."):
        importlib.import_module(module.name)
    found: dict[str, type[ControlPlaneError]] = {}
    pending: list[type[ControlPlaneError]] = [ControlPlaneError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


ERRORS = _error_classes()


def _constructed_names() -> set[str]:
    """Names of error classes our code constructs (``raise X(...)``, ``return X(...)`` for a caller to raise)."""
    names: set[str] = set()
    for path in [*PACKAGE.rglob("*.py"), *(REPO / "functions").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name in ERRORS:
                    names.add(name)
    return names


RAISED = _constructed_names()


def _states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from _states(branch["States"])
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from _states(state[key]["States"])


def _machine(path: Path) -> dict[str, Any]:
    definition: dict[str, Any] = json.loads(SUBSTITUTION.sub("x", path.read_text()))
    return definition


def _tasks() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in MACHINES:
        for name, state in _states(_machine(path)["States"]):
            if state["Type"] == "Task":
                yield path.name, name, state


def total_wait_s(retrier: dict[str, Any]) -> float:
    """Seconds a Retry waits over all its attempts (no jitter): interval * rate^n, each capped at MaxDelaySeconds."""
    interval, rate = float(retrier.get("IntervalSeconds", 1)), float(retrier.get("BackoffRate", 2.0))
    cap = float(retrier.get("MaxDelaySeconds", float("inf")))
    return sum(min(interval * rate**n, cap) for n in range(int(retrier.get("MaxAttempts", 3))))


def test_the_scan_finds_what_the_code_raises() -> None:
    # guards the guard: these are raised in well-known places, and a base class never is
    assert {"KubernetesTransientError", "AwsThrottledError", "RolloutFailedError", "PlatformNotReadyError"} <= RAISED
    assert "RetryableError" not in RAISED
    assert "PermanentError" in ERRORS


@pytest.mark.parametrize("path", MACHINES, ids=lambda p: p.name)
def test_every_error_a_retry_or_catch_names_is_raised_by_our_code(path: Path) -> None:
    for name, state in _states(_machine(path)["States"]):
        for clause in [*state.get("Retry", []), *state.get("Catch", [])]:
            for error in clause["ErrorEquals"]:
                if error.startswith("States.") or error in LAMBDA_SERVICE:
                    continue
                assert error in ERRORS, f"{path.name}: {name} names {error!r}, which is not an error class of ours"
                assert error in RAISED, (
                    f"{path.name}: {name} names {error!r}, which no code raises (Step Functions matches exact "
                    "class names, never a base class)"
                )


def test_every_raised_retryable_error_is_retried_somewhere() -> None:
    retried = {e for _, _, state in _tasks() for r in state.get("Retry", []) for e in r["ErrorEquals"]}
    for name in sorted(RAISED):
        if issubclass(ERRORS[name], RetryableError) and name not in NOT_RETRIED:
            assert name in retried, f"{name} is retryable and raised, but no Retry names it"


def test_every_task_catches_every_error_so_the_lock_is_released() -> None:
    for machine, name, state in _tasks():
        caught = {e for c in state.get("Catch", []) for e in c["ErrorEquals"]}
        assert "States.ALL" in caught, f"{machine}: {name} lets an error end the execution without its cleanup"


def test_every_lambda_task_waits_out_an_outage() -> None:
    for machine, name, state in _tasks():
        if name in WITHOUT_OUTAGE_RETRY:
            continue
        [retrier] = [r for r in state.get("Retry", []) if TRANSIENT & set(r["ErrorEquals"])]
        assert set(retrier["ErrorEquals"]) == TRANSIENT, f"{machine}: {name}"
        assert "JitterStrategy" not in retrier, f"{machine}: {name}: jitter would shorten the outage it waits out"
        waited = total_wait_s(retrier)
        assert waited >= OUTAGE_TOLERANCE_S, f"{machine}: {name} gives up after {waited:.0f}s of outage"
        assert retrier["MaxDelaySeconds"] <= 60, f"{machine}: {name}: a recovered API waits too long to be noticed"


def test_total_wait_follows_step_functions_back_off() -> None:
    assert total_wait_s({"IntervalSeconds": 2, "BackoffRate": 2.0, "MaxAttempts": 3}) == 2 + 4 + 8
    assert total_wait_s({"IntervalSeconds": 5, "BackoffRate": 2.0, "MaxAttempts": 6, "MaxDelaySeconds": 30}) == (
        5 + 10 + 20 + 30 + 30 + 30
    )
