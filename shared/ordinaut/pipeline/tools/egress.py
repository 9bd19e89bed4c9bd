"""Egress policy (docs/guarantees.md, "Egress"): which addresses a network tool may connect to.

Names are resolved here, every resolved address is classified, and the caller connects to
one of the checked addresses (never re-resolving), so DNS cannot answer differently between
the check and the connection. An operator allowlist opens specific hosts, host:port pairs or
networks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from ordinaut.pipeline.tools.registry import ToolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("169.254.170.2"),  # ECS task metadata
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
}
_REFUSED_V4 = [
    (ipaddress.ip_network("0.0.0.0/8"), "unspecified"),
    (ipaddress.ip_network("100.64.0.0/10"), "carrier-grade NAT"),
    (ipaddress.ip_network("192.0.0.0/24"), "IETF protocol assignments"),
    (ipaddress.ip_network("198.18.0.0/15"), "benchmarking"),
    (ipaddress.ip_network("255.255.255.255/32"), "broadcast"),
]
_NAT64 = [ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48")]


class EgressRefused(ToolError):
    """The target is internal and not on the allowlist; never retried."""

    def __init__(self, message: str) -> None:
        super().__init__("egress_refused", message, retryable=False)


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64) or int(ip) >> 32 == 0:  # NAT64, IPv4-compatible
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal_reason(ip: IPAddress) -> str | None:
    """Why connecting to ``ip`` is refused (``"loopback"``, ``"private"``, ...), or None."""
    if ip in _METADATA:
        return "cloud metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%")[0])
        embedded = _embedded_v4(ip)
        if embedded is not None and not ip.is_unspecified and not ip.is_loopback:
            inner = refusal_reason(embedded)
            return f"{inner} (embedded in IPv6)" if inner else None
        if ip.is_site_local:
            return "site-local"
    for check, reason in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, check):
            return reason
    if isinstance(ip, ipaddress.IPv4Address):
        for net, reason in _REFUSED_V4:
            if ip in net:
                return reason
    if not ip.is_global:
        return "not globally routable"
    return None


def normalize_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class Allowlist:
    """Operator exceptions: ``host``, ``*.suffix``, ``host:port``, ``[v6]:port`` or a CIDR."""

    hosts: frozenset[str] = frozenset()
    host_ports: frozenset[tuple[str, int]] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowlist:
        """Read allowlist entries; raises ``ValueError`` on one it cannot read."""
        hosts, host_ports, suffixes, networks = set(), set(), [], []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if "/" in entry:
                networks.append(ipaddress.ip_network(entry, strict=False))
            elif entry.startswith("*."):
                suffixes.append("." + normalize_host(entry[2:]))
            elif entry.startswith("[") and "]:" in entry:
                host, port = entry[1:].split("]:", 1)
                host_ports.add((normalize_host(host), int(port)))
            elif entry.count(":") == 1:
                host, port = entry.split(":")
                host_ports.add((normalize_host(host), int(port)))
            else:
                hosts.add(normalize_host(entry))
        return cls(frozenset(hosts), frozenset(host_ports), tuple(suffixes), tuple(networks))

    def allows(self, host: str, port: int, ip: IPAddress | None = None) -> bool:
        """True if the operator opened ``host:port`` (or the resolved ``ip``)."""
        names = {normalize_host(host)}
        if ip is not None:
            names.add(str(ip))
        if names & self.hosts or any((n, port) in self.host_ports for n in names):
            return True
        if any(normalize_host(host).endswith(s) for s in self.suffixes):
            return True
        return ip is not None and any(ip in net for net in self.networks)

    def including(self, host: str, port: int) -> Allowlist:
        """This allowlist plus exactly ``host:port``."""
        return Allowlist(
            self.hosts,
            self.host_ports | {(normalize_host(host), port)},
            self.suffixes,
            self.networks,
        )


async def system_resolver(host: str, port: int) -> list[str]:
    """Addresses for ``host`` from the system resolver (the event loop's getaddrinfo)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def checked_addresses(
    host: str, port: int, *, allowlist: Allowlist, resolver: Resolver = system_resolver
) -> list[IPAddress]:
    """Addresses for ``host`` that policy allows, in resolver order; refuses if any is not.

    Refusing when *any* answer is internal (not just the first) stops a name that mixes
    public and internal answers from reaching the internal one on a retry.
    """
    name = normalize_host(host)
    try:
        addresses = [ipaddress.ip_address(name)]
    except ValueError:
        try:
            answers = await resolver(name, port)
        except (OSError, UnicodeError) as exc:
            raise ToolError("dns_error", f"cannot resolve {name}: {exc}", retryable=True) from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(a.split("%")[0]) for a in answers))
    if not addresses:
        raise ToolError("dns_error", f"{name} has no addresses", retryable=True)
    for ip in addresses:
        if allowlist.allows(name, port, ip):
            continue
        reason = refusal_reason(ip)
        if reason:
            shown = name if str(ip) == name else f"{name} ({ip})"
            raise EgressRefused(
                f"refused to connect to {shown}: {reason} address; an operator can allow it "
                "with ORDINAUT_EGRESS_ALLOWLIST"
            )
    return addresses
