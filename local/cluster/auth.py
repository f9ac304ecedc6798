"""EKS authentication (aws-iam-authenticator tokens) and optional deny rules (RBAC ``Forbidden``).

A token is ``k8s-aws-v1.`` + unpadded base64url of a presigned STS ``GetCallerIdentity`` URL that signs the
``x-k8s-aws-id`` header (the cluster name), exactly what ``aws eks get-token`` prints. :func:`make_token` builds
one with botocore (no network: presigning is local). :class:`TokenVerifier` checks the URL the way
aws-iam-authenticator's ``Verify`` does before it would call STS: scheme, host, path, whitelisted parameters,
``Action``/``Version``, the signed header, ``X-Amz-Expires`` and a 15 minute window on ``X-Amz-Date`` (real wall
time, not the simulated clock). It does not call STS: the signature is required but not checked; the access key
id names the caller (``access.Identities`` maps it to the ARN STS would return).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a token prefix, not a secret
CLUSTER_ID_HEADER = "x-k8s-aws-id"
EXPIRATION_SECONDS = 15 * 60

_PARAMETERS = frozenset(
    {
        "action",
        "version",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-signedheaders",
        "x-amz-user-agent",
    }
)
_REQUIRED = (
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-signature",
    "x-amz-signedheaders",
)
_HOST = re.compile(r"^sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")

_FAKE_KEY = "AKIAIOSFODNN7EXAMPLE"
_FAKE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # noqa: S105 - the AWS documentation's example key


def make_token(
    cluster_name: str,
    region: str = "us-east-1",
    *,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
) -> str:
    """A bearer token as ``aws eks get-token --cluster-name NAME`` prints it (presigned, expires 60).

    Credentials default to ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN`` from the
    environment and then to fake ones; the credential provider chain (and so IMDS) is never consulted."""
    import botocore.session  # noqa: PLC0415 - botocore is slow to import; only token makers need it

    key = access_key or os.environ.get("AWS_ACCESS_KEY_ID") or _FAKE_KEY
    secret = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY") or _FAKE_SECRET
    token = session_token if access_key else (session_token or os.environ.get("AWS_SESSION_TOKEN"))
    session = botocore.session.Session()
    client = session.create_client(
        "sts",
        region_name=region,
        endpoint_url=f"https://sts.{region}.amazonaws.com",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )

    def retrieve_id(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if CLUSTER_ID_HEADER in params:
            context[CLUSTER_ID_HEADER] = params.pop(CLUSTER_ID_HEADER)

    def inject_id(request: Any, **_: Any) -> None:
        if CLUSTER_ID_HEADER in request.context:
            request.headers[CLUSTER_ID_HEADER] = request.context[CLUSTER_ID_HEADER]

    client.meta.events.register("provide-client-params.sts.GetCallerIdentity", retrieve_id)
    client.meta.events.register("before-sign.sts.GetCallerIdentity", inject_id)
    url: str = client.generate_presigned_url(  # type: ignore[attr-defined]
        "get_caller_identity", Params={CLUSTER_ID_HEADER: cluster_name}, ExpiresIn=60, HttpMethod="GET"
    )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


class TokenError(ValueError):
    """Why a token was refused (the server answers 401 Unauthorized)."""


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: the signing access key id and when it was signed."""

    access_key_id: str
    issued_at: float


def decode_token(token: str) -> str:
    if not token.startswith(TOKEN_PREFIX):
        raise TokenError('token is missing expected "k8s-aws-v1." prefix')
    raw = token[len(TOKEN_PREFIX) :]
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise TokenError(f"illegal base64 data: {exc}") from exc


