"""One loopback HTTP endpoint for AWS API calls from other processes (``make up``): the aws CLI, boto3, trialstudio.

Why not moto's ``ThreadedMotoServer``: its requests go straight to moto's backends, past everything this local cloud
adds on the botocore path (IAM authorization of every call, AWS's request limits, fault injection, the ECR events and
the other hooks), so another process would meet a more lenient cloud than the tests do. This gateway instead

1. verifies the request's Signature Version 4 against credentials moto issued (``sts:AssumeRole`` sessions,
   ``iam:CreateAccessKey`` keys; the credential scope names the service and region; ``X-Amz-Date`` within 5 minutes;
   a temporary key needs its session token) — the harness's own administrator key is refused: another process is
   never the administrator;
2. decodes the call (operation and parameters) from the wire with botocore's service model, and
3. makes the same call in-process with a client signed by the caller's credentials, so it is authorized and served
   exactly as a call from inside the cloud; the answer (or the service's error) is encoded back.

Served protocols: ``json`` (DynamoDB, Step Functions, EventBridge, CloudWatch Logs, KMS, ECR, ...) and
``rest-json`` (EKS, Lambda, Scheduler, ...). ``query`` and ``rest-xml`` services (STS, CloudFormation, IAM, SNS, S3)
are answered ``400 UnsupportedProtocol``: stricter than AWS, listed in local/aws/README.md. Blob parameters and
responses are base64 on the wire, as AWS's JSON protocols send them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import OperationModel, Shape

from local.aws.authz import HARNESS_ACCESS_KEY, UnmappedOperationError, new_session
from local.aws.function_urls import SignatureError, verify_sigv4
from local.aws.seams import signing_identity

SIGNING_TO_SERVICE = {"states": "stepfunctions", "monitoring": "cloudwatch", "execute-api": "apigateway"}
SERVED_PROTOCOLS = frozenset({"json", "rest-json"})


class GatewayError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Call:
    service: str
    operation: OperationModel
    params: dict[str, Any]


def _scope(headers: Mapping[str, str]) -> tuple[str, str]:
    """(region, signing name) from the Authorization header's credential scope."""
    match = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request", headers.get("authorization", ""))
    if match is None:
        raise GatewayError(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
    return match.group(1), match.group(2)


# -- decoding ----------------------------------------------------------------------------------------------------------
def _decode_value(shape: Shape, value: Any) -> Any:
    """A JSON-protocol wire value as the Python value botocore's serializer expects."""
    if shape.type_name == "structure" and isinstance(value, dict):
        members = shape.members  # type: ignore[attr-defined]
        return {k: _decode_value(members[k], v) if k in members else v for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_decode_value(shape.member, v) for v in value]  # type: ignore[attr-defined]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _decode_value(shape.value, v) for k, v in value.items()}  # type: ignore[attr-defined]
    if shape.type_name == "blob" and isinstance(value, str):
        return base64.b64decode(value)
    if shape.type_name == "timestamp" and isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return value


def _json_call(model: Any, headers: Mapping[str, str], body: bytes) -> tuple[OperationModel, dict[str, Any]]:
    target = headers.get("x-amz-target", "")
    name = target.rpartition(".")[2]
    if name not in model.operation_names:
        raise GatewayError(400, "UnknownOperationException", f"unknown operation {target!r}")
    operation = model.operation_model(name)
    params = json.loads(body or b"{}")
    if operation.input_shape is not None:
        params = _decode_value(operation.input_shape, params)
    return operation, params


def _uri_pattern(uri: str) -> re.Pattern[str]:
    path = uri.split("?", 1)[0]
    pattern = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", re.escape(path))
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", pattern)
    return re.compile(f"^{pattern}$")


def _rest_json_call(  # noqa: PLR0917 - the parts of one HTTP request
    model: Any, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
) -> tuple[OperationModel, dict[str, Any]]:
    for name in model.operation_names:
        operation = model.operation_model(name)
        match = (
            _uri_pattern(operation.http["requestUri"]).match(path) if operation.http.get("method") == method else None
        )
        if match is not None:
            labels = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
            wire = _Wire(labels, urllib.parse.parse_qs(query), headers, json.loads(body) if body else {})
            members = operation.input_shape.members if operation.input_shape is not None else {}
            return operation, {m: v for m, shape in members.items() if (v := wire.value(m, shape)) is not None}
    raise GatewayError(404, "UnknownOperationException", f"no operation serves {method} {path}")


@dataclass(frozen=True)
class _Wire:
    """Where a REST-JSON request carries its members: URI labels, query string, headers, the JSON body."""

    labels: Mapping[str, str]
    queries: Mapping[str, list[str]]
    headers: Mapping[str, str]
    document: Mapping[str, Any]

    def value(self, member: str, shape: Shape) -> Any:
        where, wire = shape.serialization.get("location"), shape.serialization.get("name", member)
        if where == "uri":
            return self.labels.get(wire)
        if where == "querystring" and wire in self.queries:
            values = self.queries[wire]
            return values if shape.type_name == "list" else _scalar(shape, values[0])
        if where == "header":
            return self.headers.get(wire.lower())
        if where is None and member in self.document:
            return _decode_value(shape, self.document[member])
        return None


def _scalar(shape: Shape, text: str) -> Any:
    if shape.type_name in {"integer", "long"}:
        return int(text)
    if shape.type_name == "boolean":
        return text == "true"
    return text


# -- encoding ----------------------------------------------------------------------------------------------------------
def _encode(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if hasattr(value, "read"):  # a streaming body
        return base64.b64encode(value.read()).decode()
    return value


# -- the server --------------------------------------------------------------------------------------------------------
class Gateway:
    """The endpoint: ``http://127.0.0.1:<port>``; calls are made in-process with ``session_for(credentials)``."""

    def __init__(self, *, region: str, port: int = 0, session_for: Callable[..., boto3.Session] | None = None) -> None:
        self.region = region
        self._sessions: dict[str, boto3.Session] = {}
        self._lock = threading.Lock()
        self._session_for = session_for or new_session
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-gateway", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _session(self, access_key: str, secret: str, token: str | None) -> boto3.Session:
        with self._lock:
            session = self._sessions.get(access_key)
            if session is None:
                session = self._session_for(
                    aws_access_key_id=access_key,
                    aws_secret_access_key=secret,
                    aws_session_token=token,
                    region_name=self.region,
                )
                self._sessions[access_key] = session
            return session

    def handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One request -> (status, headers, body)."""
        request_id = str(uuid.uuid4())
        try:
            call, session = self._decode(method, raw_path, headers, body)
            client = session.client(  # type: ignore[call-overload]
                call.service,
                region_name=self.region,
                config=Config(retries={"max_attempts": 0, "total_max_attempts": 1}),
            )
            result = client._make_api_call(call.operation.name, call.params)
        except GatewayError as exc:
            if exc.code == "UnsupportedProtocol":  # those clients read XML errors
                return _xml_error(exc.status, exc.code, exc.message, request_id)
            return _error(exc.status, exc.code, exc.message, request_id)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
            return _error(status, str(error.get("Code", "ClientError")), str(error.get("Message", "")), request_id)
        except UnmappedOperationError as exc:
            return _error(403, "AccessDeniedException", str(exc), request_id)
        protocol = call.operation.metadata["protocol"]
        status = int(call.operation.http.get("responseCode", 200)) if protocol == "rest-json" else 200
        content_type = "application/json" if protocol == "rest-json" else "application/x-amz-json-1.0"
        out = {"Content-Type": content_type, "x-amzn-RequestId": request_id}
        return status, out, json.dumps(_encode(result)).encode()

    def _decode(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[Call, boto3.Session]:
        region, signing = _scope(headers)
        service = SIGNING_TO_SERVICE.get(signing, signing)
        try:
            model = new_session().client(service, region_name=region).meta.service_model  # type: ignore[call-overload]
        except Exception:  # noqa: BLE001 - an unknown service name: refused like AWS refuses an unknown endpoint
            raise GatewayError(400, "UnknownService", f"no such service {signing!r}") from None
        host = headers.get("host", "127.0.0.1")
        url = f"http://{host}{raw_path}"
        try:
            caller = verify_sigv4(method, url, dict(headers), body, region=region, service=signing)
        except SignatureError as exc:
            if str(exc) == "unknown access key":  # AWS's answer to a key it never issued
                raise GatewayError(
                    403, "UnrecognizedClientException", "The security token included in the request is invalid."
                ) from None
            raise GatewayError(403, "InvalidSignatureException", f"The request signature is invalid: {exc}") from None
        if caller.access_key == HARNESS_ACCESS_KEY:
            raise GatewayError(403, "AccessDeniedException", "the local cloud's administrator key is not served here")
        identity = signing_identity(caller.access_key)
        assert identity is not None  # verify_sigv4 found it
        secret, token = identity[0], identity[1]
        protocol = model.metadata["protocol"]
        if protocol not in SERVED_PROTOCOLS:
            raise GatewayError(
                400, "UnsupportedProtocol", f"{service} ({protocol} protocol) is not served by the local endpoint"
            )
        path, _, query = raw_path.partition("?")
        if protocol == "json":
            operation, params = _json_call(model, headers, body)
        else:
            operation, params = _rest_json_call(model, method, path, query, headers, body)
        return Call(service, operation, params), self._session(caller.access_key, secret, token)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, out, payload = gateway.handle(self.command, self.path, headers, body)
                self.send_response(status)
                for key, value in out.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002 - the base class's names
                return

        return Handler


def _error(status: int, code: str, message: str, request_id: str) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": request_id, "x-amzn-ErrorType": code}
    return status, headers, json.dumps({"__type": code, "message": message, "Message": message}).encode()


def _xml_error(status: int, code: str, message: str, request_id: str) -> tuple[int, dict[str, str], bytes]:
    from xml.sax.saxutils import escape  # noqa: PLC0415

    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body.encode()
