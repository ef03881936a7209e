"""The default downloader: one aiohttp session per crawl, bodies streamed under a size cap.

Meets the contract in ``_downloader``: ``allow_redirects=False``; aiohttp's silent resend of
an idempotent request on a dropped keep-alive connection is switched off; no aiohttp
timers (the engine's deadline sweep reads the response stream's byte count instead); a body
shorter than its Content-Length is ``incomplete_body``, never a page. Connections go
through :class:`BoundedConnector`, which also applies the private-network guard to every
address a host resolves to, when the connection is made.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

import aiohttp
import aiohttp.abc
from yarl import URL

from ._addresses import AddressGuard, BlockedAddress
from ._connector import BoundedConnector, default_max_idle_hosts
from ._downloader import Network, ReadProgress, body_limit, read_capped
from ._exceptions import RequestFailed, ResponseTooLarge, SettingsError
from ._proxies import PerProxy, ProxyRotation, redact_proxies
from ._request import Request
from ._response import Response

if TYPE_CHECKING:
    from ._settings import Settings

__all__ = ["AiohttpDownloader"]

#: aiohttp's exceptions and the failure reasons they become, most specific first.
_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (aiohttp.ClientPayloadError, "incomplete_body"),
    (aiohttp.ServerDisconnectedError, "server_disconnected"),
    (aiohttp.InvalidURL, "bad_url"),
    (aiohttp.ClientProxyConnectionError, "proxy_error"),
    (aiohttp.ClientSSLError, "tls_error"),  # a certificate that does not verify, a failed handshake
    (aiohttp.ClientConnectionError, "connection_error"),
    (aiohttp.ClientHttpProxyError, "proxy_error"),
    (aiohttp.ClientResponseError, "bad_response"),
    (aiohttp.ClientError, "client_error"),
    (ValueError, "bad_request"),  # aiohttp refusing what it was given, e.g. a newline in a header
)


class AiohttpDownloader:
    """aiohttp as the crawl's HTTP client (HTTP/1.1). ``session``: a host program's own
    ``aiohttp.ClientSession`` to share (not closed here; its cookie jar, connector and TLS
    settings are its own, so the private-network guard does not apply to it). ``resolver``:
    an ``aiohttp.abc.AbstractResolver`` instead of aiohttp's (aiodns, a fixed table); what
    it answers still passes the guard."""

    def __init__(
        self, session: aiohttp.ClientSession | None = None, *, resolver: aiohttp.abc.AbstractResolver | None = None
    ) -> None:
        self._session = session
        self._resolver = resolver
        self._owns_session = session is None
        self._jar_is_ours = False
        self._user_agent = ""
        self._max_bytes = 0
        self._proxies = ProxyRotation(())
        self._guard = AddressGuard(False)
        self._settings: Settings | None = None
        self._jar: aiohttp.abc.AbstractCookieJar = aiohttp.DummyCookieJar()
        #: A session per SOCKS proxy (closed when idle, least recently used first, past 16).
        self._socks: PerProxy[aiohttp.ClientSession] = PerProxy(self._socks_session, _close_session)
        #: What a fetch turns into a RequestFailed (aiohttp-socks' errors added once it is used).
        self._errors: tuple[type[Exception], ...] = (aiohttp.ClientError, ValueError, OSError)

    async def open(self, settings: Settings, network: Network | None = None) -> None:
        self._settings = settings
        self._user_agent = settings.user_agent
        self._max_bytes = settings.max_response_bytes
        #: Request cookies go in our own jar; a host's session keeps its jar to itself.
        self._jar_is_ours = self._owns_session and settings.cookies
        # HTTP(S)_PROXY/NO_PROXY are read by the rotation (trust_env), not by aiohttp, so every
        # proxy is the rotation's: trusted by the guard, its password redacted.
        network = network or Network.from_settings(settings)
        self._proxies = network.proxies
        if self._session is not None:
            return
        if any(url.startswith("socks") for url in self._proxies.urls) and not _has_socks():
            raise SettingsError("proxy", "a socks5:// proxy needs aiohttp-socks: pip install 'crawler[socks]'")
        self._guard = guard = network.guard
        # unsafe=True: aiohttp's default jar drops cookies from IP-address hosts, so a login
        # on http://127.0.0.1/ or a LAN box would be forgotten; a crawler keeps them as it
        # does for any host (still scoped to that host by the jar). One jar for every
        # session (direct, and each SOCKS proxy's), as one browser has.
        self._jar = aiohttp.CookieJar(unsafe=True) if settings.cookies else aiohttp.DummyCookieJar()
        # Idle keep-alive connections and the DNS cache bounded (see _connector): a broad
        # crawl would otherwise hold a socket and an address for every host met.
        connector = BoundedConnector(
            limit=settings.concurrency,
            ttl_dns_cache=300,
            max_idle_hosts=default_max_idle_hosts(settings.concurrency, settings.domain_concurrency),
            guard=guard,
            ssl=_tls_context(settings),
            **({"resolver": self._resolver} if self._resolver is not None else {}),
        )
        self._session = self._new_session(connector)

    def _new_session(self, connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
        settings = self._settings
        assert settings is not None
        session = aiohttp.ClientSession(
            connector=connector,
            # No timers of aiohttp's own, not even its default 5 minutes: the engine's sweep.
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_read=None, sock_connect=None),
            headers={"User-Agent": settings.user_agent},
            cookie_jar=self._jar,
            trust_env=False,  # the environment's proxies come through ProxyRotation
        )
        # aiohttp silently resends an idempotent request once when a connection drops. That
        # second try would bypass the domain's limiter and the retry count; our own retries
        # (with backoff) cover a stale keep-alive connection instead. The switch is private
        # (aiohttp's own test utilities set it), hence the guard.
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        return session

    def _socks_session(self, proxy: str) -> aiohttp.ClientSession:
        """A new session that goes through SOCKS proxy ``proxy`` (aiohttp-socks' connector:
        aiohttp itself speaks HTTP proxies only); kept per proxy by ``self._socks``."""
        settings = self._settings
        assert settings is not None
        import aiohttp_socks  # type: ignore[import-not-found,unused-ignore]
        import python_socks  # type: ignore[import-not-found,unused-ignore]

        # rdns: the proxy resolves host names (socks5h), so DNS goes where the traffic goes.
        connector = aiohttp_socks.ProxyConnector.from_url(
            proxy.replace("socks5h://", "socks5://", 1), rdns=True, limit=settings.concurrency,
            ssl=_tls_context(settings),
        )
        if aiohttp_socks.ProxyError not in self._errors:
            socks_errors = (python_socks.ProxyError, python_socks.ProxyConnectionError, python_socks.ProxyTimeoutError)
            self._errors = (*self._errors, aiohttp_socks.ProxyError, *socks_errors)
        return self._new_session(connector)

    def _through_socks(self, proxy: str, request: Request) -> aiohttp.ClientSession:
        try:
            return self._socks.acquire(proxy)
        except ImportError:
            message = "a socks5:// proxy needs aiohttp-socks: pip install 'crawler[socks]'"
        except ValueError as exc:
            message = redact_proxies(str(exc), self._proxies)
        raise RequestFailed("proxy_error", message, request=request)

    async def aclose(self) -> None:
        """Close the sessions this downloader made; safe to call twice."""
        session, self._session = self._session, None
        await self._socks.aclose()
        if session is not None and self._owns_session:
            await session.close()

    async def fetch(self, request: Request, progress: ReadProgress) -> Response:
        session = self._session
        if session is None:
            raise RequestFailed("closed", "downloader is closed", request=request)
        headers = request._headers
        if not self._owns_session and not (headers and any(k.lower() == "user-agent" for k in headers)):
            headers = {**(headers or {}), "User-Agent": self._user_agent}  # a host's session
        cookies = self._request_cookies(session, request) if request.cookies is not None else None
        proxies = self._proxies
        proxy = http_proxy = proxies.choose(request)
        socks = False
        try:
            url = URL(request.url, encoded=True)
        except ValueError as exc:  # what canonicalize let through and yarl refuses
            raise RequestFailed("bad_url", str(exc), request=request) from exc
        if proxy is not None:
            if self._guard.enabled:  # the proxy resolves the host: judge what can be judged here
                try:
                    self._guard.check_literal(url.raw_host or "")
                except BlockedAddress as exc:
                    raise RequestFailed("blocked_address", str(exc), request=request) from None
            if proxy.startswith("socks"):
                session, http_proxy = self._through_socks(proxy, request), None  # its connector goes through it
                socks = True
        try:
            async with session.request(
                request.method,
                url,
                headers=headers,
                cookies=cookies,
                data=request.body,
                allow_redirects=False,
                proxy=http_proxy,
            ) as resp:
                content = resp.content
                progress.count_with(lambda: content.total_bytes)
                body = await self._read(resp, request, progress)
        except self._errors as exc:
            if isinstance(exc, ResponseTooLarge):
                raise
            failure = _failure(exc, request, proxies)
            if proxy is not None:
                proxies.outcome(proxy, failure.reason)
            # Through a proxy, aiohttp's own message may hold the proxy's URL, password and
            # all: the failure (whose message is redacted) stands alone.
            raise failure from (None if proxy is not None else exc)
        finally:
            if socks and proxy is not None:
                self._socks.release(proxy)
        if proxy is not None:
            proxies.outcome(proxy, None)
        return Response(request.url, resp.status, resp.headers, body, request)

    def _request_cookies(self, session: aiohttp.ClientSession, request: Request) -> SimpleCookie | None:
        """Put the request's cookies in the crawl's jar, which sends them (``None`` returned);
        with no jar of ours (``cookies`` off, or a host's session, whose jar is never written
        to), return them to go with this request only, where they win over the jar's."""
        cookies = as_cookies(request.cookies)
        if not self._jar_is_ours:
            return cookies
        # Once per chain: a retry or a redirect hop must not undo cookies the server set
        # since (a login's 302 with a new session cookie).
        if request.attempt == 1 and request.redirects == 0:
            session.cookie_jar.update_cookies(cookies, URL(request.url, encoded=True))
        return None

    async def _read(self, resp: aiohttp.ClientResponse, request: Request, progress: ReadProgress) -> bytes:
        length = resp.content_length
        if length is not None and "Content-Encoding" not in resp.headers:  # the length is the body's
            limit, truncate = body_limit(request, self._max_bytes)
            if length <= limit:  # the parser stops at Content-Length: one read
                return await resp.read()
            if not truncate:
                resp.close()
                raise ResponseTooLarge(limit, request=request)
        body, cut = await read_capped(resp.content.iter_any(), request, self._max_bytes, progress)
        if cut:
            resp.close()  # drop the connection rather than drain the rest
        return body


