"""Label and field selectors: the ``labelSelector``/``fieldSelector`` query grammar of ``k8s.io/apimachinery``.

Label selectors support ``=``, ``==``, ``!=``, ``in (...)``, ``notin (...)``, ``key`` (exists), ``!key`` (does not
exist) and ``>``/``<`` on integer values, comma-separated (all must hold). Field selectors support ``=``, ``==`` and
``!=`` on dotted field paths. :func:`label_selector_to_string` renders a structured ``metav1.LabelSelector`` the way
``metav1.LabelSelectorAsSelector(...).String()`` does (used by ``/scale`` ``status.selector``).

This is the emulator's one home for selector matching: :func:`selector_matches` (a structured
``metav1.LabelSelector``), :func:`map_selector_matches` (a Service's plain map) and :func:`matches` (parsed query
requirements) are used by the API server, validation, the controllers and the service proxy. (The control plane's
``controlplane.kube.health`` keeps its own small matcher: ``layers/`` may not import the local cloud.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    """The selector string does not parse (the server answers 400 BadRequest)."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if not present or value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.op == "gt" else number < bound

    def __str__(self) -> str:
        if self.op in ("=", "!="):
            return f"{self.key}{self.op}{self.values[0]}"
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(sorted(self.values))})"
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return f"!{self.key}"
        return f"{self.key}{'>' if self.op == 'gt' else '<'}{self.values[0]}"


_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|>|<|[^\s!=(),<>]+)")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:  # pragma: no cover - the pattern matches any non-space character
            raise SelectorError(f"unable to parse requirement: unexpected character at {pos}")
        out.append(m.group(1))
        pos = m.end()
    return out


def _check_key(key: str) -> str:
    if not _KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise SelectorError(
            f'unable to parse requirement: <nil>: Invalid value: "{key}": name part must consist of alphanumeric '
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )
    return key


def _check_value(value: str) -> str:
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError(
            f'unable to parse requirement: values[0][key]: Invalid value: "{value}": a valid label must be an empty '
            "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character"
        )
    return value


class _Parser:
    """A cursor over the tokens of one ``labelSelector`` string (apimachinery's labels.Parser, reduced)."""

    def __init__(self, toks: list[str]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self, offset: int = 0) -> str | None:
        return self.toks[self.i + offset] if self.i + offset < len(self.toks) else None

    def requirement(self) -> Requirement:
        tok = self.toks[self.i]
        if tok == "!":
            key = self.peek(1)
            if key is None or key in ("=", "==", "!=", "(", ")", ","):
                raise SelectorError("unable to parse requirement: found '!', expected: identifier")
            self.i += 2
            return Requirement(_check_key(key), "!")
        key = _check_key(tok)
        op = self.peek(1)
        if op is None or op == ",":
            self.i += 1
            return Requirement(key, "exists")
        if op in ("=", "==", "!="):
            return self._equality(key, "!=" if op == "!=" else "=")
        if op in (">", "<"):
            value = self.peek(2)
            if value is None or not value.lstrip("-").isdigit():
                raise SelectorError(
                    f"unable to parse requirement: for 'gt', 'lt' operators, exactly one "
                    f"integer value is required, got {value!r}"
                )
            self.i += 3
            return Requirement(key, "gt" if op == ">" else "lt", (value,))
        if op.lower() in ("in", "notin"):
            return self._set(key, op.lower())
        raise SelectorError(f"unable to parse requirement: found '{op}', expected: in, notin, =, ==, !=, gt, lt")

    def _equality(self, key: str, op: str) -> Requirement:
        value = self.peek(2)
        if value is None or value == ",":
            self.i += 2
            return Requirement(key, op, ("",))
        if value in ("(", ")", "=", "!=", "=="):
            raise SelectorError(f"unable to parse requirement: found '{value}', expected: identifier")
        self.i += 3
        return Requirement(key, op, (_check_value(value),))

    def _set(self, key: str, op: str) -> Requirement:
        if self.peek(2) != "(":
            raise SelectorError(f"unable to parse requirement: found '{self.peek(2)}', expected: '('")
        self.i += 3
        values: list[str] = []
        expect_value = True
        while True:
            t = self.peek()
            if t is None:
                raise SelectorError("unable to parse requirement: found '', expected: ')'")
            self.i += 1
            if t == ")":
                if expect_value and values:
                    values.append("")
                break
            if t == ",":
                if expect_value:
                    values.append("")
                expect_value = True
                continue
            if not expect_value:
                raise SelectorError(f"unable to parse requirement: found '{t}', expected: ',' or ')'")
            values.append(_check_value(t))
            expect_value = False
        if not values:
            raise SelectorError("unable to parse requirement: for 'in', 'notin' operators, values set can't be empty")
        return Requirement(key, op, tuple(values))

    def separator(self) -> None:
        if self.i >= len(self.toks):
            return
        if self.toks[self.i] != ",":
            raise SelectorError(f"unable to parse requirement: found '{self.toks[self.i]}', expected: ','")
        self.i += 1
        if self.i == len(self.toks):
            raise SelectorError("unable to parse requirement: found '', expected: identifier")


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse a ``labelSelector`` query value; an empty selector matches everything."""
    if not text or not text.strip():
        return []
    parser = _Parser(_tokens(text))
    reqs: list[Requirement] = []
    while parser.i < len(parser.toks):
        reqs.append(parser.requirement())
        parser.separator()
    return reqs


def matches(reqs: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    lbls = labels or {}
    return all(r.matches(lbls) for r in reqs)


def label_selector_requirements(selector: Mapping[str, Any] | None) -> list[Requirement] | None:
    """A structured ``metav1.LabelSelector`` as requirements; ``None`` for a nil selector (matches nothing)."""
    if selector is None:
        return None
    reqs = [Requirement(k, "=", (str(v),)) for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op = str(expr.get("operator", ""))
        key = str(expr.get("key", ""))
        values = tuple(str(v) for v in expr.get("values") or [])
        if op == "In":
            reqs.append(Requirement(key, "in", values))
        elif op == "NotIn":
            reqs.append(Requirement(key, "notin", values))
        elif op == "Exists":
            reqs.append(Requirement(key, "exists"))
        elif op == "DoesNotExist":
            reqs.append(Requirement(key, "!"))
        else:
            raise SelectorError(f'"{op}" is not a valid label selector operator')
    return reqs


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """``metav1.LabelSelectorAsSelector(selector).Matches(labels)``: an empty selector matches everything, ``None``
    matches nothing, and so does a selector that does not convert (an unknown operator)."""
    try:
        reqs = label_selector_requirements(selector)
    except SelectorError:
        return False
    return reqs is not None and matches(reqs, {str(k): str(v) for k, v in (labels or {}).items()})


def map_selector_matches(selector: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> bool:
    """A Service-style selector (a plain map); empty or missing selects nothing, as for a Service's endpoints."""
    if not selector:
        return False
    return all((labels or {}).get(k) == v for k, v in selector.items())


