"""Syntax checks for user-given URLs, with no network access.

A link is checked when it is created (so a bad URL is refused at once, naming the field) and
again by the fetcher on every hop. The address checks that need DNS live in the fetcher.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from corral.errors import InvalidArgument

MAX_URL_LENGTH = 2048
SCHEMES = {"http": 80, "https": 443}

# host, then an optional ":port" (the port may be empty, meaning the scheme's default).
_AUTHORITY = re.compile(r"^(?P<host>\[[^\]]*\]|[^:\[\]]*)(?::(?P<port>[0-9]*))?$")
# Letters, digits, '-', '_', '.' and non-ASCII (internationalised names, IDNA-encoded below).
_HOST_CHARS = re.compile(r"^[A-Za-z0-9._\-\u0080-\U0010ffff]+$")
# Printable ASCII stays as is in the request target; anything else is percent-encoded.
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


@dataclass(frozen=True)
class ParsedURL:
    """The parts of a checked URL the fetcher needs."""

    scheme: str
    host: str  # lowercase ASCII: a DNS name (IDNA-encoded) or an IP address without brackets
    port: int
    target: str  # path and query for the request line, never empty, no fragment


def check_url(url: str, field: str = "url") -> str:
    """Refuse anything but a plain http(s) URL without credentials; returns `url` unchanged."""
    split_url(url, field)
    return url


def split_url(url: str, field: str = "url") -> ParsedURL:
    """check_url's checks, returning the parts (raises InvalidArgument)."""
    if not isinstance(url, str) or not url:
        raise InvalidArgument(f"{field}: a URL is required")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidArgument(f"{field}: URLs longer than {MAX_URL_LENGTH} characters "
                              f"are not allowed")
    # Parsers disagree about whitespace, controls and backslashes (urlsplit drops some, a
    # browser turns '\' into '/'); refusing them removes every such ambiguity.
    if any(c == "\\" or c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in url):
        raise InvalidArgument(f"{field}: URLs must not contain whitespace, control characters "
                              f"or backslashes")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidArgument(f"{field}: not a valid URL ({exc})") from None
    if not parts.scheme:
        raise InvalidArgument(f"{field}: must be an absolute http:// or https:// URL")
    if parts.scheme not in SCHEMES:
        raise InvalidArgument(f"{field}: only http and https URLs can be linked, "
                              f"got {parts.scheme!r}")
    authority = parts.netloc
    if "@" in authority:
        raise InvalidArgument(f"{field}: user@host URLs are not allowed")
    if not authority:
        raise InvalidArgument(f"{field}: the URL has no host")
    match = _AUTHORITY.match(authority)
    if match is None:
        raise InvalidArgument(f"{field}: not a valid host and port: {authority!r}")
    host = _check_host(match["host"], field)
    port = _check_port(match["port"], parts.scheme, host, field)
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return ParsedURL(scheme=parts.scheme, host=host, port=port, target=target)


def _check_host(raw: str, field: str) -> str:
    if raw.startswith("["):
        inner = raw[1:-1]
        if "%" in inner:  # zone ids only make sense for link-local addresses, never fetched
            raise InvalidArgument(f"{field}: IPv6 zone ids are not allowed")
        try:
            return str(ipaddress.IPv6Address(inner))
        except ValueError:
            raise InvalidArgument(f"{field}: not a valid IPv6 address: {raw!r}") from None
    if not raw:
        raise InvalidArgument(f"{field}: the URL has no host")
    if not _HOST_CHARS.match(raw):
        raise InvalidArgument(f"{field}: not a valid host name: {raw!r}")
    if raw.isascii():
        return raw.lower()
    try:
        return raw.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidArgument(f"{field}: not a valid host name: {raw!r}") from None


def _check_port(raw: str | None, scheme: str, host: str, field: str) -> int:
    if not raw:
        return SCHEMES[scheme]
    port = int(raw)
    if not 1 <= port <= 65535:
        raise InvalidArgument(f"{field}: port {raw} of {host} is out of range (1-65535)")
    return port
