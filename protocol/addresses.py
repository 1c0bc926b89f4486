"""What counts as this machine: the one loopback check, for servers and clients.

A server binds without a token only to these; it answers plain HTTP only to
these names (DNS rebinding); a client connects to these without a proxy.
"""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address; IPv6 with or without brackets)
    means this machine. Only loopback addresses and localhost names count:
    "127.evil.example" is a name like any other."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