def label_selector_to_string(selector: Mapping[str, Any] | None) -> str:
    """``metav1.LabelSelectorAsSelector(sel).String()``: requirements sorted by key."""
    reqs = label_selector_requirements(selector)
    if not reqs:
        return ""
    return ",".join(str(r) for r in sorted(reqs, key=lambda r: r.key))


# ---------------------------------------------------------------------------------------------------- fields


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        actual = field_value(obj, self.field)
        return (actual == self.value) if self.op == "=" else (actual != self.value)


FIELD_PATHS = {"source": "source.component"}
"""Field labels that name another path than their own: core/v1 Events select ``source`` by ``source.component``."""


def field_value(obj: Mapping[str, Any], path: str) -> str:
    path = FIELD_PATHS.get(path, path)
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None, supported: frozenset[str] | None = None) -> list[FieldRequirement]:
    """Parse a ``fieldSelector``; ``supported`` (when given) lists the field labels the resource allows."""
    if not text or not text.strip():
        return []
    reqs: list[FieldRequirement] = []
    for raw in _split_unescaped(text):
        part = raw.strip()
        if not part:
            continue
        op = next((o for o in ("!=", "==", "=") if o in part), None)
        if op is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        fld, value = part.split(op, 1)
        norm = "!=" if op == "!=" else "="
        fld = fld.strip()
        if supported is not None and fld not in supported:
            raise SelectorError(f"field label not supported: {fld}")
        reqs.append(FieldRequirement(fld, norm, value.strip().replace("\\,", ",").replace("\\=", "=")))
    return reqs


def _split_unescaped(text: str) -> list[str]:
    parts: list[str] = []
    cur = []
    escaped = False
    for ch in text:
        if escaped:
            cur.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def fields_match(reqs: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all(r.matches(obj) for r in reqs)


# ---------------------------------------------------------------------------------------------------- nodes

_NODE_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!", "Gt": "gt", "Lt": "lt"}


def _node_requirement(expr: Mapping[str, Any]) -> Requirement | None:
    """A ``NodeSelectorRequirement``; ``None`` when it cannot match anything (unknown operator, bad Gt/Lt value)."""
    op = _NODE_OPERATORS.get(str(expr.get("operator", "")))
    values = tuple(str(v) for v in expr.get("values") or [])
    if op is None or (op in ("gt", "lt") and (len(values) != 1 or not values[0].lstrip("-").isdigit())):
        return None
    return Requirement(str(expr.get("key", "")), op, values)


def node_selector_term_matches(term: Mapping[str, Any], labels: Mapping[str, str], name: str) -> bool:
    """One ``NodeSelectorTerm``: all its matchExpressions (on labels) and matchFields (``metadata.name``) hold; a
    term with neither matches no node (``nodeaffinity.NodeSelectorTerm`` semantics)."""
    expressions = list(term.get("matchExpressions") or [])
    fields = list(term.get("matchFields") or [])
    if not expressions and not fields:
        return False
    for expr in expressions:
        req = _node_requirement(expr)
        if req is None or not req.matches(labels):
            return False
    for expr in fields:
        req = _node_requirement(expr)
        if req is None or expr.get("key") != "metadata.name" or not req.matches({"metadata.name": name}):
            return False
    return True


def node_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str], name: str) -> bool:
    """A ``NodeSelector`` (required node affinity): any of its terms matches; ``None`` places no constraint."""
    if selector is None:
        return True
    return any(node_selector_term_matches(t, labels, name) for t in selector.get("nodeSelectorTerms") or [])
