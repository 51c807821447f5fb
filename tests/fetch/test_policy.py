"""Which addresses the fetcher may connect to, and allow rules."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from services.fetch import AllowRule, FetchPolicy, is_address_allowed, parse_allow_rules

DEFAULT = FetchPolicy()


@pytest.mark.parametrize("ip", [
    "8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
])
def test_public_unicast_addresses_are_allowed(ip: str) -> None:
    assert is_address_allowed(ip, 443, DEFAULT)
    assert is_address_allowed(ipaddress.ip_address(ip), 80, DEFAULT)


@pytest.mark.parametrize("ip", [
    # IPv4: loopback, unspecified, private, CGNAT, link-local, metadata, reserved ranges
    "127.0.0.1", "127.255.255.254", "0.0.0.0", "0.1.2.3", "10.0.0.1", "172.16.0.1",
    "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.254", "169.254.169.254",
    "169.254.0.1", "192.0.0.1", "192.0.0.9", "192.0.0.170", "192.0.2.1", "198.51.100.7",
    "203.0.113.9", "198.18.0.1", "198.19.255.255", "192.88.99.1", "224.0.0.1",
    "239.255.255.250", "240.0.0.1", "255.255.255.255",
    # IPv6: loopback, unspecified, unique-local, link-local, site-local, multicast, docs
    "::1", "::", "fc00::1", "fd12::1", "fe80::1", "fe80::1%eth0", "febf::1", "fec0::1",
    "ff02::1", "ff0e::1", "2001:db8::1", "3fff::1", "100::1", "5f00::1",
    # IPv6 forms that embed an IPv4 address
    "::ffff:127.0.0.1", "::ffff:7f00:1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "::127.0.0.1", "::10.0.0.1", "::ffff:0:7f00:1", "::ffff:0:808:808",
    "64:ff9b::7f00:1", "64:ff9b::808:808", "64:ff9b:1::1", "2002:7f00:1::", "2002:808:808::",
    "2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
])
def test_private_reserved_and_embedding_addresses_are_refused(ip: str) -> None:
    assert not is_address_allowed(ip, 80, DEFAULT)


def test_allow_rules_open_networks_or_exact_endpoints() -> None:
    policy = FetchPolicy(allow=parse_allow_rules(
        "10.0.0.0/8, fd00::/8, 127.0.0.1:9000, [::1]:9001"))
    assert is_address_allowed("10.1.2.3", 1, policy)
    assert is_address_allowed("10.1.2.3", 65535, policy)
    assert is_address_allowed("fd12::1", 443, policy)
    assert is_address_allowed("127.0.0.1", 9000, policy)
    assert is_address_allowed("::ffff:127.0.0.1", 9000, policy)  # the same endpoint
    assert not is_address_allowed("127.0.0.1", 9001, policy)
    assert not is_address_allowed("127.0.0.2", 9000, policy)
    assert is_address_allowed("::1", 9001, policy)
    assert not is_address_allowed("::1", 9000, policy)
    assert not is_address_allowed("192.168.1.1", 9000, policy)
    assert not is_address_allowed("169.254.169.254", 80, policy)
    assert is_address_allowed("8.8.8.8", 80, policy)  # the rules only add exceptions


def test_parse_allow_rules() -> None:
    assert parse_allow_rules("") == ()
    assert parse_allow_rules(" , ") == ()
    assert parse_allow_rules("10.0.0.0/8, 127.0.0.1:9000,[::1]:80 ,fd00::/8,192.168.1.5") == (
        AllowRule(ipaddress.ip_network("10.0.0.0/8")),
        AllowRule(ipaddress.ip_network("127.0.0.1/32"), 9000),
        AllowRule(ipaddress.ip_network("::1/128"), 80),
        AllowRule(ipaddress.ip_network("fd00::/8")),
        AllowRule(ipaddress.ip_network("192.168.1.5/32")),
    )


@pytest.mark.parametrize("entry", [
    "10.0.0.1/8", "not-an-ip", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http",
    "127.0.0.1:", "[::1]", "[::1]:", "[::1]:x", "[127.0.0.1]:80", "127.0.0.1:80:90",
    "example.com:80", "::1:80x",
])
def test_bad_allow_rules_name_the_entry(entry: str) -> None:
    with pytest.raises(ValueError, match="bad allow rule") as info:
        parse_allow_rules(f"10.0.0.0/8, {entry}")
    assert repr(entry) in str(info.value)


def test_policy_defaults() -> None:
    assert DEFAULT.allow == ()
    assert DEFAULT.max_bytes == 2 * 1024**3
    assert (DEFAULT.connect_timeout, DEFAULT.read_timeout, DEFAULT.total_timeout) == (
        5.0, 15.0, 600.0)
    assert (DEFAULT.min_bytes_per_second, DEFAULT.rate_grace) == (1024, 5.0)
    assert (DEFAULT.max_redirects, DEFAULT.user_agent) == (5, "corral-fetch/1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.max_bytes = 1  # type: ignore[misc]
