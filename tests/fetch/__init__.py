"""Loopback helpers for the fetcher tests: a canary listener that counts connections, an HTTP
server with misbehaving routes, and a spy that refuses (and records) every outgoing connect."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest

_REAL_CONNECT = socket.socket.connect  # the probes must connect even while the spy is on

BODY = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable mod 256
BODY_TYPE = "application/x-corral-test"


class Canary:
    """A listener that records every connection it accepts. hits() flushes the accept queue
    with a probe of its own first, so a connection made just before is never missed."""

    def __init__(self, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.bind((host, 0))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.address = self._sock.getsockname()[:2]
        self.port: int = self.address[1]
        self._peers: list[tuple] = []
        self._probes: set[tuple] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.close()
            self._peers.append(peer[:2])

    def hits(self) -> int:
        with socket.socket(self._sock.family, socket.SOCK_STREAM) as probe:
            _REAL_CONNECT(probe, self.address)
            me = probe.getsockname()[:2]
            self._probes.add(me)
            deadline = time.monotonic() + 3
            while me not in self._peers and time.monotonic() < deadline:
                time.sleep(0.005)
        assert me in self._peers, "the canary stopped accepting"
        return sum(1 for peer in self._peers if peer not in self._probes)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


@contextlib.contextmanager
def canary_on(host: str) -> Iterator[Canary]:
    try:
        canary = Canary(host)
    except OSError as exc:  # e.g. no IPv6 on this machine
        pytest.skip(f"cannot listen on {host}: {exc}")
    try:
        yield canary
    finally:
        canary.close()


@dataclass
class ConnectSpy:
    """Replaces socket.create_connection and socket.socket.connect(_ex): records each call,
    then either refuses it (OSError) or passes it on to the real one."""

    passthrough: bool = False
    calls: list[tuple] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> ConnectSpy:
        real_create = socket.create_connection
        real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

        def create_connection(address, *args, **kwargs):
            self.calls.append(("create_connection", address))
            if not self.passthrough:
                raise OSError("connection refused by the test spy")
            return real_create(address, *args, **kwargs)

        def connect(sock, address):
            self.calls.append(("connect", address))
            if not self.passthrough:
                raise OSError("connection refused by the test spy")
            return real_connect(sock, address)

        def connect_ex(sock, address):
            self.calls.append(("connect_ex", address))
            if not self.passthrough:
                return 111
            return real_connect_ex(sock, address)

        monkeypatch.setattr(socket, "create_connection", create_connection)
        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
        return self


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked bodies need it

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        route = getattr(self, "route_" + parts.path.strip("/").replace("-", "_"), None)
        try:
            if route is None:
                self._send(404, b"no such route")
            else:
                route(query)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True  # the client cut us off, as expected

    def _send(self, status: int, body: bytes, content_type: str = "text/plain",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def route_file(self, query: dict[str, str]) -> None:
        """BODY, honouring "Range: bytes=N-"."""
        ranges = self.headers.get("Range", "")
        if ranges.startswith("bytes=") and ranges.endswith("-"):
            start = int(ranges[6:-1])
            if start >= len(BODY):
                self._send(416, b"", headers={"Content-Range": f"bytes */{len(BODY)}"})
                return
            self._send(206, BODY[start:], BODY_TYPE, {
                "Content-Range": f"bytes {start}-{len(BODY) - 1}/{len(BODY)}"})
            return
        self._send(200, BODY, BODY_TYPE)

    def route_norange(self, query: dict[str, str]) -> None:
        self._send(200, BODY, BODY_TYPE)  # ignores Range, like many simple servers

    def route_echo(self, query: dict[str, str]) -> None:
        seen = "|".join(str(self.headers.get(name)) for name in (
            "Host", "User-Agent", "Accept-Encoding", "Range"))
        self._send(200, seen.encode())

    def route_redirect(self, query: dict[str, str]) -> None:
        self._send(int(query.get("status", "302")), b"", headers={"Location": query["to"]})

    def route_loop(self, query: dict[str, str]) -> None:
        self._send(302, b"", headers={"Location": "/loop"})

    def route_status(self, query: dict[str, str]) -> None:
        self._send(int(query["code"]), b"status page")

    def route_nolength(self, query: dict[str, str]) -> None:
        self.send_response(200)  # ends when the connection closes
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"x" * 3000)
        self.close_connection = True

    def route_endless(self, query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
        until = time.monotonic() + 5
        while time.monotonic() < until:
            self.wfile.write(chunk)
        self.close_connection = True

    def route_chunked_cut(self, query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"a\r\n0123456789\r\n")  # no terminating zero-size chunk
        self.close_connection = True

    def route_lying(self, query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.close_connection = True

    def route_huge(self, query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(10**12))
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.close_connection = True

    def route_drip(self, query: dict[str, str]) -> None:
        """1 byte every 0.2 s for at most 3 s."""
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        until = time.monotonic() + 3
        while time.monotonic() < until:
            self.wfile.write(b"d")
            self.wfile.flush()
            time.sleep(0.2)
        self.close_connection = True

    def route_stall(self, query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"01234")
        self.wfile.flush()
        time.sleep(2)
        self.close_connection = True

    def route_slow_headers(self, query: dict[str, str]) -> None:
        """Headers trickling in one byte at a time, each well within the read timeout."""
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        until = time.monotonic() + 3
        while time.monotonic() < until:
            self.wfile.write(b"X")
            self.wfile.flush()
            time.sleep(0.1)
        self.close_connection = True


class LocalServer:
    """http.server on 127.0.0.1, optionally TLS, in a thread."""

    def __init__(self, tls_context=None) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        if tls_context is not None:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port: int = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(2)
