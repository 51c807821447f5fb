"""A blocking HTTP(S) fetcher for user-given URLs that cannot be turned against corral's network.

Every hop (the URL and each redirect) is checked, resolved once, and refused if any of its
addresses is private or reserved; the connection then goes to a vetted address itself, so a DNS
answer that changes between the check and the connect (rebinding) cannot bypass the check.
Only the standard library is used, and http.client never reads proxy settings from the
environment. Meant to run in worker threads.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin

from corral.errors import (
    CorralError,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from services.fetch.policy import FetchPolicy, is_address_allowed
from services.fetch.urls import ParsedURL, split_url

FIELD = "url"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Client errors that mean "try again later" rather than "this URL is wrong".
RETRYABLE_4XX = frozenset({408, 425, 429})
_CONTENT_RANGE = re.compile(r"^bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)$")


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str
    final_url: str


class _Deadline:
    """The total timeout. Checked between reads; a timer also shuts the socket down so that a
    read blocked inside http.client (a dripping header or chunk-size line) ends as well."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._timer: threading.Timer | None = None

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        self.cancel()
        self._timer = threading.Timer(max(0.0, self.remaining()), self._fire, (sock,))
        self._timer.daemon = True
        self._timer.start()

    def _fire(self, sock: socket.socket) -> None:
        self.expired = True
        # The plain socket method: SSLSocket.shutdown would drop its SSL state under a reader.
        with contextlib.suppress(OSError):  # already closed
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to addresses vetted beforehand, never resolving the URL's host again; the
    host still goes into the Host header (and SNI and certificate checks for HTTPS)."""

    def __init__(self, url: ParsedURL, ips: list[str], policy: FetchPolicy,
                 deadline: _Deadline) -> None:
        super().__init__(url.host, url.port, timeout=policy.read_timeout)
        self._ips = ips
        self._connect_timeout = policy.connect_timeout
        self._deadline = deadline

    def connect(self) -> None:
        error: OSError = OSError("no address to connect to")
        for ip in self._ips:
            timeout = min(self._connect_timeout, max(self._deadline.remaining(), 0.001))
            try:
                sock = socket.create_connection((ip, self.port), timeout)
                break
            except OSError as exc:
                error = exc
        else:
            raise error
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = self._wrap(sock)  # the TLS handshake is bounded by connect_timeout
            sock.settimeout(self.timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._deadline.watch(sock)

    def _wrap(self, sock: socket.socket) -> socket.socket:
        return sock


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = 443  # so that the Host header leaves out :443

    def __init__(self, url: ParsedURL, ips: list[str], policy: FetchPolicy,
                 deadline: _Deadline, context: ssl.SSLContext) -> None:
        super().__init__(url, ips, policy, deadline)
        self._context = context

    def _wrap(self, sock: socket.socket) -> socket.socket:
        return self._context.wrap_socket(sock, server_hostname=self.host)


class RemoteBody:
    """The body of a fetched URL, read like a file. Every read from the connection enforces
    the byte limit, the total timeout and the minimum rate."""

    def __init__(self, *, conn: http.client.HTTPConnection | None,
                 resp: http.client.HTTPResponse | None, host: str, final_url: str,
                 content_type: str, size: int | None, start: int, skip_to: int,
                 end: int | None, max_bytes: int, policy: FetchPolicy,
                 deadline: _Deadline) -> None:
        self.content_type = content_type
        self.size = size  # of the whole object, when the server said
        self.final_url = final_url
        self._conn, self._resp, self._host = conn, resp, host
        self._start = self._position = start  # position in the object of the next wire byte
        self._skip_to = skip_to  # a 200 answer to a Range request: drop the bytes before it
        self._end, self._max_bytes = end, max_bytes
        self._policy, self._deadline = policy, deadline
        self._started = time.monotonic()
        self._done = resp is None

    def __enter__(self) -> RemoteBody:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def read(self, n: int = 1 << 20) -> bytes:
        """n bytes, fewer only at the end of the body (b"" after it)."""
        if n < 1:
            raise ValueError(f"read size must be positive, got {n}")
        out = bytearray()
        while len(out) < n and not self._done:
            # Ask for one byte past the limit at most, so that going over it is noticed.
            data = self._read_wire(min(n - len(out), self._max_bytes - self._position + 1))
            if not data:
                self.close()
                break
            first = self._position - len(data)
            if first < self._skip_to:
                data = data[self._skip_to - first:]
            out += data
        return bytes(out)

    def iter_chunks(self, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The rest of the body in chunks of chunk_size bytes (the last may be shorter)."""
        if chunk_size < 1:
            raise ValueError(f"chunk size must be positive, got {chunk_size}")
        while chunk := self.read(chunk_size):
            yield chunk

    def close(self) -> None:
        self._done = True
        self._deadline.cancel()
        if self._resp is not None:
            self._resp.close()
        if self._conn is not None:
            self._conn.close()

    def _read_wire(self, n: int) -> bytes:
        assert self._resp is not None
        try:
            data = self._resp.read1(n)
        except http.client.IncompleteRead:
            raise self._fail(self._cut_short()) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._fail(_wire_error(exc, self._host, "body", self._policy,
                                         self._deadline)) from None
        if self._deadline.expired:  # the timer's shutdown looks like the end of the body
            raise self._fail(_too_long(self._host, self._deadline))
        if not data:
            if self._end is not None and self._position < self._end:
                raise self._fail(self._cut_short())
            return b""
        self._position += len(data)
        if self._position > self._max_bytes:
            raise self._fail(ResourceExhausted(
                f"{FIELD}: the body from {self._host} exceeds the {self._max_bytes}-byte limit"))
        self._check_pace()
        return data

    def _check_pace(self) -> None:
        now = time.monotonic()
        if now >= self._deadline.at:
            raise self._fail(_too_long(self._host, self._deadline))
        elapsed = now - self._started
        if elapsed < self._policy.rate_grace or self._policy.min_bytes_per_second <= 0:
            return
        rate = (self._position - self._start) / elapsed
        if rate < self._policy.min_bytes_per_second:
            raise self._fail(ResourceExhausted(
                f"{FIELD}: {self._host} sends too slowly ({rate:.0f} bytes/s, the minimum is "
                f"{self._policy.min_bytes_per_second} bytes/s)"))

    def _cut_short(self) -> CorralError:
        received = self._position - self._start
        if self._end is None:
            return Unavailable(f"{FIELD}: the body from {self._host} ended early, "
                               f"after {received} bytes")
        return Unavailable(f"{FIELD}: the body from {self._host} ended after {received} of "
                           f"{self._end - self._start} bytes")

    def _fail(self, error: CorralError) -> CorralError:
        self.close()
        return error


