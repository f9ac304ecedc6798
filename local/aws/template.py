"""Reading a SAM/CloudFormation template: YAML short-form tags, parameters, conditions and intrinsic functions.

The resolver is deliberately small: it evaluates what a SAM template of this project uses (``Ref``, ``Fn::Sub`` in both
forms, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::If`` with ``Conditions`` built from ``Fn::Equals``/``Not``/``And``/``Or``,
``Fn::Select``, ``Fn::Split``, ``Fn::FindInMap``, ``Fn::Base64``, ``Fn::GetAZs`` and the pseudo parameters) and raises
:class:`TemplateError` on anything else instead of passing an unresolved value on.
"""

from __future__ import annotations

import base64
import copy
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

NO_VALUE = object()
"""Marker for ``AWS::NoValue``: the enclosing key or list item is dropped."""

_SUB_VAR = re.compile(r"\$\{([^}]+)\}")


class TemplateError(ValueError):
    """The template uses a construct the harness cannot evaluate (names the construct)."""


class _CfnLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # libyaml's parser when built
    """SafeLoader that turns ``!Ref x`` into ``{"Ref": x}`` and ``!Sub``/``!GetAtt``/... into ``{"Fn::...": ...}``."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else ("Condition" if tag_suffix == "Condition" else f"Fn::{tag_suffix}")
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a template file (YAML or JSON) with CloudFormation short-form tags (a fresh copy each call; the parse
    is remembered per file content)."""
    text = path.read_text(encoding="utf-8")
    return copy.deepcopy(_parsed(str(path), text))


@functools.lru_cache(maxsize=16)
def _parsed(path: str, text: str) -> dict[str, Any]:
    data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass with tag constructors only
    if not isinstance(data, dict) or "Resources" not in data:
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources section)")
    return data


@dataclass
class Pseudo:
    """The pseudo parameters of one stack."""

    region: str
    account_id: str
    stack_name: str
    partition: str = "aws"

    @property
    def stack_id(self) -> str:
        return f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local"

    def as_refs(self) -> dict[str, Any]:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": self.stack_id,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
            "AWS::NotificationARNs": [],
        }


