"""check_url: syntax-only validation of user-given URLs (no DNS, no network)."""

from __future__ import annotations

import pytest

from corral.errors import InvalidArgument
from services.fetch import MAX_URL_LENGTH, check_url, split_url


@pytest.mark.parametrize("url", [
    "http://example.com",
    "https://example.com/",
    "HTTPS://Example.COM:8443/a/b?c=d&e=f#frag",
    "http://example.com:65535/",
    "http://example.com:1/",
    "http://example.com:/x",
    "http://[2001:db8::1]:8080/x",
    "http://bücher.example/straße?q=ä",
    "http://my_host.example/%2e%2e/x",
])
def test_valid_urls_are_returned_unchanged(url: str) -> None:
    assert check_url(url) == url


def test_split_url_gives_the_request_parts() -> None:
    parsed = split_url("http://Bücher.Example/straße?q=ä#frag")
    assert (parsed.scheme, parsed.host, parsed.port) == ("http", "xn--bcher-kva.example", 80)
    assert parsed.target == "/stra%C3%9Fe?q=%C3%A4"
    assert split_url("https://example.com").port == 443
    assert split_url("https://example.com").target == "/"
    assert split_url("https://[2001:DB8::1]:8443/").host == "2001:db8::1"


def _refused(url: object, field: str = "url") -> str:
    with pytest.raises(InvalidArgument) as info:
        check_url(url, field)  # type: ignore[arg-type]
    assert info.value.message.startswith(f"{field}: ")
    return info.value.message


def test_length_limit() -> None:
    base = "http://example.com/"
    assert check_url(base + "a" * (MAX_URL_LENGTH - len(base))) is not None
    assert "longer than 2048" in _refused(base + "a" * (MAX_URL_LENGTH - len(base) + 1))


@pytest.mark.parametrize("url", [
    "http://exa mple.com/", "http://example.com/a b", " http://example.com/",
    "http://example.com/\t", "http://example.com/\n", "http://exam\rple.com/",
    "http://example.com/\x00", "http://example.com/\x7f", "http://example.com/\x85",
    "http://example.com/\u00a0", "http://example.com/\u3000", "http://example.com\\@evil/",
    "http:\\\\example.com/",
])
def test_whitespace_controls_and_backslashes_are_refused(url: str) -> None:
    assert "whitespace, control characters or backslashes" in _refused(url)


@pytest.mark.parametrize("url, scheme", [
    ("file:///etc/passwd", "file"), ("gopher://127.0.0.1:70/_x", "gopher"),
    ("ftp://example.com/", "ftp"), ("data:text/plain,hi", "data"),
    ("javascript:alert(1)", "javascript"), ("ws://example.com/", "ws"),
    ("dict://127.0.0.1:11211/", "dict"), ("jar:http://example.com!/", "jar"),
])
def test_only_http_and_https(url: str, scheme: str) -> None:
    assert _refused(url) == f"url: only http and https URLs can be linked, got {scheme!r}"


@pytest.mark.parametrize("url", ["example.com/x", "//example.com/x", "/x", ""])
def test_relative_urls_are_refused(url: str) -> None:
    message = _refused(url)
    assert "absolute" in message or "required" in message


@pytest.mark.parametrize("url", ["http:///x", "http://", "http:example.com", "http://:80/",
                                 "https://?x", "http://#frag"])
def test_a_host_is_required(url: str) -> None:
    assert "has no host" in _refused(url)


@pytest.mark.parametrize("url", [
    "http://user@example.com/", "http://user:secret-pw@example.com/", "http://@example.com/",
    "http://example.com@127.0.0.1/", "http://:pw@example.com/", "http://a@b@example.com/",
    "https://user%40x@example.com/",
])
def test_userinfo_is_refused_without_echoing_it(url: str) -> None:
    message = _refused(url)
    assert message == "url: user@host URLs are not allowed"
    assert "secret" not in message


@pytest.mark.parametrize("port", ["0", "65536", "99999", "00000"])
def test_ports_out_of_range(port: str) -> None:
    assert "out of range" in _refused(f"http://example.com:{port}/")


@pytest.mark.parametrize("url", ["http://example.com:abc/", "http://example.com:-1/",
                                 "http://example.com:+80/", "http://example.com:80:81/",
                                 "http://example.com: 80/"])
def test_malformed_ports(url: str) -> None:
    _refused(url)


@pytest.mark.parametrize("url", [
    "http://exa$mple.com/", "http://a%2fb/", "http://[zzz]/", "http://[v1.x]/",
    "http://[fe80::1%25eth0]/", "http://[127.0.0.1]/", "http://ex!ample.com/",
    "http://[::1/", "http://::1/", "http://" + "a" * 64 + "ü.example/",
])
def test_malformed_hosts(url: str) -> None:
    _refused(url)


def test_messages_start_with_the_field_name() -> None:
    assert _refused("ftp://x", field="items[3].url").startswith("items[3].url: only http")
    assert _refused(None) == "url: a URL is required"