class Fetcher:
    """Fetches user-given http(s) URLs under a FetchPolicy. Thread-safe; calls block.

    `ssl_context` replaces the default (system CAs, hostname checked), e.g. to trust an
    on-premise CA; it must keep certificate verification on.
    """

    def __init__(self, policy: FetchPolicy | None = None, *,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.policy = policy or FetchPolicy()
        self._ssl_context = ssl_context
        self._lock = threading.Lock()

    def open(self, url: str, offset: int = 0) -> RemoteBody:
        """Opens `url` from byte `offset` on; the caller reads and closes the body."""
        return self._open(url, offset, self.policy.max_bytes)

    def fetch_bytes(self, url: str, max_bytes: int | None = None) -> Fetched:
        """The whole body in memory, at most min(policy.max_bytes, max_bytes) bytes."""
        limit = self.policy.max_bytes if max_bytes is None else min(max_bytes,
                                                                    self.policy.max_bytes)
        with self._open(url, 0, limit) as body:
            data = bytearray()
            while chunk := body.read(1 << 20):
                data += chunk
        return Fetched(bytes(data), body.content_type, body.final_url)

    def _open(self, url: str, offset: int, max_bytes: int) -> RemoteBody:
        if offset < 0:
            raise InvalidArgument(f"offset: must not be negative, got {offset}")
        parsed = split_url(url, FIELD)
        deadline = _Deadline(self.policy.total_timeout)
        try:
            for _ in range(self.policy.max_redirects + 1):
                conn, resp = self._request(parsed, self._vet(parsed), offset, deadline)
                if resp.status not in REDIRECTS:
                    return self._body(conn, resp, parsed, url, offset, max_bytes, deadline)
                location = resp.getheader("Location") or ""
                conn.close()
                url, parsed = self._redirect(url, parsed, resp.status, location)
            raise FailedPrecondition(f"{FIELD}: more than {self.policy.max_redirects} "
                                     f"redirects (the last one to {parsed.host})")
        except BaseException:
            deadline.cancel()
            raise

    def _vet(self, url: ParsedURL) -> list[str]:
        """The addresses to connect to: all of them allowed, from one DNS lookup at most."""
        try:
            literal = ipaddress.ip_address(url.host)
        except ValueError:
            literal = None
        if literal is not None:
            if not is_address_allowed(literal, url.port, self.policy):
                raise FailedPrecondition(f"{FIELD}: {url.host} is a private or reserved address")
            return [str(literal)]
        try:
            infos = socket.getaddrinfo(url.host, url.port, type=socket.SOCK_STREAM,
                                       proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            raise Unavailable(f"{FIELD}: cannot resolve {url.host}") from None
        ips = list(dict.fromkeys(str(info[4][0]) for info in infos
                                 if info[0] in (socket.AF_INET, socket.AF_INET6)))
        if not ips:
            raise Unavailable(f"{FIELD}: cannot resolve {url.host}")
        for ip in ips:  # one bad address refuses the host: we must not pick among them
            if not is_address_allowed(ip, url.port, self.policy):
                raise FailedPrecondition(f"{FIELD}: {url.host} resolves to a private or "
                                         f"reserved address ({ip.partition('%')[0]})")
        return ips

    def _request(self, url: ParsedURL, ips: list[str], offset: int, deadline: _Deadline
                 ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        if deadline.remaining() <= 0:
            raise _too_long(url.host, deadline)
        conn: _PinnedHTTPConnection
        if url.scheme == "https":
            conn = _PinnedHTTPSConnection(url, ips, self.policy, deadline, self._context())
        else:
            conn = _PinnedHTTPConnection(url, ips, self.policy, deadline)
        headers = {"User-Agent": self.policy.user_agent, "Accept": "*/*",
                   "Accept-Encoding": "identity", "Connection": "close"}
        if offset > 0:
            headers["Range"] = f"bytes={offset}-"
        phase = "connect"
        try:
            conn.connect()
            phase = "answer"
            conn.request("GET", url.target, headers=headers)  # Host: the URL's host and port
            resp = conn.getresponse()
            if deadline.expired:  # the timer's shutdown can look like the end of the headers
                raise TimeoutError
            return conn, resp
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise _wire_error(exc, url.host, phase, self.policy, deadline) from None
        except BaseException:
            conn.close()
            raise

    def _redirect(self, url: str, parsed: ParsedURL, status: int, location: str
                  ) -> tuple[str, ParsedURL]:
        if not location:
            raise FailedPrecondition(f"{FIELD}: {parsed.host} answered HTTP {status} "
                                     f"without a Location")
        target = urljoin(url, location)
        try:
            return target, split_url(target, "redirect")
        except InvalidArgument as exc:
            raise FailedPrecondition(f"{FIELD}: {parsed.host} redirected to a URL that cannot "
                                     f"be fetched ({exc.message})") from None

    def _body(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse,
              url: ParsedURL, final_url: str, offset: int, max_bytes: int,
              deadline: _Deadline) -> RemoteBody:
        try:
            size, start, end = self._extent(resp, url.host, offset, max_bytes)
        except BaseException:
            conn.close()
            raise
        content_type = (resp.getheader("Content-Type") or "").strip()
        if resp.status == 416:  # accepted by _extent: resuming exactly at the end
            conn.close()
            deadline.cancel()
            return RemoteBody(conn=None, resp=None, host=url.host, final_url=final_url,
                              content_type="", size=size, start=start, skip_to=offset,
                              end=end, max_bytes=max_bytes, policy=self.policy,
                              deadline=deadline)
        return RemoteBody(conn=conn, resp=resp, host=url.host, final_url=final_url,
                          content_type=content_type, size=size, start=start, skip_to=offset,
                          end=end, max_bytes=max_bytes, policy=self.policy, deadline=deadline)

    @staticmethod
    def _extent(resp: http.client.HTTPResponse, host: str, offset: int, max_bytes: int
                ) -> tuple[int | None, int, int | None]:
        """(size of the whole object, position of the first body byte, position after the
        last one) from the status and headers; raises for answers that are not a body."""
        status, length = resp.status, resp.length  # length: None if chunked or not declared
        content_range = _CONTENT_RANGE.match(resp.getheader("Content-Range") or "")
        if status == 416 and offset > 0 and content_range and content_range[3] == str(offset):
            return offset, offset, offset
        if not 200 <= status < 300:
            raise _status_error(host, status)
        if status == 206:
            if content_range is None or content_range[1] is None:
                raise FailedPrecondition(f"{FIELD}: {host} answered HTTP 206 without a valid "
                                         f"Content-Range")
            if int(content_range[1]) != offset:
                raise FailedPrecondition(f"{FIELD}: {host} answered a range from byte "
                                         f"{content_range[1]} instead of {offset}")
            start = offset
            total = content_range[3]
            size = int(total) if total != "*" else (None if length is None else offset + length)
        else:  # a whole body, also when the server ignored our Range: RemoteBody skips ahead
            start, size = 0, length
        end = None if length is None else start + length
        declared = max((n for n in (size, end) if n is not None), default=0)
        if declared > max_bytes:
            raise ResourceExhausted(f"{FIELD}: {host} declares {declared} bytes, above the "
                                    f"{max_bytes}-byte limit")
        return size, start, end

    def _context(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            return self._ssl_context


def _status_error(host: str, status: int) -> CorralError:
    message = f"{FIELD}: {host} answered HTTP {status}"
    if status >= 500 or status in RETRYABLE_4XX:
        return Unavailable(message)
    return FailedPrecondition(message)


def _too_long(host: str, deadline: _Deadline) -> CorralError:
    return ResourceExhausted(f"{FIELD}: {host} is too slow: the fetch took longer than "
                             f"{deadline.seconds:g} s")


def _wire_error(exc: BaseException, host: str, phase: str, policy: FetchPolicy,
                deadline: _Deadline) -> CorralError:
    """A corral error for a failure on the connection; `phase` is connect, answer or body."""
    if deadline.expired or deadline.remaining() <= 0:
        return _too_long(host, deadline)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return FailedPrecondition(f"{FIELD}: the TLS certificate of {host} is not valid "
                                  f"({exc.verify_message})")
    if isinstance(exc, TimeoutError):
        if phase == "connect":
            return Unavailable(f"{FIELD}: cannot connect to {host} within "
                               f"{policy.connect_timeout:g} s")
        if phase == "answer":
            return Unavailable(f"{FIELD}: {host} did not answer within {policy.read_timeout:g} s")
        return Unavailable(f"{FIELD}: {host} stopped sending for {policy.read_timeout:g} s")
    if isinstance(exc, ConnectionRefusedError):
        return Unavailable(f"{FIELD}: {host} refused the connection")
    if isinstance(exc, http.client.RemoteDisconnected):
        return Unavailable(f"{FIELD}: {host} closed the connection without answering")
    if isinstance(exc, http.client.HTTPException):
        return Unavailable(f"{FIELD}: {host} sent an invalid HTTP response "
                           f"({type(exc).__name__})")
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    if phase == "connect":
        return Unavailable(f"{FIELD}: cannot connect to {host} ({detail})")
    return Unavailable(f"{FIELD}: the connection to {host} failed ({detail})")
