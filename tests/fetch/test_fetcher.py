"""The fetcher against a loopback HTTP server that is allowed by an exact-endpoint rule (so
the canary's port stays blocked): bodies, ranges, redirects, limits and misbehaving servers."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from corral.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, Unavailable
from services.fetch import Fetcher, FetchPolicy, parse_allow_rules

from . import BODY, BODY_TYPE, Canary, ConnectSpy, LocalServer, canary_on

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    server = LocalServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    with canary_on("127.0.0.1") as canary:
        yield canary


@pytest.fixture
def policy(server: LocalServer) -> FetchPolicy:
    return FetchPolicy(allow=parse_allow_rules(f"127.0.0.1:{server.port}"), max_bytes=MIB,
                       connect_timeout=2.0, read_timeout=2.0, total_timeout=5.0,
                       max_redirects=3)


@pytest.fixture
def fetcher(policy: FetchPolicy) -> Fetcher:
    return Fetcher(policy)


def test_fetch_bytes_round_trip(fetcher: Fetcher, server: LocalServer) -> None:
    fetched = fetcher.fetch_bytes(f"{server.base}/file")
    assert fetched.data == BODY
    assert fetched.content_type == BODY_TYPE
    assert fetched.final_url == f"{server.base}/file"


def test_open_reads_in_chunks_and_reports_the_size(fetcher: Fetcher,
                                                   server: LocalServer) -> None:
    with fetcher.open(f"{server.base}/file") as body:
        assert (body.size, body.content_type) == (len(BODY), BODY_TYPE)
        chunks = list(body.iter_chunks(4096))
        assert body.read(10) == b""
    assert [len(c) for c in chunks] == [4096, 4096, 2048]
    assert b"".join(chunks) == BODY


@pytest.mark.parametrize("path", ["/file", "/norange"])  # 206 answers, and 200 ones to skip
@pytest.mark.parametrize("offset", [1, 1000, 4096, len(BODY) - 1])
def test_open_from_an_offset(fetcher: Fetcher, server: LocalServer, path: str,
                             offset: int) -> None:
    with fetcher.open(server.base + path, offset=offset) as body:
        assert body.size == len(BODY)
        assert b"".join(body.iter_chunks(1000)) == BODY[offset:]


def test_offset_at_the_end_is_an_empty_body(fetcher: Fetcher, server: LocalServer) -> None:
    with fetcher.open(f"{server.base}/file", offset=len(BODY)) as body:
        assert body.size == len(BODY)
        assert body.read(100) == b""
    with fetcher.open(f"{server.base}/norange", offset=len(BODY)) as body:
        assert body.read(100) == b""


def test_negative_offsets_are_refused(fetcher: Fetcher, server: LocalServer) -> None:
    with pytest.raises(InvalidArgument, match="offset"):
        fetcher.open(f"{server.base}/file", offset=-1)


def test_request_headers(fetcher: Fetcher, server: LocalServer) -> None:
    assert fetcher.fetch_bytes(f"{server.base}/echo").data.decode() == (
        f"127.0.0.1:{server.port}|corral-fetch/1|identity|None")
    with fetcher.open(f"{server.base}/echo", offset=5) as body:
        assert body.read(1000).decode().endswith("|identity|bytes=5-")
        assert body.read(1000) == b""


def test_no_content_length_reads_until_the_connection_closes(fetcher: Fetcher,
                                                             server: LocalServer) -> None:
    with fetcher.open(f"{server.base}/nolength") as body:
        assert body.size is None
        assert body.content_type == "text/plain"
        assert b"".join(body.iter_chunks()) == b"x" * 3000


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_within_allowed_addresses_are_followed(fetcher: Fetcher, server: LocalServer,
                                                         status: int) -> None:
    url = f"{server.base}/redirect?status={status}&to={quote('/file')}"
    fetched = fetcher.fetch_bytes(url)
    assert fetched.data == BODY
    assert fetched.final_url == f"{server.base}/file"
    with fetcher.open(url, offset=100) as body:  # the Range goes to every hop
        assert b"".join(body.iter_chunks()) == BODY[100:]


def _redirect_to(server: LocalServer, target: str) -> str:
    return f"{server.base}/redirect?to={quote(target, safe='')}"


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{p}/", "http://localhost:{p}/", "http://[::ffff:127.0.0.1]:{p}/",
    "http://0.0.0.0:{p}/", "http://2130706433:{p}/", "//127.0.0.1:{p}/x",
    "https://127.0.0.1:{p}/",
])
def test_redirects_to_blocked_addresses_are_refused_without_connecting(
        fetcher: Fetcher, server: LocalServer, canary: Canary, target: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    spy = ConnectSpy(passthrough=True).install(monkeypatch)
    with pytest.raises(FailedPrecondition, match="private or reserved address"):
        fetcher.fetch_bytes(_redirect_to(server, target.format(p=canary.port)))
    assert [address for _, address in spy.calls] == [("127.0.0.1", server.port)] * 2
    assert canary.hits() == 0


@pytest.mark.parametrize("target, reason", [
    ("http://user@127.0.0.1:{s}/file", "redirect: user@host URLs are not allowed"),
    ("file:///etc/passwd", "redirect: only http and https URLs can be linked, got 'file'"),
    ("gopher://127.0.0.1:{p}/_x", "got 'gopher'"),
])
def test_redirects_to_invalid_urls_are_refused(fetcher: Fetcher, server: LocalServer,
                                               canary: Canary, target: str, reason: str) -> None:
    url = _redirect_to(server, target.format(p=canary.port, s=server.port))
    with pytest.raises(FailedPrecondition) as info:
        fetcher.fetch_bytes(url)
    assert info.value.message.startswith("url: 127.0.0.1 redirected to a URL that cannot be "
                                         "fetched (")
    assert reason in info.value.message
    assert canary.hits() == 0


def test_a_redirect_loop_stops_after_max_redirects(fetcher: Fetcher,
                                                   server: LocalServer) -> None:
    with pytest.raises(FailedPrecondition, match=r"^url: more than 3 redirects"):
        fetcher.fetch_bytes(f"{server.base}/loop")


def test_a_redirect_without_location(fetcher: Fetcher, server: LocalServer) -> None:
    with pytest.raises(FailedPrecondition, match="without a Location"):
        fetcher.fetch_bytes(f"{server.base}/redirect?to=")


@pytest.mark.parametrize("code, error", [
    (404, FailedPrecondition), (403, FailedPrecondition), (410, FailedPrecondition),
    (500, Unavailable), (503, Unavailable), (429, Unavailable), (300, FailedPrecondition),
])
def test_error_statuses(fetcher: Fetcher, server: LocalServer, code: int,
                        error: type) -> None:
    with pytest.raises(error) as info:
        fetcher.open(f"{server.base}/status?code={code}")
    assert info.value.message == f"url: 127.0.0.1 answered HTTP {code}"


def test_an_endless_body_is_cut_at_max_bytes(fetcher: Fetcher, server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(ResourceExhausted) as info:
        fetcher.fetch_bytes(f"{server.base}/endless")
    assert info.value.message == "url: the body from 127.0.0.1 exceeds the 1048576-byte limit"
    assert time.monotonic() - started < 2
    with pytest.raises(ResourceExhausted, match="exceeds the 100000-byte limit"):
        fetcher.fetch_bytes(f"{server.base}/endless", max_bytes=100_000)


def test_reading_stops_at_max_bytes_without_a_content_length(fetcher: Fetcher,
                                                             server: LocalServer) -> None:
    with pytest.raises(ResourceExhausted, match="exceeds the 2999-byte limit"):
        fetcher.fetch_bytes(f"{server.base}/nolength", max_bytes=2999)
    assert len(fetcher.fetch_bytes(f"{server.base}/nolength", max_bytes=3000).data) == 3000


def test_a_declared_length_above_max_bytes_is_refused_before_reading(
        fetcher: Fetcher, server: LocalServer) -> None:
    with pytest.raises(ResourceExhausted) as info:
        fetcher.open(f"{server.base}/huge")
    assert info.value.message == (f"url: 127.0.0.1 declares {10**12} bytes, above the "
                                  f"1048576-byte limit")
    with pytest.raises(ResourceExhausted, match="declares 10240 bytes, above the 10239-byte"):
        fetcher.fetch_bytes(f"{server.base}/file", max_bytes=10239)
    with pytest.raises(ResourceExhausted, match="declares 10240 bytes"):  # the whole object
        Fetcher(dataclasses.replace(fetcher.policy, max_bytes=10239)).open(
            f"{server.base}/file", offset=5000)


def test_a_lying_content_length_is_unavailable(fetcher: Fetcher, server: LocalServer) -> None:
    with pytest.raises(Unavailable) as info:
        fetcher.fetch_bytes(f"{server.base}/lying")
    assert info.value.message == "url: the body from 127.0.0.1 ended after 10 of 100 bytes"
    with fetcher.open(f"{server.base}/lying") as body:
        assert body.read(10) == b"0123456789"
        with pytest.raises(Unavailable, match="ended after 10 of 100 bytes"):
            body.read(100)


def test_a_cut_chunked_body_is_unavailable(fetcher: Fetcher, server: LocalServer) -> None:
    with pytest.raises(Unavailable, match="body from 127.0.0.1 ended early, after 10 bytes"):
        fetcher.fetch_bytes(f"{server.base}/chunked-cut")


def test_a_slow_drip_is_cut_by_the_minimum_rate(policy: FetchPolicy,
                                                server: LocalServer) -> None:
    fetcher = Fetcher(dataclasses.replace(policy, rate_grace=0.5, min_bytes_per_second=100))
    started = time.monotonic()
    with pytest.raises(ResourceExhausted) as info:
        fetcher.fetch_bytes(f"{server.base}/drip")
    assert info.value.message.startswith("url: 127.0.0.1 sends too slowly (")
    assert info.value.message.endswith("bytes/s, the minimum is 100 bytes/s)")
    assert 0.5 <= time.monotonic() - started < 2


def test_a_slow_drip_is_cut_by_the_total_timeout(policy: FetchPolicy,
                                                 server: LocalServer) -> None:
    fetcher = Fetcher(dataclasses.replace(policy, total_timeout=1.0, min_bytes_per_second=0))
    started = time.monotonic()
    with pytest.raises(ResourceExhausted) as info:
        fetcher.fetch_bytes(f"{server.base}/drip")
    assert info.value.message == ("url: 127.0.0.1 is too slow: the fetch took longer than 1 s")
    assert 1.0 <= time.monotonic() - started < 2


def test_slow_headers_are_cut_by_the_total_timeout(policy: FetchPolicy,
                                                   server: LocalServer) -> None:
    fetcher = Fetcher(dataclasses.replace(policy, total_timeout=0.6))
    started = time.monotonic()
    with pytest.raises(ResourceExhausted, match="longer than 0.6 s"):
        fetcher.open(f"{server.base}/slow-headers")
    assert time.monotonic() - started < 1.5


def test_a_stalled_body_is_unavailable(policy: FetchPolicy, server: LocalServer) -> None:
    fetcher = Fetcher(dataclasses.replace(policy, read_timeout=0.4))
    started = time.monotonic()
    with fetcher.open(f"{server.base}/stall") as body:
        assert body.read(5) == b"01234"
        with pytest.raises(Unavailable, match=r"^url: 127.0.0.1 stopped sending for 0.4 s$"):
            body.read(100)
    assert time.monotonic() - started < 1.5


def test_a_refused_connection_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    fetcher = Fetcher(FetchPolicy(allow=parse_allow_rules(f"127.0.0.1:{port}")))
    with pytest.raises(Unavailable, match=r"^url: 127.0.0.1 refused the connection$"):
        fetcher.open(f"http://127.0.0.1:{port}/")


def test_dns_is_asked_once_and_the_vetted_address_is_used(
        fetcher: Fetcher, server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that first resolves to an allowed address, then (rebinding) to a blocked one:
    the connection goes to the vetted answer and the Host header still names the original."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "files.test":
            return real(host, port, *args, **kwargs)
        asked.append(host)
        ip = "127.0.0.1" if len(asked) == 1 else "169.254.169.254"  # a rebinding attacker
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    spy = ConnectSpy(passthrough=True).install(monkeypatch)
    fetched = fetcher.fetch_bytes(f"http://files.test:{server.port}/echo")
    assert fetched.data.decode().startswith(f"files.test:{server.port}|")
    assert asked == ["files.test"]
    assert {address for _, address in spy.calls} == {("127.0.0.1", server.port)}


def test_a_closed_body_reads_nothing(fetcher: Fetcher, server: LocalServer) -> None:
    body = fetcher.open(f"{server.base}/file")
    assert len(body.read(100)) == 100
    body.close()
    body.close()
    assert body.read(100) == b""


def test_read_sizes_must_be_positive(fetcher: Fetcher, server: LocalServer) -> None:
    with fetcher.open(f"{server.base}/file") as body:
        with pytest.raises(ValueError):
            body.read(0)
        with pytest.raises(ValueError):
            next(body.iter_chunks(0))
        assert body.read(5000) == BODY[:5000]  # whole reads, across several socket reads
