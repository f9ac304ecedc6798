"""The README's state -> function -> step table is the map a maintainer reads: it must match template.yaml, the
state machines and the handlers, row by row, and name every state that runs a function."""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(
    r"^\| (?P<states>[^|(]+?) ?(?:\((?P<machines>[^)]*)\))? \| `(?P<folder>functions/\w+)`"
    r"(?: \(`(?P<handler>app\.\w+)`\))? \| `steps\.(?P<step>[\w.]+)` \|$"
)
MACHINES = ("deploy", "rollback", "offhours", "provision", "drift")


def readme_rows() -> list[dict[str, str]]:
    rows = [m.groupdict() for line in (ROOT / "README.md").read_text().splitlines() if (m := ROW.match(line))]
    assert len(rows) > 20, "the README's state table is missing or no longer parses"
    return rows


def template_functions() -> dict[str, tuple[str, str]]:
    """Logical id -> (CodeUri, Handler) of every function in template.yaml (read as text: it has CFN tags)."""
    found: dict[str, tuple[str, str]] = {}
    current, code = "", ""
    for line in (ROOT / "template.yaml").read_text().splitlines():
        if m := re.match(r"^  (\w+):\s*$", line):
            current, code = m[1], ""
        elif m := re.match(r"^\s+CodeUri: (functions/\w+)", line):
            code = m[1]
        elif (m := re.match(r"^\s+Handler: (\S+)", line)) and code:
            found[current] = (code, m[1])
    return found


def state_functions() -> dict[tuple[str, str], set[str]]:
    """(state machine, state name) -> the function logical ids its task invokes."""
    out: dict[tuple[str, str], set[str]] = {}
    for machine in MACHINES:
        states = json.loads((ROOT / "statemachines" / f"{machine}.asl.json").read_text())["States"]
        for name, state in states.items():
            for arn in re.findall(r"\$\{(\w+)Arn\}", json.dumps(state)):
                out.setdefault((machine, name), set()).add(arn)
    return out


def row_states(row: dict[str, str]) -> set[tuple[str, str]]:
    """The (state machine, state) pairs a row names; a row naming no machine means every machine with the state."""
    names = set(re.findall(r"\b[A-Z]\w+\b", row["states"]))
    machines = set(re.findall(r"\w+", row["machines"] or "")) & set(MACHINES) or set(MACHINES)
    return {(m, n) for m in machines for n in names}


def called_steps(folder: str, handler: str) -> set[str]:
    """``module.function`` of every controlplane step the handler function calls."""
    tree = ast.parse((ROOT / folder / "app.py").read_text())
    imported: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("controlplane.steps"):
            for alias in node.names:
                module = node.module.removeprefix("controlplane.steps").lstrip(".")
                imported[alias.asname or alias.name] = f"{module}.{alias.name}" if module else alias.name
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == handler)
    calls: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported:
            calls.add(imported[node.func.id])
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in imported
        ):
            calls.add(f"{imported[node.func.value.id]}.{node.func.attr}")
    return calls


def test_every_readme_row_names_the_folder_handler_and_step_that_serve_its_states() -> None:
    functions, states = template_functions(), state_functions()
    for row in readme_rows():
        handler = row["handler"] or "app.handler"
        module, _, function = row["step"].rpartition(".")
        assert callable(getattr(importlib.import_module(f"controlplane.steps.{module}"), function))
        assert row["step"] in called_steps(row["folder"], handler.removeprefix("app.")), row
        named = [key for key in row_states(row) if key in states]
        assert named or not re.search(r"[A-Z]", row["states"]), f"{row['states']}: no such state"
        for key in named:
            served = {functions[fn] for fn in states[key] if fn in functions}
            assert (row["folder"], handler) in served, f"{key}: README says {row['folder']} {handler}, not {served}"


def test_every_state_that_runs_a_function_is_in_the_readme_table() -> None:
    named = {key for row in readme_rows() for key in row_states(row)}
    functions = template_functions()
    running = {key for key, fns in state_functions().items() if fns & functions.keys()}
    assert len(running) > 20
    assert running <= named, f"states missing from the README table: {sorted(running - named)}"
