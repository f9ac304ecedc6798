"""HTTPS serving: a CA and server certificate made at start, and a threaded HTTP/1.1 keep-alive server.

The CA and the server certificate (``127.0.0.1``, ``localhost``, ``kubernetes.default.svc``...) are ECDSA P-256,
generated with ``cryptography`` (fast enough to make one per test). TLS handshakes happen on the connection's own
thread, never on the accept loop. Responses are written in one piece; watches stream as chunked JSON lines and end
when the client goes away (the socket turns readable), the timeout passes, or the server stops.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import select
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from local.cluster.wire import Request, Response

logger = logging.getLogger(__name__)

SERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class TlsMaterial:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def make_tls(common_name: str = "kubernetes") -> TlsMaterial:
    """A self-signed CA and a server certificate it signs, valid from an hour ago for a year (wall time)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return TlsMaterial(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def server_context(material: TlsMaterial) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as tmp:
        cert = Path(tmp) / "tls.crt"
        key = Path(tmp) / "tls.key"
        cert.write_bytes(material.cert_pem + material.ca_pem)
        key.write_bytes(material.key_pem)
        ctx.load_cert_chain(str(cert), str(key))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


Handler = Callable[[Request], Response]


class _Headers(Mapping[str, str]):
    """Case-insensitive read-only view of the request headers (``email.message.Message``)."""

    def __init__(self, message: Any) -> None:
        self._message = message

    def __getitem__(self, key: str) -> str:
        value = self._message.get(key)
        if value is None:
            raise KeyError(key)
        return str(value)

    def get(self, key: str, default: Any = None) -> Any:
        value = self._message.get(key)
        return default if value is None else str(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._message.keys())

    def __len__(self) -> int:
        return len(self._message)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], ctx: ssl.SSLContext, handler: Handler, stopping: threading.Event
    ) -> None:
        self.ssl_context = ctx
        self.api_handler = handler
        self.stopping = stopping
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        raw: socket.socket = request
        raw.settimeout(30)
        try:
            tls = self.ssl_context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            logger.debug("TLS handshake failed from %s: %s", client_address, exc)
            return
        with self.connections_lock:
            self.connections.add(tls)
        try:
            tls.settimeout(None)
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            with self.connections_lock:
                self.connections.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002 - base signature
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)  # noqa: LOG014

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 600  # idle keep-alive connections are dropped after this long
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        logger.debug("%s - %s", self.address_string(), format % args)

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length:
            return self.rfile.read(int(length))
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537).strip()
                size = int(size_line.split(b";", 1)[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537).strip():
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        return b""

    def _serve(self) -> None:
        body = self._body()
        parts = urlsplit(self.path)
        req = Request(
            self.command, parts.path, parse_qs(parts.query, keep_blank_values=True), _Headers(self.headers), body
        )
        resp = self.server.api_handler(req)
        if resp.reset:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if resp.stream is not None:
            self._stream(resp)
            return
        self._write(
            resp.status, resp.content_type, resp.headers, b"" if self.command == "HEAD" else resp.body, len(resp.body)
        )

    def _head(self, code: int, content_type: str, headers: dict[str, str], extra: list[str]) -> bytes:
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        lines = [
            f"HTTP/1.1 {code} {phrase}",
            f"Content-Type: {content_type}",
            "Cache-Control: no-cache, private",
            *extra,
        ]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _write(self, code: int, content_type: str, headers: dict[str, str], body: bytes, length: int) -> None:
        self.wfile.write(self._head(code, content_type, headers, [f"Content-Length: {length}"]) + body)

    def _stream(self, resp: Response) -> None:
        assert resp.stream is not None
        sock = self.connection
        self.wfile.write(self._head(resp.status, resp.content_type, resp.headers, ["Transfer-Encoding: chunked"]))

        def alive() -> bool:
            if self.server.stopping.is_set():
                return False
            try:
                readable, _, _ = select.select([sock], [], [], 0)
            except (OSError, ValueError):
                return False
            return not readable  # a watch client never sends more on this connection: readable means closed

        try:
            for chunk in resp.stream(alive):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (OSError, ValueError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815


class HttpsServer:
    """Serve ``handler`` over HTTPS on ``127.0.0.1`` (a free port unless one is given) in a background thread."""

    def __init__(
        self,
        handler: Handler,
        material: TlsMaterial,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        stopping: threading.Event | None = None,
    ) -> None:
        self.stopping = stopping or threading.Event()
        self._httpd = _HTTPServer((host, port), server_context(material), handler, self.stopping)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits up to this long for the loop to notice
            name=f"kube-apiserver:{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
