"""SSRF safety for feed URLs: only http(s), and no loopback / private / link-local targets
unless ``NEWSWIRE_ALLOW_PRIVATE_FEEDS=true``.

The check runs on every connection (the poller's resolver calls :func:`check_addresses`
on what DNS returned, so a redirect or a DNS answer that changes to 127.0.0.1 is refused
as well) and on IP-literal hosts before each request.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pipeline.errors import FetchError

ALLOWED_SCHEMES = frozenset({"http", "https"})


class UnsafeURLError(FetchError):
    """A feed URL the poller refuses to fetch (scheme or target address)."""


def address_problem(address: str) -> str | None:
    """Why an IP address is not a public Internet address, or None if it is."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_unspecified:
        return f"{ip} is unspecified"
    if ip.is_private:
        return f"{ip} is a private address"
    if ip.is_reserved or not ip.is_global:
        return f"{ip} is not a public address"
    return None


def check_addresses(url: str, addresses: list[str], *, allow_private: bool) -> None:
    """Raise :class:`UnsafeURLError` if any resolved address of ``url`` is not public."""
    if allow_private:
        return
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise UnsafeURLError(url, f"refused: {problem} (NEWSWIRE_ALLOW_PRIVATE_FEEDS=false)")


def check_url(url: str, *, allow_private: bool) -> None:
    """Scheme and IP-literal checks that need no DNS; raises :class:`UnsafeURLError`."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise UnsafeURLError(url, f"refused: scheme {parts.scheme or '(none)'!r} is not http(s)")
    host = parts.hostname
    if not host:
        raise UnsafeURLError(url, "refused: no host")
    if parts.username or parts.password:
        raise UnsafeURLError(url, "refused: credentials in the URL")
    if allow_private:
        return
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(
        ".localhost"
    ):
        raise UnsafeURLError(url, f"refused: {host} is a loopback name")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked when it resolves
    check_addresses(url, [host], allow_private=False)


__all__ = ["UnsafeURLError", "address_problem", "check_addresses", "check_url"]
