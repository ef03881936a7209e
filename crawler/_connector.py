"""aiohttp's connection pool, bounded for broad crawls: idle keep-alive connections.

aiohttp's ``limit`` counts connections *in use*. A connection put back stays open for its
keep-alive time (15 s) however many hosts there are. A crawl of one site reuses a few dozen
connections, as it should; a broad crawl touches thousands of hosts a minute, and would hold
a socket for each (the usual limit on open files is 1,024: past it every new connection
fails). (Its DNS cache is bounded by aiohttp itself: ``dns_cache_max_size``, LRU.)

:class:`BoundedConnector` keeps the idle connections of at most ``max_idle_hosts`` hosts (by
default what half the process's open-file limit allows, beside the connections in use):
past that, the connections of the host idle the longest are closed, so a busy host keeps
its keep-alive connections and a host met once does not keep a socket.

It reads aiohttp's pool (``_conns``: host key -> idle connections, a key dropped when its
last connection is taken); a test pins that behaviour, and without the attribute it falls
back to aiohttp's own.
"""

from __future__ import annotations

import resource
from typing import Any

import aiohttp

from ._addresses import AddressGuard

__all__ = ["BoundedConnector", "default_max_idle_hosts"]


def default_max_idle_hosts(concurrency: int, domain_concurrency: int) -> int:
    """Hosts whose idle connections fit in half the open-file limit beside ``concurrency``
    connections in use (each host keeps up to ``domain_concurrency`` idle), at least 16."""
    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        soft = 1024
    if soft == resource.RLIM_INFINITY or soft <= 0:
        soft = 1 << 20
    return max(16, (soft // 2 - concurrency) // max(1, domain_concurrency))


class BoundedConnector(aiohttp.TCPConnector):
    def __init__(self, *, max_idle_hosts: int, guard: AddressGuard | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_idle_hosts = max_idle_hosts
        self._guard = guard
        self._bounded = isinstance(getattr(self, "_conns", None), dict)

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[Any]:
        """The addresses ``host`` resolves to (an IP literal: itself), refused when the
        private-network guard refuses any of them: checked here, where every new connection
        resolves, so a redirect or a DNS answer cannot steer around it."""
        hosts: list[Any] = await super()._resolve_host(host, port, traces=traces)
        guard = self._guard
        if guard is not None and guard.enabled:
            for entry in hosts:
                if not guard.allows(host, entry["host"], port):
                    raise guard.refuse(host, entry["host"])
        return hosts

    def _release(self, key: Any, protocol: Any, *, should_close: bool = False) -> None:
        super()._release(key, protocol, should_close=should_close)
        if not self._bounded:
            return
        pool = self._conns
        idle = pool.get(key)
        if idle is not None and len(pool) > 1:  # this host is the most recently used
            del pool[key]
            pool[key] = idle
        while len(pool) > self._max_idle_hosts:
            oldest = next(iter(pool))
            for connection, _ in pool.pop(oldest):
                connection.close()
