"""Just enough of Kubernetes' protobuf encoding to read the self reviews kubectl sends as protobuf.

A protobuf body is ``k8s\\x00`` + a ``runtime.Unknown`` message (``typeMeta``=1, ``raw``=2, ...) whose ``raw`` is
the object's message. Only the fields of ``SelfSubjectAccessReview``, ``SelfSubjectRulesReview`` and
``SelfSubjectReview`` specs are decoded (the rest of the API stays JSON/YAML only, answered 415).
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> dict[int, list[bytes | int]]:
    """Field number -> values (bytes for length-delimited, int for varints); fixed-width fields are skipped."""
    out: dict[int, list[bytes | int]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.setdefault(number, []).append(value)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated length-delimited field")
            out.setdefault(number, []).append(data[pos : pos + length])
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _text(msg: dict[int, list[bytes | int]], number: int) -> str:
    values = msg.get(number) or []
    value = values[-1] if values else b""
    return value.decode() if isinstance(value, bytes) else ""


def _message(msg: dict[int, list[bytes | int]], number: int) -> dict[int, list[bytes | int]] | None:
    values = msg.get(number) or []
    value = values[-1] if values else None
    return fields(value) if isinstance(value, bytes) else None


def unwrap(body: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, raw object message) of an enveloped protobuf body."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    unknown = fields(body[len(MAGIC) :])
    type_meta = _message(unknown, 1) or {}
    raw = (unknown.get(2) or [b""])[-1]
    return _text(type_meta, 1), _text(type_meta, 2), raw if isinstance(raw, bytes) else b""


_RESOURCE_ATTRS = ("namespace", "verb", "group", "version", "resource", "subresource", "name")


def review_body(body: bytes) -> dict[str, Any]:
    """A self review sent as protobuf, as the JSON object it stands for."""
    api_version, kind, raw = unwrap(body)
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {}}
    spec_msg = _message(fields(raw), 2)
    if kind == "SelfSubjectReview" or spec_msg is None:
        return obj
    if kind == "SelfSubjectRulesReview":
        obj["spec"] = {"namespace": _text(spec_msg, 1)}
        return obj
    spec: dict[str, Any] = {}
    res = _message(spec_msg, 1)
    if res is not None:
        spec["resourceAttributes"] = {k: _text(res, i) for i, k in enumerate(_RESOURCE_ATTRS, 1) if _text(res, i)}
    non = _message(spec_msg, 2)
    if non is not None:
        spec["nonResourceAttributes"] = {"path": _text(non, 1), "verb": _text(non, 2)}
    obj["spec"] = spec
    return obj
