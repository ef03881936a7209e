"""The downloader protocol: what the engine asks of an HTTP client, and what it does itself.

A downloader (aiohttp by default, httpx, or any class with these three methods) turns one
``Request`` into one ``Response``. Its contract, which every downloader in the project
meets and is tested for (``tests/test_downloaders.py`` runs the misbehaving-server and
timeout suites over each):

- **No redirects followed.** A 3xx comes back as a response; the engine follows it hop by
  hop, so each hop passes the offsite check, dedupe and its domain's limiter.
- **No hidden retries or resends.** One ``fetch`` sends the request at most once: a resend on
  a dropped keep-alive connection would bypass the domain's limiter and the retry count.
- **The body capped after decompression, while streaming**: use :func:`read_capped` (or
  :func:`body_limit` for a body whose length is known first), never a whole-body read of an
  unknown length. A gzip bomb then costs about the cap in memory.
- **Read progress reported** through the :class:`ReadProgress` it is given: the engine's
  one deadline sweep (``timeout``, ``read_timeout``) cancels a fetch that stops receiving.
  The downloader sets no timers of its own.
- **Failures raised as** :class:`RequestFailed` with a reason the retry policy knows
  (:data:`RETRY_REASONS` in ``_retry``): ``connection_error``, ``server_disconnected``,
  ``incomplete_body`` (fewer bytes than Content-Length), ``bad_url``, ``bad_request``,
  ``bad_response``, ``blocked_address`` (the private-network guard), ``client_error``.
- ``Response.headers`` is a ``multidict.CIMultiDictProxy`` (:data:`crawler.Headers`):
  case-insensitive, every value of a repeated header kept, whichever client fetched it.
- ``open(settings)`` once before the first fetch; ``aclose()`` is safe twice and waits
  until the client is closed.

The engine picks one with the setting ``downloader`` (a name among the ``crawler.plugins``
entry points: ``aiohttp``, ``httpx``) or takes one given to ``Crawler(downloader=...)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import urlsplit

from ._addresses import AddressGuard
from ._deadlines import Deadlines
from ._deadlines import Fetch as ReadProgress
from ._exceptions import RequestFailed, ResponseTooLarge, SettingsError
from ._proxies import ProxyRotation
from ._request import Request
from ._response import Response

if TYPE_CHECKING:
    import aiohttp

    from ._settings import Settings

__all__ = [
    "Downloader",
    "Fetcher",
    "Network",
    "ReadProgress",
    "body_limit",
    "downloader_for",
    "load_downloader",
    "make_downloader",
    "read_capped",
]


@runtime_checkable
class Downloader(Protocol):
    """An HTTP client behind the engine; see the module's docstring for the contract."""

    async def open(self, settings: Settings, network: Network) -> None:
        """Make the client, with the crawl's settings (user agent, cookies, TLS); send each
        request through the proxy ``network.proxies.choose(request)`` names (and report its
        ``outcome``), and connect to no address ``network.guard.allows`` refuses."""

    async def fetch(self, request: Request, progress: ReadProgress) -> Response:
        """Send ``request`` once and return its response (a 3xx included), or raise
        :class:`RequestFailed`."""

    async def aclose(self) -> None:
        """Close the client (if this downloader made it); safe to call twice."""


def body_limit(request: Request, default: int) -> tuple[int, bool]:
    """The cap on ``request``'s body (``meta["max_response_bytes"]`` over the setting), and
    whether a longer body is cut at it (``meta["truncate_body"]``) rather than refused."""
    meta = request._meta
    if not meta:
        return default, False
    return meta.get("max_response_bytes", default), bool(meta.get("truncate_body", False))


async def read_capped(
    chunks: AsyncIterator[bytes], request: Request, default_limit: int, progress: ReadProgress
) -> tuple[bytes, bool]:
    """Read the decompressed ``chunks`` of a body up to its cap (see :func:`body_limit`).

    Returns the body and whether the read stopped early (then the caller drops the
    connection rather than drain the rest). Over the cap, raises ResponseTooLarge unless
    the request asked for a truncated body. Counts what arrives in ``progress``.
    """
    limit, truncate = body_limit(request, default_limit)
    parts: list[bytes] = []
    size = 0
    if progress.received < 0:
        progress.received = 0
    async for chunk in chunks:
        size += len(chunk)
        progress.received = size
        if size > limit:
            if truncate:
                parts.append(chunk[: len(chunk) - (size - limit)])
                return b"".join(parts), True
            raise ResponseTooLarge(limit, request=request)
        parts.append(chunk)
    return (parts[0] if len(parts) == 1 else b"".join(parts)), False