@dataclass
class Resolver:
    """Evaluates intrinsic functions against parameters, conditions and already-created resources.

    ``refs`` maps a logical id (or parameter / pseudo parameter) to its ``Ref`` value; ``attrs`` maps a logical id to
    its ``Fn::GetAtt`` attributes. Both are filled in while resources are created in dependency order.
    """

    pseudo: Pseudo
    parameters: dict[str, Any]
    mappings: dict[str, Any] = field(default_factory=dict)
    condition_defs: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _conditions: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.refs.update(self.pseudo.as_refs())
        self.refs.update(self.parameters)

    # -- conditions -------------------------------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self.condition_defs:
                raise TemplateError(f"unknown condition {name!r}")
            self._conditions[name] = bool(self._eval_condition(self.condition_defs[name]))
        return self._conditions[name]

    def _eval_condition(self, node: Any) -> bool:
        if isinstance(node, dict) and len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._eval_condition(arg[0])
            if key == "Fn::And":
                return all(self._eval_condition(v) for v in arg)
            if key == "Fn::Or":
                return any(self._eval_condition(v) for v in arg)
            if key == "Condition":
                return self.condition(arg)
        raise TemplateError(f"unsupported condition expression {node!r}")

    # -- values -----------------------------------------------------------------------------------------------------
    def resolve(self, node: Any) -> Any:
        """Return ``node`` with every intrinsic evaluated; ``AWS::NoValue`` entries are removed."""
        if isinstance(node, list):
            items = [self.resolve(v) for v in node]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            handler = self._intrinsics().get(key)
            if handler is not None:
                return handler(arg)
            if key.startswith("Fn::"):
                raise TemplateError(f"unsupported intrinsic function {key}")
        out: dict[str, Any] = {}
        for key, value in node.items():
            resolved = self.resolve(value)
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def _intrinsics(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::If": self._if,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": lambda arg: base64.b64encode(str(self.resolve(arg)).encode()).decode(),
            "Fn::GetAZs": lambda arg: [f"{self.resolve(arg) or self.pseudo.region}{z}" for z in "abc"],
            "Fn::Equals": lambda arg: self._eval_condition({"Fn::Equals": arg}),
        }

    def _ref(self, arg: Any) -> Any:
        name = self.resolve(arg)
        if name not in self.refs:
            raise TemplateError(f"Ref to unknown or not yet created {name!r}")
        return self.refs[name]

    def _get_att(self, arg: Any) -> Any:
        parts = arg.split(".", 1) if isinstance(arg, str) else [self.resolve(p) for p in arg]
        logical, attribute = parts[0], parts[1]
        try:
            return self.attrs[logical][attribute]
        except KeyError:
            raise TemplateError(f"Fn::GetAtt {logical}.{attribute} is not available") from None

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, local_vars = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, local_vars = arg, {}

        def replace(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in local_vars:
                return str(local_vars[expr])
            if expr in self.refs:
                return str(self._ref(expr))
            if "." in expr:
                return str(self._get_att(expr))
            raise TemplateError(f"Fn::Sub variable ${{{expr}}} is not defined")

        return _SUB_VAR.sub(replace, str(text))

    def _join(self, arg: Any) -> str:
        delimiter, values = arg
        return str(delimiter).join(str(v) for v in self.resolve(values))

    def _if(self, arg: Any) -> Any:
        name, when_true, when_false = arg
        return self.resolve(when_true if self.condition(name) else when_false)

    def _select(self, arg: Any) -> Any:
        index, values = arg
        return self.resolve(values)[int(self.resolve(index))]

    def _split(self, arg: Any) -> list[str]:
        delimiter, value = arg
        return str(self.resolve(value)).split(delimiter)

    def _find_in_map(self, arg: Any) -> Any:
        name, top, second = (self.resolve(v) for v in arg)
        try:
            return self.mappings[name][top][second]
        except KeyError:
            raise TemplateError(f"Fn::FindInMap {name}/{top}/{second} not found") from None


def references(node: Any) -> set[str]:
    """Logical ids (and parameters) a template fragment refers to through Ref, GetAtt and Sub."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value.split(".", 1)[0] if isinstance(value, str) else value[0]
                if isinstance(target, str):
                    found.add(target)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                local = set(value[1]) if isinstance(value, list) else set()
                if isinstance(value, list):
                    found |= references(value[1])
                for expr in _SUB_VAR.findall(str(text)):
                    if not expr.startswith("!") and expr not in local:
                        found.add(expr.split(".", 1)[0])
            else:
                found |= references(value)
    return found


def resolve_parameters(template: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values: overrides, else Default; list types split on commas. Missing values are an error."""
    values: dict[str, Any] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        if name in overrides:
            value: Any = overrides[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise TemplateError(f"parameter {name} has no Default and no override")
        kind = str(spec.get("Type", "String"))
        if (kind == "CommaDelimitedList" or kind.startswith("List<")) and isinstance(value, str):
            value = [v.strip() for v in value.split(",")] if value else []
        elif not isinstance(value, list):
            value = str(value)
        values[name] = value
    unknown = set(overrides) - set(values)
    if unknown:
        raise TemplateError(f"parameter overrides for undeclared parameters: {sorted(unknown)}")
    return values


GLOBALS_SECTION: dict[str, str] = {
    "AWS::Serverless::Function": "Function",
    "AWS::Serverless::StateMachine": "StateMachine",
    "AWS::Serverless::SimpleTable": "SimpleTable",
    "AWS::Serverless::LayerVersion": "LayerVersion",
}
"""Resource type -> the SAM ``Globals`` section merged into its properties."""


def creation_order(resources: Mapping[str, Any], globals_: Mapping[str, Any] | None = None) -> list[str]:
    """Logical ids sorted so that every resource comes after the resources it references (DependsOn included).

    References in the SAM ``Globals`` section a resource type merges (e.g. ``Globals.Function.Layers``) count as the
    resource's own.
    """
    # A SAM event source's generated resources (<Owner><EventId>: the rule) are made with their owner.
    generated = {
        f"{logical}{event_id}": logical
        for logical, body in resources.items()
        for event_id in ((body.get("Properties") or {}).get("Events") or {})
    }
    deps: dict[str, set[str]] = {}
    for logical, body in resources.items():
        section = (globals_ or {}).get(GLOBALS_SECTION.get(str(body.get("Type")), "")) or {}
        found = references(body.get("Properties", {})) | references(section)
        refs = {generated.get(r, r) for r in found} & set(resources)
        depends = body.get("DependsOn", [])
        refs |= {depends} if isinstance(depends, str) else set(depends)
        deps[logical] = refs - {logical}
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise TemplateError(f"circular dependency through {name}")
        visiting.add(name)
        for dep in sorted(deps.get(name, ())):
            visit(dep)
        visiting.discard(name)
        ordered.append(name)

    for logical in resources:
        visit(logical)
    return ordered
