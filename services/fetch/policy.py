"""Which addresses the fetcher may connect to, and the limits of one fetch.

Only public unicast addresses are reachable by default. `ipaddress.is_global` alone is not
enough on Python 3.11: it calls multicast, 192.0.0.9, NAT64 64:ff9b::/96, 6to4 2002::/16,
IPv4-compatible ::/96 and site-local fec0::/10 addresses global, so those are listed here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

GIB = 1024**3

_BLOCKED_V4 = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8",        # "this network"; 0.0.0.0 reaches the local host on Linux
    "10.0.0.0/8",       # private
    "100.64.0.0/10",    # carrier-grade NAT
    "127.0.0.0/8",      # loopback
    "169.254.0.0/16",   # link-local, including the 169.254.169.254 metadata service
    "172.16.0.0/12",    # private
    "192.0.0.0/24",     # IETF protocol assignments
    "192.0.2.0/24",     # documentation
    "192.88.99.0/24",   # 6to4 relay anycast (deprecated)
    "192.168.0.0/16",   # private
    "198.18.0.0/15",    # benchmarking
    "198.51.100.0/24",  # documentation
    "203.0.113.0/24",   # documentation
    "224.0.0.0/4",      # multicast
    "240.0.0.0/4",      # reserved, including the 255.255.255.255 broadcast
))

_BLOCKED_V6 = tuple(ipaddress.IPv6Network(n) for n in (
    "::/96",            # unspecified, loopback and IPv4-compatible (embedded IPv4 judged first)
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
    "64:ff9b::/96",     # NAT64: reaches an IPv4 address through a translator
    "64:ff9b:1::/48",   # local-use NAT64
    "100::/64",         # discard-only
    "2001::/23",        # IETF protocol assignments, including Teredo 2001::/32
    "2001:db8::/32",    # documentation
    "2002::/16",        # 6to4: embeds an IPv4 address
    "3fff::/20",        # documentation
    "5f00::/16",        # segment routing (SRv6) SIDs
    "fc00::/7",         # unique-local
    "fe80::/10",        # link-local
    "fec0::/10",        # site-local (deprecated)
    "ff00::/8",         # multicast
))


@dataclass(frozen=True)
class AllowRule:
    """An exception to the block list: a whole network (any port) or one exact endpoint."""

    network: IPNetwork
    port: int | None = None

    def matches(self, ip: IPAddress, port: int) -> bool:
        return ip.version == self.network.version and ip in self.network and (
            self.port is None or self.port == port)


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of one fetch. `allow` opens private addresses (tests, on-premise storage)."""

    allow: tuple[AllowRule, ...] = ()
    max_bytes: int = 2 * GIB
    connect_timeout: float = 5.0  # per TCP connect (and TLS handshake)
    read_timeout: float = 15.0  # one socket read stalling this long cuts the fetch
    total_timeout: float = 600.0  # from open() to the last byte, redirects included
    min_bytes_per_second: int = 1024  # running average, checked once rate_grace has passed
    rate_grace: float = 5.0
    max_redirects: int = 5
    user_agent: str = "corral-fetch/1"


def parse_allow_rules(text: str) -> tuple[AllowRule, ...]:
    """Parse "10.0.0.0/8, fd00::/8, 127.0.0.1:9000, [::1]:9000" (ValueError names a bad entry).

    A bare address without a port allows that one host on every port.
    """
    rules = []
    for entry in (e.strip() for e in text.split(",")):
        if entry:
            try:
                rules.append(_parse_rule(entry))
            except ValueError as exc:
                raise ValueError(f"bad allow rule {entry!r}: {exc}") from None
    return tuple(rules)


def _parse_rule(entry: str) -> AllowRule:
    if entry.startswith("["):
        address, sep, port = entry[1:].partition("]:")
        if not sep:
            raise ValueError("expected [IPv6]:port")
        return AllowRule(ipaddress.ip_network(ipaddress.IPv6Address(address)), _port(port))
    if entry.count(":") == 1:  # IPv4:port (an IPv6 network has several colons)
        address, _, port = entry.partition(":")
        return AllowRule(ipaddress.ip_network(ipaddress.IPv4Address(address)), _port(port))
    return AllowRule(ipaddress.ip_network(entry))  # strict: host bits must be zero


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"port must be 1-65535, got {text!r}")
    return int(text)


def _judged_address(ip: IPAddress) -> IPAddress:
    """The address that decides: the IPv4 inside an IPv4-mapped or IPv4-compatible form."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip if ip.scope_id is None else ipaddress.IPv6Address(str(ip).partition("%")[0])
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if int(ip) >> 32 == 0 and int(ip) > 0xFFFF:  # ::a.b.c.d, leaving :: and ::1 as IPv6
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _is_public(ip: IPAddress) -> bool:
    blocked = _BLOCKED_V4 if ip.version == 4 else _BLOCKED_V6
    if any(ip in net for net in blocked):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_private or ip.is_reserved
                                 or ip.is_loopback or ip.is_link_local or ip.is_unspecified)


def is_address_allowed(ip: str | IPAddress, port: int, policy: FetchPolicy) -> bool:
    """True if an allow rule matches (ip, port), else only for public unicast addresses."""
    address = ip if not isinstance(ip, str) else ipaddress.ip_address(ip)
    judged = _judged_address(address)
    if any(rule.matches(judged, port) for rule in policy.allow):
        return True
    return _is_public(judged)
