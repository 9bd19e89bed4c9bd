"""Egress policy: the address classifier, the allowlist, and resolution that refuses
internal answers. Nothing here opens a connection."""

from __future__ import annotations

import ipaddress

import pytest

from ordinaut.pipeline.tools import Allowlist, EgressRefused, ToolError, refusal_reason
from ordinaut.pipeline.tools.egress import checked_addresses


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.170.2", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fec0::1", "site-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),
        ("255.255.255.255", "private"),
        ("198.18.0.1", "private"),
        ("192.0.0.8", "IETF protocol assignments"),
        ("::ffff:127.0.0.1", "loopback (embedded in IPv6)"),
        ("::ffff:169.254.169.254", "cloud metadata (embedded in IPv6)"),
        ("::ffff:10.0.0.1", "private (embedded in IPv6)"),
        ("64:ff9b::a00:1", "private (embedded in IPv6)"),
        ("2002:7f00:1::", "loopback (embedded in IPv6)"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback (embedded in IPv6)"),  # Teredo
        ("2001:db8::1", "private"),
    ],
)
def test_internal_addresses_are_refused(address: str, reason: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


def test_allowlist_entries() -> None:
    allow = Allowlist.parse(
        ["api.internal", "svc.local:8443", "[::1]:9000", "*.corp.example", "10.8.0.0/16", " "]
    )
    loopback = ipaddress.ip_address("127.0.0.1")
    assert allow.allows("API.internal.", 80, ipaddress.ip_address("10.0.0.1"))
    assert allow.allows("svc.local", 8443, loopback)
    assert not allow.allows("svc.local", 8444, loopback)
    assert allow.allows("::1", 9000, ipaddress.ip_address("::1"))
    assert not allow.allows("::1", 9001, ipaddress.ip_address("::1"))
    assert allow.allows("db.corp.example", 5432, loopback)
    assert not allow.allows("corp.example.evil", 80, loopback)
    assert allow.allows("anything", 1, ipaddress.ip_address("10.8.3.4"))
    assert not allow.allows("anything", 1, ipaddress.ip_address("10.9.3.4"))
    assert allow.including("x.test", 81).allows("x.test", 81, loopback)
    with pytest.raises(ValueError, match="notaport"):
        Allowlist.parse(["host:notaport"])


def resolver_for(table: dict[str, list[str]], seen: list[str] | None = None):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if seen is not None:
            seen.append(host)
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


async def test_names_resolving_to_internal_addresses_are_refused() -> None:
    table = {
        "evil.test": ["10.0.0.5"],
        "mixed.test": ["93.184.216.34", "127.0.0.1"],
        "mapped.test": ["::ffff:127.0.0.1"],
        "meta.test": ["169.254.169.254"],
        "fine.test": ["93.184.216.34", "93.184.216.34"],
    }
    resolve = resolver_for(table)
    for host in ("evil.test", "mixed.test", "mapped.test", "meta.test"):
        with pytest.raises(EgressRefused, match="refused to connect"):
            await checked_addresses(host, 443, allowlist=Allowlist(), resolver=resolve)
    addresses = await checked_addresses("fine.test", 443, allowlist=Allowlist(), resolver=resolve)
    assert addresses == [ipaddress.ip_address("93.184.216.34")]


async def test_ip_literals_skip_dns_and_allowlist_opens_exact_host_port() -> None:
    seen: list[str] = []
    resolve = resolver_for({}, seen)
    with pytest.raises(EgressRefused, match="loopback"):
        await checked_addresses("127.0.0.1", 8080, allowlist=Allowlist(), resolver=resolve)
    allow = Allowlist.parse(["127.0.0.1:8080"])
    assert await checked_addresses("127.0.0.1", 8080, allowlist=allow, resolver=resolve)
    with pytest.raises(EgressRefused):
        await checked_addresses("127.0.0.1", 8081, allowlist=allow, resolver=resolve)
    assert seen == []


async def test_resolution_failure_is_a_retryable_tool_error() -> None:
    with pytest.raises(ToolError) as info:
        await checked_addresses(
            "nowhere.test", 80, allowlist=Allowlist(), resolver=resolver_for({})
        )
    assert info.value.code == "dns_error"
    assert info.value.retryable
