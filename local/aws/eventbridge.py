"""EventBridge target input: the event envelope, ``Input``, ``InputPath`` and ``InputTransformer``, as EventBridge does.

Pattern matching is not here: the harness asks moto's own matcher (``events:TestEventPattern``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


class InputTransformError(ValueError):
    """A target's InputPath/InputPathsMap/InputTemplate cannot be applied to the event."""


def envelope(entry: Mapping[str, Any], *, account: str, region: str, time: datetime) -> dict[str, Any]:
    """The event a rule sees for one ``PutEvents`` entry (``Detail`` parsed, ``Time`` defaulted to ``time``)."""
    when = entry.get("Time") or time
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": account,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(when, datetime) else str(when),
        "region": region,
        "resources": list(entry.get("Resources", [])),
        "detail": json.loads(entry.get("Detail") or "{}"),
    }


def json_path(event: Any, path: str) -> Any:
    """Evaluate the simple JSONPath EventBridge accepts (``$``, ``$.a.b``, ``$.a[0]``); missing → KeyError."""
    if path == "$":
        return event
    if not path.startswith("$."):
        raise InputTransformError(f"unsupported JSONPath {path!r}")
    node = event
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path[2:]):
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    return node


def target_input(target: Mapping[str, Any], event: Mapping[str, Any], *, rule_name: str, rule_arn: str) -> str:
    """The input string EventBridge sends to ``target`` for ``event`` (its Input, InputPath or InputTransformer)."""
    if "Input" in target and target["Input"] is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        try:
            return json.dumps(json_path(event, target["InputPath"]))
        except (KeyError, IndexError, TypeError):
            return "null"
    transformer = target.get("InputTransformer")
    if transformer:
        return transform(transformer, event, rule_name=rule_name, rule_arn=rule_arn)
    return json.dumps(event)


def transform(transformer: Mapping[str, Any], event: Mapping[str, Any], *, rule_name: str, rule_arn: str) -> str:
    """Apply an InputTransformer.

    A template that is not a JSON object/array is text and values go in as text. Otherwise each ``<var>`` in the
    template is replaced by the value its InputPathsMap path selects. Inside a JSON string
    literal the value goes in as text (strings without quotes); outside one, it goes in as JSON (strings quoted).
    A path that selects nothing yields ``null`` outside quotes and empty text inside (EventBridge drops the
    variable; ``null`` keeps a JSON template valid). The predefined variables
    ``aws.events.rule-arn``, ``aws.events.rule-name``, ``aws.events.event``, ``aws.events.event.json`` and
    ``aws.events.event.ingestion-time`` are available (``aws.events.event`` without ``detail``).
    """
    paths: Mapping[str, str] = transformer.get("InputPathsMap") or {}
    template = str(transformer.get("InputTemplate", ""))
    values: dict[str, Any] = {}
    for name, path in paths.items():
        try:
            values[name] = json_path(event, path)
        except (KeyError, IndexError, TypeError):
            values[name] = None
    values.setdefault("aws.events.rule-arn", rule_arn)
    values.setdefault("aws.events.rule-name", rule_name)
    values.setdefault("aws.events.event.ingestion-time", event.get("time"))
    values.setdefault("aws.events.event", {k: v for k, v in event.items() if k != "detail"})
    values.setdefault("aws.events.event.json", event)

    out: list[str] = []
    # A template that is not a JSON object or array is text: every value goes in as text.
    plain_text = template.lstrip()[:1] not in {"{", "["}
    in_string = plain_text
    i = 0
    while i < len(template):
        char = template[i]
        match = _PLACEHOLDER.match(template, i) if char == "<" else None
        if match and match.group(1) in values:
            value = values[match.group(1)]
            if in_string:
                text = value if isinstance(value, str) else ("" if value is None else json.dumps(value))
                out.append(text if plain_text else json.dumps(text)[1:-1])
            else:
                out.append(json.dumps(value))
            i = match.end()
            continue
        if char == "\\" and in_string and not plain_text:
            out.append(template[i : i + 2])
            i += 2
            continue
        if char == '"' and not plain_text:
            in_string = not in_string
        out.append(char)
        i += 1
    return "".join(out)
