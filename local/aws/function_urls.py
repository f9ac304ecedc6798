"""Lambda function URLs on loopback: SigV4-authenticated (``AuthType: AWS_IAM``) HTTP in, payload format 2.0 out.

One HTTP server per function URL, on ``127.0.0.1`` (the template's ``FunctionUrlConfig`` makes one; ``GetAtt
<Function>Url.FunctionUrl`` is its ``http://127.0.0.1:<port>/``). What AWS does before the function runs is done here:

* ``AWS_IAM``: the request must carry a valid Signature Version 4 (service ``lambda``, the function's region,
  ``X-Amz-Date`` within 5 minutes, the session token of temporary credentials) made with credentials moto issued
  (``iam:CreateAccessKey`` or ``sts:AssumeRole``); anything else is ``403 {"Message": "Forbidden"}`` and the function
  is not invoked. The verified identity becomes ``requestContext.authorizer.iam`` (``accessKey``, ``accountId``,
  ``callerId``, ``userArn``, ``userId``) as AWS documents it.
* ``NONE``: no authorizer in the event.
* The function's answer: a dict with ``statusCode`` is the HTTP response (``headers``, ``body``, ``isBase64Encoded``);
  anything else is ``200`` with the JSON; an unhandled error is ``502`` (AWS: ``Internal Server Error``).
* Payload limit: a request body over 6 MB is ``413`` (Lambda's synchronous payload quota).

* Authorization (``AWS_IAM``): an authenticated caller must also be allowed ``lambda:InvokeFunctionUrl`` on the
  function (with ``lambda:FunctionUrlAuthType`` = ``AWS_IAM`` in the request context) by its identity-based policies or
  the function's resource policy, with no explicit deny; otherwise ``403 {"Message": "Forbidden"}`` and the function is
  not invoked. The cloud decides (``authorize``), with the same policy evaluation as every other call.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.aws.seams import signing_identity

MAX_BODY = 6 * 1024 * 1024
MAX_SKEW = dt.timedelta(minutes=5)
FORBIDDEN = {"Message": "Forbidden"}

Invoke = Callable[[str, bytes], tuple[bytes, str | None]]
Authorize = Callable[["Caller", str], bool]
"""``authorize(caller, function ARN)``: whether the caller may ``lambda:InvokeFunctionUrl`` the function."""


class SignatureError(Exception):
    """The request is not a valid SigV4 request by a known principal (AWS answers 403 Forbidden)."""


@dataclass(frozen=True)
class Caller:
    access_key: str
    account_id: str
    user_arn: str
    user_id: str

    def authorizer(self) -> dict[str, Any]:
        return {
            "iam": {
                "accessKey": self.access_key,
                "accountId": self.account_id,
                "callerId": self.user_id,
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": self.user_arn,
                "userId": self.user_id,
            }
        }


def _authorization_parts(header: str) -> dict[str, str]:
    if not header.startswith("AWS4-HMAC-SHA256 "):
        raise SignatureError("not AWS4-HMAC-SHA256")
    parts = {}
    for item in header.removeprefix("AWS4-HMAC-SHA256 ").split(","):
        key, _, value = item.strip().partition("=")
        parts[key] = value
    if not {"Credential", "SignedHeaders", "Signature"} <= set(parts):
        raise SignatureError("incomplete Authorization header")
    return parts


def verify_sigv4(
    method: str, url: str, headers: dict[str, str], body: bytes, *, region: str, service: str = "lambda"
) -> Caller:
    """The caller of a SigV4-signed request for ``service`` (its signing name), or :class:`SignatureError` (403)."""
    lower = {k.lower(): v for k, v in headers.items()}
    parts = _authorization_parts(lower.get("authorization", ""))
    access_key, date, scope_region, scope_service, terminal = (parts["Credential"].split("/") + [""] * 5)[:5]
    if (scope_region, scope_service, terminal) != (region, service, "aws4_request"):
        raise SignatureError(f"credential scope is not <region>/{service}/aws4_request")
    amz_date = lower.get("x-amz-date", "")
    try:
        signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise SignatureError("no valid X-Amz-Date") from None
    if abs(dt.datetime.now(dt.UTC) - signed_at) > MAX_SKEW or amz_date[:8] != date:
        raise SignatureError("signature expired or not yet valid")
    identity = signing_identity(access_key)
    if identity is None:
        raise SignatureError("unknown access key")
    secret, token, arn, user_id, account = identity
    if token is not None and lower.get("x-amz-security-token") != token:
        raise SignatureError("temporary credentials without their session token")
    signed = parts["SignedHeaders"].split(";")
    if "host" not in signed:
        raise SignatureError("host is not signed")
    request = AWSRequest(method=method, url=url, data=body, headers={h: lower.get(h, "") for h in signed})
    request.context["timestamp"] = amz_date
    auth = SigV4Auth(Credentials(access_key, secret, token), service, region)
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    if expected != parts["Signature"]:
        raise SignatureError("signature mismatch")
    return Caller(access_key=access_key, account_id=account, user_arn=arn, user_id=user_id)


class FunctionUrl:
    """One function URL: an HTTP server on loopback invoking ``function_arn`` through ``invoke``."""

    def __init__(
        self,
        *,
        function_arn: str,
        auth_type: str,
        region: str,
        account_id: str,
        invoke: Invoke,
        authorize: Authorize | None = None,
    ) -> None:
        if auth_type not in {"AWS_IAM", "NONE"}:
            raise ValueError(f"FunctionUrlConfig.AuthType must be AWS_IAM or NONE, not {auth_type!r}")
        self.function_arn, self.auth_type, self.region, self.account_id = function_arn, auth_type, region, account_id
        self.url_id = uuid.uuid4().hex[:32]
        self._invoke = invoke
        self._authorize = authorize
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            # poll_interval: how long close() may wait for the loop to notice (the default 0.5 s, per cloud closed)
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"function-url-{self.url_id}",
        )
        self._thread.daemon = True
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def event(
        self, method: str, path: str, *, query: str, headers: dict[str, str], body: bytes, caller: Caller | None
    ) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        text = body.decode("utf-8", errors="strict") if body else ""
        context: dict[str, Any] = {
            "accountId": self.account_id if caller is None else caller.account_id,
            "apiId": self.url_id,
            "domainName": f"{self.url_id}.lambda-url.{self.region}.on.aws",
            "domainPrefix": self.url_id,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }
        if caller is not None:
            context["authorizer"] = caller.authorizer()
        return {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": {k.lower(): v for k, v in headers.items() if k.lower() != "authorization"},
            "requestContext": context,
            "body": text,
            "isBase64Encoded": False,
        }

    def respond(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """What the URL answers to one request (status, headers, body)."""
        if len(body) > MAX_BODY:
            return 413, {"content-type": "application/json"}, json.dumps({"Message": "Request Too Long"}).encode()
        path, _, query = target.partition("?")
        caller = None
        if self.auth_type == "AWS_IAM":
            host = {k.lower(): v for k, v in headers.items()}.get("host", "")
            try:
                caller = verify_sigv4(method, f"http://{host}{target}", headers, body, region=self.region)
            except SignatureError:
                return 403, {"content-type": "application/json"}, json.dumps(FORBIDDEN).encode()
            if self._authorize is not None and not self._authorize(caller, self.function_arn):
                return 403, {"content-type": "application/json"}, json.dumps(FORBIDDEN).encode()
        try:
            event = self.event(method, path, query=query, headers=headers, body=body, caller=caller)
        except UnicodeDecodeError:
            event = self.event(method, path, query=query, headers=headers, body=b"", caller=caller)
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        payload, error = self._invoke(self.function_arn, json.dumps(event).encode())
        if error is not None:
            return 502, {"content-type": "application/json"}, json.dumps({"Message": "Internal Server Error"}).encode()
        return _http_response(json.loads(payload or b"null"))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        url = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, content = url.respond(self.command, self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for key, value in {**headers, "content-length": str(len(content))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815 - http.server's naming

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                del format, args

        return Handler


def _http_response(result: Any) -> tuple[int, dict[str, str], bytes]:
    if isinstance(result, dict) and "statusCode" in result:
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        body = result.get("body") or ""
        content = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        return int(result["statusCode"]), headers, content
    return 200, {"content-type": "application/json"}, json.dumps(result).encode()