def _failure(exc: BaseException, request: Request, proxies: ProxyRotation) -> RequestFailed:
    """``exc`` as a RequestFailed with its reason from :data:`_REASONS`."""
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, BlockedAddress):
        return RequestFailed("blocked_address", str(exc.os_error), request=request)
    if isinstance(exc, aiohttp.ClientHttpProxyError) and exc.status in (502, 503, 504):
        # The proxy could not open a tunnel to the site: the site's failure, not the proxy's.
        return RequestFailed("connection_error", redact_proxies(str(exc), proxies), request=request)
    reason = next((reason for kind, reason in _REASONS if isinstance(exc, kind)), None)
    if reason is None:  # a SOCKS proxy's error (python-socks' own), or a bare OSError
        socks = type(exc).__module__.startswith(("python_socks", "aiohttp_socks"))
        reason = "proxy_error" if socks else "connection_error"
    message = str(exc) if reason not in ("client_error", "bad_request") else f"{type(exc).__name__}: {exc}"
    return RequestFailed(reason, redact_proxies(message, proxies), request=request)


async def _close_session(session: aiohttp.ClientSession) -> None:
    await session.close()


def _has_socks() -> bool:
    import importlib.util

    return importlib.util.find_spec("aiohttp_socks") is not None


def _tls_context(settings: Settings) -> ssl.SSLContext | bool:
    """What aiohttp verifies servers with: the system's trust store, or ``tls_ca_file``, or
    nothing at all with ``tls_verify=false``."""
    if not settings.tls_verify:
        return False
    if settings.tls_ca_file:
        return ssl.create_default_context(cafile=settings.tls_ca_file)
    return True


def as_cookies(cookies: Any) -> SimpleCookie:
    """A request's cookies (``{name: value}`` or Scrapy's list of dicts) as morsels; path
    ``/`` unless given, so they apply to the whole host rather than the URL's directory."""
    entries = (
        [{"name": k, "value": v} for k, v in cookies.items()] if isinstance(cookies, Mapping) else cookies
    )
    jar = SimpleCookie()
    for entry in entries:
        name = entry["name"]
        jar[name] = str(entry["value"])
        jar[name]["path"] = entry.get("path") or "/"
        if entry.get("domain"):
            jar[name]["domain"] = entry["domain"]
    return jar
