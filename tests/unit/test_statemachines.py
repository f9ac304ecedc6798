"""The state machines are valid ASL, wired to template.yaml, and their Retry/Catch name real error types.

Guards: a typo in a ``${Substitution}``, a Catch on an error class nobody raises, or an ASL structure error is
caught here with the file and state named, before `sam deploy` or moto ever sees it.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str
from controlplane import errors
from statelint.config import Config
from statelint.linter import Linter

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
MACHINES = sorted((REPO / "statemachines").glob("*.asl.json"))
SUBSTITUTION = re.compile(r"\$\{(\w+)\}")
ERROR_CLASSES = {name for name, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, Exception)}


def _template() -> dict[str, Any]:
    template, matches = decode_str((REPO / "template.yaml").read_text())
    assert not matches, f"template.yaml does not parse: {matches}"
    assert template is not None
    return dict(template)


def _substitutions_by_file() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for resource in _template().get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::StateMachine":
            props = resource["Properties"]
            found[Path(props["DefinitionUri"]).name] = dict(props.get("DefinitionSubstitutions", {}))
    return found


def _fake_value(key: str) -> str:
    if key.endswith("Arn"):
        if "Function" in key:
            return f"arn:aws:lambda:us-east-1:123456789012:function:{key}"
        if "StateMachine" in key:
            return f"arn:aws:states:us-east-1:123456789012:stateMachine:{key}"
        if "Topic" in key:
            return f"arn:aws:sns:us-east-1:123456789012:{key}"
        return f"arn:aws:dynamodb:us-east-1:123456789012:table/{key}"
    return key


def lint(text: str) -> list[str]:
    return [str(p) for p in Linter.validate(text, Config(set(), yaml=False, evaluate_jsonata=False))]


def _walk_states(states: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for name, state in states.items():
        out.append((name, state))
        for branch in state.get("Branches", []):
            out.extend(_walk_states(branch["States"]))
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                out.extend(_walk_states(state[key]["States"]))
    return out


def test_the_deploy_and_rollback_state_machines_exist() -> None:
    names = {p.name for p in MACHINES}
    assert {"deploy.asl.json", "rollback.asl.json"} <= names, names


@pytest.mark.parametrize("path", MACHINES, ids=lambda p: p.name)
def test_state_machine_is_valid_asl_once_substituted(path: Path) -> None:
    subs = _substitutions_by_file().get(path.name)
    assert subs is not None, f"{path.name} is not referenced by any AWS::Serverless::StateMachine in template.yaml"
    text = path.read_text()
    used = set(SUBSTITUTION.findall(text))
    assert used <= set(subs), f"{path.name}: substitutions not defined in template.yaml: {sorted(used - set(subs))}"
    assert set(subs) <= used, f"{path.name}: DefinitionSubstitutions never used: {sorted(set(subs) - used)}"
    for key in subs:
        if key.endswith("Arn"):
            assert "Function" not in key or key.endswith("FunctionArn"), key
    substituted = SUBSTITUTION.sub(lambda m: _fake_value(m.group(1)), text)
    problems = lint(substituted)
    assert not problems, f"{path.name}: " + "; ".join(problems)


@pytest.mark.parametrize("path", MACHINES, ids=lambda p: p.name)
def test_retry_and_catch_name_error_types_that_exist(path: Path) -> None:
    definition = json.loads(SUBSTITUTION.sub("x", path.read_text()))
    for name, state in _walk_states(definition["States"]):
        for clause in [*state.get("Retry", []), *state.get("Catch", [])]:
            for error in clause["ErrorEquals"]:
                known = (
                    error.startswith(("States.", "Lambda."))
                    or error in ERROR_CLASSES
                    or error
                    in {
                        "AWSLambdaException",
                        "SdkClientException",
                        "TooManyRequestsException",
                    }
                )
                assert known, f"{path.name}: state {name!r} matches unknown error {error!r}"


def test_the_linter_reports_a_broken_definition() -> None:
    broken = json.dumps({"StartAt": "Missing", "States": {"Only": {"Type": "Pass", "End": True}}})
    problems = lint(broken)
    assert any("Missing" in p for p in problems), problems