def verify_token(token: str, *, now: float | None = None) -> TokenClaims:
    """Check a token's presigned URL; returns who it names or raises :class:`TokenError`."""
    url = decode_token(token)
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise TokenError(f"unexpected scheme {parts.scheme!r} in pre-signed URL")
    if not _HOST.match(parts.hostname or ""):
        raise TokenError(f"unexpected hostname {parts.hostname!r} in pre-signed URL")
    if parts.path not in ("", "/"):
        raise TokenError("unexpected path in pre-signed URL")
    query: dict[str, str] = {}
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        if key.lower() not in _PARAMETERS:
            raise TokenError(f"non-whitelisted query parameter {key!r}")
        if len(values) != 1:
            raise TokenError("query parameter with multiple values not supported")
        query[key.lower()] = values[0]
    if query.get("action") != "GetCallerIdentity":
        raise TokenError("unexpected action parameter in pre-signed URL")
    if query.get("version") != "2011-06-15":
        raise TokenError("unexpected version parameter in pre-signed URL")
    for name in _REQUIRED:
        if not query.get(name):
            raise TokenError(f"{name} parameter must be present in pre-signed URL")
    signed = query["x-amz-signedheaders"].lower().split(";")
    if CLUSTER_ID_HEADER not in signed:
        raise TokenError(f"client did not sign the {CLUSTER_ID_HEADER} header in the pre-signed URL")
    try:
        expires = int(query["x-amz-expires"])
    except ValueError as exc:
        raise TokenError("invalid X-Amz-Expires parameter in pre-signed URL") from exc
    if not 0 <= expires <= EXPIRATION_SECONDS:
        raise TokenError(f"invalid X-Amz-Expires parameter in pre-signed URL: {expires}")
    try:
        issued = datetime.strptime(query["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError as exc:
        raise TokenError(f"error parsing X-Amz-Date parameter: {exc}") from exc
    current = time.time() if now is None else now
    if current > issued + EXPIRATION_SECONDS:
        raise TokenError("X-Amz-Date parameter is expired (15 minute expiration)")
    if issued > current + EXPIRATION_SECONDS:
        raise TokenError("X-Amz-Date parameter is in the future")
    credential = query["x-amz-credential"].split("/")
    if len(credential) != 5 or credential[2] == "" or credential[3] != "sts" or credential[4] != "aws4_request":
        raise TokenError("malformed X-Amz-Credential parameter in pre-signed URL")
    return TokenClaims(credential[0], issued)


class TokenVerifier:
    """Caches verified tokens until they expire (verification parses a URL per request otherwise)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, TokenClaims] = {}

    def verify(self, header: str | None) -> TokenClaims:
        if not header:
            raise TokenError("no bearer token")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenError("no bearer token")
        token = token.strip()
        now = time.time()
        with self._lock:
            hit = self._cache.get(token)
        if hit is not None and now <= hit.issued_at + EXPIRATION_SECONDS:
            return hit
        identity = verify_token(token, now=now)
        with self._lock:
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[token] = identity
        return identity


# ------------------------------------------------------------------------------------------------ deny rules


@dataclass(frozen=True)
class DenyRule:
    """Refuse matching requests with 403; ``None`` matches anything. ``resource`` may name a subresource
    (``deployments/scale``); a plain resource name matches its subresources too."""

    verb: str | None = None
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None

    def matches(self, verb: str, resource: str, subresource: str, namespace: str, name: str) -> bool:
        if self.verb is not None and self.verb != verb:
            return False
        if self.resource is not None and self.resource not in (resource, f"{resource}/{subresource}"):
            return False
        if self.namespace is not None and self.namespace != namespace:
            return False
        return self.name is None or self.name == name


def forbidden_message(
    user: str, verb: str, *, resource: str, subresource: str, group: str, namespace: str, name: str
) -> str:
    """The RBAC authorizer's message, e.g. ``deployments.apps "web" is forbidden: User "x" cannot patch
    resource "deployments/scale" in API group "apps" in the namespace "default"``."""
    qualified = f"{resource}.{group}" if group else resource
    subject = f'{qualified} "{name}"' if name else qualified
    res = f"{resource}/{subresource}" if subresource else resource
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return f'{subject} is forbidden: User "{user}" cannot {verb} resource "{res}" in API group "{group}" {scope}'
