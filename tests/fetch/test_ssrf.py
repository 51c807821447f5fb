"""User URLs must never make corral connect to a private or internal address.

Loopback canaries prove that no connection reaches them; for addresses a canary cannot stand
on, a spy on socket connects proves that none was even attempted.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import pytest

from corral.errors import CorralError, FailedPrecondition, InvalidArgument, Unavailable
from services.fetch import Fetcher, FetchPolicy, parse_allow_rules

from . import Canary, ConnectSpy, canary_on

POLICY = FetchPolicy(connect_timeout=1.0, read_timeout=1.0, total_timeout=3.0)


@pytest.fixture(scope="module")
def canary4() -> Iterator[Canary]:
    with canary_on("127.0.0.1") as canary:
        yield canary


@pytest.fixture(scope="module")
def canary6() -> Iterator[Canary | None]:
    try:
        canary = Canary("::1")
    except OSError:
        yield None
        return
    yield canary
    canary.close()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> ConnectSpy:
    """Records connects and lets them through, so the canaries can see any that happen."""
    return ConnectSpy(passthrough=True).install(monkeypatch)


# (URL template, the error): {p} is the IPv4 canary's port, {p6} the IPv6 one's.
CANARY_URLS = [
    ("http://127.0.0.1:{p}/", FailedPrecondition),
    ("http://localhost:{p}/", FailedPrecondition),
    ("http://LOCALHOST:{p}/", FailedPrecondition),
    ("http://[::1]:{p6}/", FailedPrecondition),
    ("http://[0:0:0:0:0:0:0:1]:{p6}/", FailedPrecondition),
    ("http://0.0.0.0:{p}/", FailedPrecondition),
    ("http://0:{p}/", FailedPrecondition),
    ("http://[::]:{p6}/", FailedPrecondition),
    ("http://2130706433:{p}/", FailedPrecondition),
    ("http://0177.0.0.1:{p}/", FailedPrecondition),
    ("http://0x7f.0.0.1:{p}/", FailedPrecondition),
    ("http://0x7f000001:{p}/", FailedPrecondition),
    ("http://127.1:{p}/", FailedPrecondition),
    ("http://127.0.0.2:{p}/", FailedPrecondition),
    ("http://[::ffff:127.0.0.1]:{p}/", FailedPrecondition),
    ("http://[::ffff:7f00:1]:{p}/", FailedPrecondition),
    ("http://[::127.0.0.1]:{p}/", FailedPrecondition),
    ("http://[64:ff9b::7f00:1]:{p}/", FailedPrecondition),
    ("http://[2002:7f00:1::]:{p}/", FailedPrecondition),
    ("http://１２７.０.０.１:{p}/", FailedPrecondition),  # fullwidth digits, IDNA-mapped
    ("http://user@127.0.0.1:{p}/", InvalidArgument),
    ("http://example.com@127.0.0.1:{p}/", InvalidArgument),
    ("http://127.0.0.1:{p}#@example.com/", FailedPrecondition),
    ("http://127.0.0.1:{p}\\@example.com/", InvalidArgument),
    ("http://127.0.0.1:{p}%2f@example.com/", InvalidArgument),
    ("http://127.0.0.1:{p}?@example.com/", FailedPrecondition),
    ("file:///etc/passwd", InvalidArgument),
    ("gopher://127.0.0.1:{p}/_x", InvalidArgument),
    ("ftp://127.0.0.1:{p}/", InvalidArgument),
    ("dict://127.0.0.1:{p}/", InvalidArgument),
]


@pytest.mark.parametrize("template, error", CANARY_URLS)
def test_loopback_urls_never_reach_the_canary(template: str, error: type[CorralError],
                                              canary4: Canary, canary6: Canary | None,
                                              spy: ConnectSpy) -> None:
    if "{p6}" in template and canary6 is None:
        pytest.skip("no IPv6 loopback here")
    url = template.format(p=canary4.port, p6=canary6.port if canary6 else 0)
    fetcher = Fetcher(POLICY)
    with pytest.raises(error) as info:
        fetcher.open(url)
    assert info.value.message.startswith("url: ")
    if error is FailedPrecondition:
        assert "private or reserved address" in info.value.message
    with pytest.raises(error):
        fetcher.fetch_bytes(url)
    with pytest.raises(error):
        fetcher.open(url, offset=10)
    assert spy.calls == []
    assert canary4.hits() == 0
    if canary6 is not None:
        assert canary6.hits() == 0


def test_localhost_error_names_the_host_and_the_address(canary4: Canary) -> None:
    with pytest.raises(FailedPrecondition) as info:
        Fetcher(POLICY).open(f"http://localhost:{canary4.port}/")
    assert info.value.message.startswith("url: localhost resolves to a private or reserved "
                                         "address (")
    assert canary4.hits() == 0


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> tuple[ConnectSpy, list]:
    """Refuses and records every connect and every DNS lookup."""
    lookups: list = []

    def getaddrinfo(*args, **kwargs):
        lookups.append(args)
        raise socket.gaierror(socket.EAI_NONAME, "DNS refused by the test")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return ConnectSpy().install(monkeypatch), lookups


@pytest.mark.parametrize("host", [
    "169.254.169.254", "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "[fc00::1]",
    "[fd12::1]", "[fe80::1]", "224.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.0.1",
    "192.0.2.1", "240.0.0.1", "[ff02::1]", "[fec0::1]", "[2001:db8::1]", "[::ffff:a00:1]",
    "[::ffff:169.254.169.254]", "[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::]", "[2001::1]",
])
def test_literal_private_addresses_are_refused_without_dns_or_connect(
        host: str, no_network: tuple[ConnectSpy, list]) -> None:
    spy, lookups = no_network
    for url in (f"http://{host}/latest/meta-data/", f"https://{host}:8443/"):
        with pytest.raises(FailedPrecondition) as info:
            Fetcher(POLICY).open(url)
        shown = ipaddress.ip_address(host.strip("[]"))  # the canonical form
        assert info.value.message == f"url: {shown} is a private or reserved address"
    assert spy.calls == []
    assert lookups == []


def _fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """getaddrinfo answering `answers` for those names (others as usual); returns the log."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM,
                 socket.IPPROTO_TCP, "", (ip, port) if ":" not in ip else (ip, port, 0, 0))
                for ip in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize("answer", [
    ["10.0.0.1"], ["8.8.8.8", "127.0.0.1"], ["2606:4700::1111", "fd00::1"],
    ["169.254.169.254"], ["::ffff:127.0.0.1"], ["8.8.8.8", "8.8.4.4", "100.64.0.1"],
])
def test_names_resolving_to_any_private_address_are_refused(
        answer: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _fake_dns(monkeypatch, {"internal.example": answer})
    spy = ConnectSpy().install(monkeypatch)
    with pytest.raises(FailedPrecondition) as info:
        Fetcher(POLICY).open("http://internal.example/x")
    bad = next(ip for ip in answer if ip not in ("8.8.8.8", "8.8.4.4", "2606:4700::1111"))
    assert info.value.message == (f"url: internal.example resolves to a private or reserved "
                                  f"address ({bad})")
    assert asked == ["internal.example"]
    assert spy.calls == []


def test_dns_failures_are_unavailable(no_network: tuple[ConnectSpy, list]) -> None:
    spy, lookups = no_network
    with pytest.raises(Unavailable, match=r"^url: cannot resolve files\.example$"):
        Fetcher(POLICY).open("https://files.example/a.jpg")
    assert len(lookups) == 1
    assert spy.calls == []


def test_an_allow_rule_for_another_port_does_not_open_the_canary(
        canary4: Canary, spy: ConnectSpy) -> None:
    other_port = canary4.port % 65535 + 1
    policy = FetchPolicy(allow=parse_allow_rules(f"127.0.0.1:{other_port}, 10.0.0.0/8"),
                         connect_timeout=1.0)
    with pytest.raises(FailedPrecondition):
        Fetcher(policy).open(f"http://127.0.0.1:{canary4.port}/")
    assert spy.calls == []
    assert canary4.hits() == 0



def test_the_canary_does_see_a_connection_when_one_is_allowed(spy: ConnectSpy) -> None:
    """The control experiment: the same fetch with an allow rule does reach a canary."""
    with canary_on("127.0.0.1") as canary:
        policy = FetchPolicy(allow=parse_allow_rules(f"127.0.0.1:{canary.port}"),
                             connect_timeout=1.0, read_timeout=1.0)
        with pytest.raises(Unavailable, match="127.0.0.1"):
            Fetcher(policy).open(f"http://127.0.0.1:{canary.port}/")
        assert canary.hits() == 1
    assert spy.calls[0] == ("create_connection", ("127.0.0.1", canary.port))
    assert {address for _, address in spy.calls} == {("127.0.0.1", canary.port)}