@dataclasses.dataclass(frozen=True, slots=True)
class Network:
    """Where a crawl's requests may go, decided by the engine and shared by its downloader:
    the private-network guard (see ``_addresses``) and the proxies (see ``_proxies``), the
    configured proxies trusted by the guard on their own host and port."""

    guard: AddressGuard
    proxies: ProxyRotation

    @classmethod
    def from_settings(
        cls, settings: Settings, guard: AddressGuard | None = None, on_rested: Callable[[str], None] | None = None
    ) -> Network:
        guard = guard if guard is not None else AddressGuard.from_settings(settings)
        proxies = ProxyRotation.from_settings(settings, environment=settings.trust_env)
        guard.trust_proxies(proxies.configured())
        proxies.on_new_proxy = lambda url: guard.trust_proxies([url])
        if on_rested is not None:
            proxies.on_rested = on_rested
        return cls(guard, proxies)


class Fetcher:
    """The engine's side of a download: the deadline sweep around a downloader's fetch."""

    def __init__(self, downloader: Downloader, settings: Settings, network: Network | None = None) -> None:
        self.downloader = downloader
        self.network = network if network is not None else Network.from_settings(settings)
        self.guard = self.network.guard
        self._settings = settings
        self._deadlines = Deadlines(settings.timeout, settings.read_timeout)

    async def open(self) -> None:
        await self.downloader.open(self._settings, self.network)

    async def aclose(self) -> None:
        self._deadlines.close()
        await self.downloader.aclose()

    async def fetch(self, request: Request) -> Response:
        guard = self.guard
        # A start request added by another worker (or restored), never a robots.txt fetch
        # (internal; its origin may be a link's) nor a redirect hop.
        if guard.auto and guard.enabled and request.depth == 0 and not request.redirects and not request.internal:
            guard.saw_start(urlsplit(request.url).hostname or "")
        progress = self._deadlines.watch()
        try:
            response = await self.downloader.fetch(request, progress)
        except BaseException as exc:
            limit = self._deadlines.done(progress, exc)
            if limit is not None:
                raise self._timed_out(limit, request) from exc
            raise
        self._deadlines.done(progress, None)
        return response

    def _timed_out(self, limit: str, request: Request) -> RequestFailed:
        if limit == "read_timeout":
            message = f"no data for {self._settings.read_timeout}s"
        else:
            message = f"no complete answer within {self._settings.timeout}s"
        return RequestFailed("timeout", message, request=request)


def load_downloader(name: str) -> Callable[[], Downloader]:
    """The downloader class registered as ``name`` in the ``crawler.plugins`` entry points."""
    from importlib.metadata import entry_points

    if name == "aiohttp":  # the default: no metadata scan on every crawl (nor a package to find)
        from ._aiohttp import AiohttpDownloader

        return AiohttpDownloader
    found = [ep for ep in entry_points(group="crawler.plugins") if ep.name == name]
    if not found:
        raise SettingsError("downloader", f"no downloader named {name!r} (known: {', '.join(_known())})")
    try:
        loaded = found[0].load()
    except ImportError as exc:
        raise SettingsError(
            "downloader",
            f"{name!r} needs a package that is not installed ({exc}): pip install 'crawler[{_EXTRAS.get(name, name)}]'",
        ) from None
    if not callable(loaded):
        raise SettingsError("downloader", f"{name!r} is not a downloader class")
    return loaded  # type: ignore[no-any-return]


_EXTRAS = {"httpx": "http2", "pyreqwest": "fast"}  # the extra that installs a downloader's client


def downloader_for(
    settings: Settings, session: aiohttp.ClientSession | None
) -> Downloader | Callable[[], Downloader]:
    """What makes a crawl's downloader: aiohttp around a host's ``session``, or the
    downloader the setting names (a class: each crawl makes its own)."""
    if session is not None:
        from ._aiohttp import AiohttpDownloader

        return AiohttpDownloader(session)
    return load_downloader(settings.downloader)


def make_downloader(given: Downloader | Callable[[], Downloader]) -> Downloader:
    """The downloader for one crawl: ``given`` itself, or what the class or factory makes."""
    if isinstance(given, Downloader) and not isinstance(given, type):
        client: object = given
    else:
        client = given() if callable(given) else given
    if not isinstance(client, Downloader):
        raise TypeError(f"{client!r} is not a downloader: it needs async open, fetch and aclose")
    return client


def _known() -> list[str]:
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="crawler.plugins") if "download" in ep.value.lower()}
    return sorted(names | {"aiohttp"})
