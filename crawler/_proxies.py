"""Proxies: the ``proxy`` setting (one URL, or several rotated per domain) and
``meta["proxy"]`` on a request, which wins over the setting.

A domain keeps its proxy (a site sees one client address, and its cookies and rate make
sense), chosen by a stable hash of the domain. A proxy that fails ``REST_AFTER`` times in
a row (it cannot be connected to, or answers the tunnel with an error) rests for
``REST_FOR`` seconds: its domains move to the next proxy in the list meanwhile, and the
rest is logged and counted. A password in a proxy URL never appears in a log line, a stat
or an error message (:func:`redact_proxies`).
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
import zlib
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import unquote, urlsplit

from ._log import get_logger
from ._request import Request

if TYPE_CHECKING:
    from ._settings import Settings

__all__ = ["PerProxy", "ProxyRotation", "redact_proxies"]

_Client = TypeVar("_Client")

REST_AFTER = 3  # failures in a row that rest a proxy
REST_FOR = 60.0  # seconds
#: Failure reasons that say something about the proxy rather than the site behind it: it
#: cannot be reached, or refuses us (a tunnel the proxy could not open to a dead site is
#: the site's failure, ``connection_error``, and does not count against the proxy).
PROXY_FAULTS = frozenset({"proxy_error"})


class ProxyRotation:
    """Which proxy a request goes through, and which proxies are resting."""

    def __init__(
        self, urls: Sequence[str], *, environment: bool = False, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.urls = tuple(urls)
        #: With no proxy set: take HTTP(S)_PROXY/NO_PROXY from the environment (for a client
        #: that does not read them itself).
        self._environment = urllib.request.getproxies_environment() if environment and not urls else {}
        self._clock = clock
        self._failing: dict[str, int] = {}
        self._resting_until: dict[str, float] = {}
        #: How many times each proxy (its URL without the password) was rested.
        self.rested: dict[str, int] = {}
        self._secrets = sorted({secret for url in self.urls for secret in _secrets(url)}, key=len, reverse=True)
        self._known: set[str] = set(self.urls)
        #: Called with each proxy first met in a request's meta (the guard trusts it).
        self.on_new_proxy: Callable[[str], None] = lambda url: None
        #: Called with a proxy (its URL without the password) each time it is rested.
        self.on_rested: Callable[[str], None] = lambda name: None
        self._log = get_logger()

    @classmethod
    def from_settings(cls, settings: Settings, *, environment: bool = False) -> ProxyRotation:
        return cls(settings.proxy, environment=environment)

    def configured(self) -> list[str]:
        """Every proxy URL set up front (the setting's, the environment's)."""
        return [*self.urls, *(url for key, url in self._environment.items() if key != "no")]

    def hosts(self) -> list[str]:
        return [urlsplit(url).hostname or "" for url in self.configured()]

    def choose(self, request: Request) -> str | None:
        """``meta["proxy"]`` (None or "" there: no proxy), else the domain's proxy."""
        meta = request._meta
        if meta and "proxy" in meta:
            chosen: str | None = meta["proxy"] or None
            if chosen is not None:
                self._learn(chosen)
            return chosen
        urls = self.urls
        if not urls:
            return self._from_environment(request) if self._environment else None
        start = zlib.crc32(request.domain.encode()) % len(urls) if len(urls) > 1 else 0
        if not self._resting_until:
            return urls[start]
        now = self._clock()
        for step in range(len(urls)):
            url = urls[(start + step) % len(urls)]
            until = self._resting_until.get(url)
            if until is None or until <= now:
                return url
        return min(urls, key=lambda url: self._resting_until[url])  # all rest: the soonest back

    def _from_environment(self, request: Request) -> str | None:
        parts = urlsplit(request.url)
        if urllib.request.proxy_bypass_environment(parts.netloc, self._environment):  # type: ignore[attr-defined]
            return None
        chosen = self._environment.get(parts.scheme) or self._environment.get("all")
        if chosen:
            self._learn(chosen)
        return chosen or None

    def outcome(self, proxy: str, reason: str | None) -> None:
        """What a request through ``proxy`` came to: None (an answer), or its failure's reason."""
        if reason is None or reason not in PROXY_FAULTS:
            if proxy in self._failing:
                del self._failing[proxy]
                self._resting_until.pop(proxy, None)
            return
        count = self._failing[proxy] = self._failing.get(proxy, 0) + 1
        now = self._clock()
        if count >= REST_AFTER and self._resting_until.get(proxy, 0.0) <= now:  # not resting now
            self._resting_until[proxy] = now + REST_FOR
            name = self.redact(proxy)
            self.rested[name] = self.rested.get(name, 0) + 1
            self.on_rested(name)
            self._log.warning("proxy_rested", proxy=name, failures=count, rest_s=REST_FOR)

    def redact(self, text: str) -> str:
        return redact_proxies(text, self)

    def _learn(self, url: str) -> None:
        if url in self._known:
            return
        self._known.add(url)
        new = [secret for secret in _secrets(url) if secret not in self._secrets]
        if new:
            self._secrets = sorted([*self._secrets, *new], key=len, reverse=True)
        self.on_new_proxy(url)


def redact_proxies(text: str, proxies: ProxyRotation) -> str:
    """``text`` with every proxy password in it (raw or percent-decoded) replaced by ``***``."""
    for secret in proxies._secrets:
        text = text.replace(secret, "***")
    return text


def _secrets(url: str) -> list[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    if not password:
        return []
    return list({password, unquote(password)})


class PerProxy(Generic[_Client]):
    """One client (a session, a transport, a connection pool) per proxy URL, made on first
    use. Past ``limit`` of them (a provider rotating session credentials in
    ``meta["proxy"]`` makes a URL per session), the least recently used idle ones are closed;
    one in use is never closed under a request."""

    def __init__(
        self, make: Callable[[str], _Client], close: Callable[[_Client], Coroutine[Any, Any, None]], *, limit: int = 16
    ) -> None:
        self._make = make
        self._close = close
        self._limit = limit
        self._entries: OrderedDict[str, list[Any]] = OrderedDict()  # proxy -> [client, requests in flight]
        self._closing: set[asyncio.Task[None]] = set()

    def acquire(self, proxy: str) -> _Client:
        """The client for ``proxy`` (made now if need be), counted in use until release()."""
        entry = self._entries.get(proxy)
        if entry is None:
            entry = [self._make(proxy), 0]  # may raise: nothing is stored then
            self._evict_idle()
            self._entries[proxy] = entry
        else:
            self._entries.move_to_end(proxy)
        entry[1] += 1
        client: _Client = entry[0]
        return client

    def release(self, proxy: str) -> None:
        entry = self._entries.get(proxy)
        if entry is not None:
            entry[1] -= 1

    def _evict_idle(self) -> None:
        for proxy in [key for key, (_, in_flight) in self._entries.items() if in_flight == 0]:
            if len(self._entries) < self._limit:
                return
            client = self._entries.pop(proxy)[0]
            task = asyncio.get_running_loop().create_task(self._close(client))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every client; safe to call twice."""
        entries, self._entries = list(self._entries.values()), OrderedDict()
        for client, _ in entries:
            await self._close(client)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
