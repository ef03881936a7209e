"""The private-network guard: a crawl of the public web never connects to a private address.

A page on the public web can link or redirect to ``http://169.254.169.254/`` (a cloud's
metadata service) or ``http://127.0.0.1:6379/``, and a host name can resolve to such an
address (DNS rebinding). A crawler running inside a cloud account or beside an admin port
must not fetch them. The setting ``block_private_addresses``:

- ``auto`` (the default): on, unless the crawl's own start URLs point at such a host (an IP
  literal that is private, loopback or link-local, or ``localhost``): a crawl of a local
  site keeps working with no setting, and a crawl of the public web is guarded;
- ``true``: always on; ``false``: off.

The check is made on the *resolved* address, when a connection is made (the downloader asks
:meth:`AddressGuard.allows` for each address a host resolves to), so neither a redirect nor
a DNS answer can steer around it. A refused connection fails with reason
``blocked_address``. The hosts of configured proxies are trusted: the proxy resolves the
target itself, and the target's IP literal is checked before the request is sent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ._settings import Settings

__all__ = ["AddressGuard", "BlockedAddress", "is_public_address"]


class BlockedAddress(OSError):
    """A connection refused by the guard (an OSError, so a client reports it as a failed
    connection; downloaders map it to the reason ``blocked_address``)."""


def is_public_address(address: str) -> bool:
    """Whether an IP address is one a crawl of the public web may connect to: globally
    routable (not private, loopback, link-local, shared, reserved or unspecified) and not
    multicast; an IPv4-mapped IPv6 address is judged as the IPv4 address it carries."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id is not part of the address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def is_local_host(host: str) -> bool:
    """``localhost`` (or a name under it), or an IP literal that is not public."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return not is_public_address(host)
    except ValueError:
        return False


_DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080, "socks4": 1080}


def proxy_endpoint(url: str) -> tuple[str, int] | None:
    """A proxy URL's (host, port), the port defaulted by its scheme."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname.lower(), port


class AddressGuard:
    """Whether connections to non-public addresses are refused, decided once per crawl
    (``auto`` turns it off when a start request's host is local: :meth:`saw_start`).

    The decision is the crawl's, not the process's: a resumed run that calls ``start()`` no
    more, or a worker of a shared crawl that never sees a start request, learns it from the
    crawl's state (:meth:`start_was_local`), and is told through :attr:`on_local` when to
    record it there."""

    def __init__(self, mode: str | bool = "auto") -> None:
        self.auto = mode == "auto"
        self.enabled = mode is True or self.auto
        self._trusted: set[str] = set()  # hosts, on any port
        self._proxies: set[tuple[str, int]] = set()  # (host, port) of configured proxies
        #: Called once when ``auto`` turns the guard off (the crawl's state keeps that).
        self.on_local: Callable[[], None] = lambda: None

    @property
    def local_start(self) -> bool:
        """``auto``, turned off by a local start request."""
        return self.auto and not self.enabled

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressGuard:
        return cls(settings.block_private_addresses)

    def trust_hosts(self, hosts: Iterable[str]) -> None:
        """Hosts connected to whatever they resolve to, on any port (a test's stand-in for
        the public web; for proxies, :meth:`trust_proxies`)."""
        self._trusted.update(host.strip("[]").lower() for host in hosts)

    def trust_proxies(self, urls: Iterable[str]) -> None:
        """Configured proxies, connected to whatever they resolve to: only their own host
        and port (a proxy on 127.0.0.1:3128 does not open 127.0.0.1:6379 to a link)."""
        for url in urls:
            endpoint = proxy_endpoint(url)
            if endpoint is not None:
                self._proxies.add(endpoint)

    def saw_start(self, host: str) -> None:
        """A start request's host: under ``auto``, a local one turns the guard off."""
        if self.auto and self.enabled and is_local_host(host):
            self.start_was_local()

    def start_was_local(self) -> None:
        """Under ``auto``: the crawl's start requests are local (seen here, or recorded in the
        crawl's state by another worker or an earlier run): the guard is off."""
        if self.auto and self.enabled:
            self.enabled = False
            self.on_local()

    def allows(self, host: str, address: str, port: int | None = None) -> bool:
        """Whether a connection to ``host`` (on ``port``) may go to ``address``, one it
        resolved to."""
        if not self.enabled:
            return True
        bare = host.strip("[]").lower()
        if bare in self._trusted or (port is not None and (bare, port) in self._proxies):
            return True
        try:
            return is_public_address(address)
        except ValueError:
            return False

    def check_literal(self, host: str) -> None:
        """Raise BlockedAddress for a host that is itself a non-public IP literal (for a
        request sent through a proxy, whose resolution the guard does not see)."""
        if not self.enabled:
            return
        bare = host.strip("[]")
        try:
            public = is_public_address(bare)
        except ValueError:
            if is_local_host(bare):  # localhost, or a name under it
                raise BlockedAddress(f"{host} is a local host (block_private_addresses)") from None
            return
        if not public:
            raise BlockedAddress(f"{host} is not a public address (block_private_addresses)")

    def refuse(self, host: str, address: str) -> BlockedAddress:
        return BlockedAddress(f"{host} resolved to {address}, not a public address (block_private_addresses)")
