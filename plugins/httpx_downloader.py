"""The httpx downloader: HTTP/2 (and HTTP/1.1) through httpx and httpcore.

``pip install "crawler[http2]"``, then ``-s downloader=httpx``. Over ``https://`` a server
that offers HTTP/2 (ALPN) gets one connection per origin with the requests multiplexed as
streams on it (the domain's ``domain_concurrency`` counts streams); plain ``http://`` stays
HTTP/1.1. It costs more CPU per request than aiohttp (httpx is pure Python end to end; see
the README's figures): choose it for HTTP/2, not for speed.

It meets the downloader contract (``crawler._downloader``): no redirects followed, no
retries (``retries=0``; httpcore never resends a request), the body read as a stream of
decoded chunks under the cap, progress counted for the deadline sweep (no httpx timeouts),
failures mapped by one table, the private-network guard applied in the network backend to
every address a host resolves to, before connecting. ``proxy``: one httpx client per proxy
(httpx takes a proxy per client, not per request); ``socks5://`` needs ``httpx[socks]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import socket
import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import h2.errors
import h2.events
import httpcore
import httpx
from multidict import CIMultiDict, CIMultiDictProxy

from crawler import Request, RequestFailed, Response
from crawler._addresses import AddressGuard, BlockedAddress
from crawler._aiohttp import as_cookies
from crawler._decoding import accept_encoding, decoded, is_supported
from crawler._downloader import Network, ReadProgress, read_capped
from crawler._proxies import PerProxy, ProxyRotation, redact_proxies

if TYPE_CHECKING:
    from crawler import Settings

__all__ = ["HttpxDownloader"]

#: httpx's exceptions and the failure reasons they become, most specific first; the ones
#: that depend on whether the status line had arrived are in _reason().
_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (httpx.ProxyError, "proxy_error"),
    (httpx.UnsupportedProtocol, "bad_url"),
    (httpx.InvalidURL, "bad_url"),
    (httpx.ConnectError, "connection_error"),
    (httpx.ConnectTimeout, "connection_error"),
    (httpx.WriteError, "connection_error"),
    (httpx.LocalProtocolError, "bad_request"),
    (httpx.DecodingError, "bad_response"),
    (httpx.TransportError, "connection_error"),
    (httpx.HTTPError, "client_error"),
    (ValueError, "bad_request"),
)


class HttpxDownloader:
    """httpx as the crawl's HTTP client. ``http2``: offer HTTP/2 over TLS (default True).

    Requests go straight to httpx's transport (httpcore's pool), not through
    ``httpx.AsyncClient``: the client parses every Location header to offer a redirect
    (and fails the response on a malformed one), and logs each request at INFO; the engine
    follows redirects itself, and the host program owns its logging.
    """

    def __init__(self, *, http2: bool = True) -> None:
        self._http2 = http2
        self._direct: httpx.AsyncHTTPTransport | None = None
        #: A transport per proxy (httpx takes proxies per transport), idle ones closed past 16.
        self._via: PerProxy[httpx.AsyncHTTPTransport] = PerProxy(self._transport, _close_transport)
        self._settings: Settings | None = None
        self._guard = AddressGuard(False)
        self._proxies = ProxyRotation(())
        self._cookies = httpx.Cookies()
        self._jar_is_ours = False
        self._defaults: list[tuple[str, str]] = []

    async def open(self, settings: Settings, network: Network | None = None) -> None:
        network = network or Network.from_settings(settings)
        self._settings = settings
        self._guard = network.guard
        self._proxies = network.proxies
        self._jar_is_ours = settings.cookies
        # One jar, whichever proxy a request goes through, as one browser has; none kept
        # with cookies off (a policy that refuses every domain).
        self._cookies = httpx.Cookies(
            http.cookiejar.CookieJar(
                policy=None if settings.cookies else http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
            )
        )
        self._defaults = [
            ("User-Agent", settings.user_agent),
            ("Accept", "*/*"),
            ("Accept-Encoding", accept_encoding()),
        ]
        self._direct = self._transport(None)

    def _transport(self, proxy: str | None) -> httpx.AsyncHTTPTransport:
        settings = self._settings
        assert settings is not None
        verify: ssl.SSLContext | bool = False
        if settings.tls_verify:
            verify = ssl.create_default_context(cafile=settings.tls_ca_file)
        limits = httpx.Limits(
            max_connections=settings.concurrency,
            max_keepalive_connections=settings.concurrency,
            keepalive_expiry=15.0,
        )
        transport = httpx.AsyncHTTPTransport(
            verify=verify, http2=self._http2, limits=limits, retries=0, trust_env=settings.trust_env, proxy=proxy
        )
        pool = getattr(transport, "_pool", None)
        if proxy is None and pool is not None and hasattr(pool, "_network_backend"):
            pool._network_backend = _GuardedBackend(pool._network_backend, self._guard)
        return transport

    async def aclose(self) -> None:
        """Close every connection pool; safe to call twice."""
        direct, self._direct = self._direct, None
        await self._via.aclose()
        if direct is not None:
            await direct.aclose()

    async def fetch(self, request: Request, progress: ReadProgress) -> Response:
        settings = self._settings
        direct = self._direct
        if settings is None or direct is None:
            raise RequestFailed("closed", "downloader is closed", request=request)
        proxies = self._proxies
        proxy = proxies.choose(request)
        started = completed = False
        try:
            transport = direct if proxy is None else self._via.acquire(proxy)
            outgoing = self._request(request)
            if proxy is not None:
                self._guard.check_literal(outgoing.url.host)
            resp = await transport.handle_async_request(outgoing)
            started = True
            progress.received = 0
            try:
                resp.request = outgoing
                self._cookies.extract_cookies(resp)
                # httpx inflates each raw chunk whole (a bomb's 64 KB chunk is 64 MB): the
                # shared decoder inflates in bounded pieces, so the cap holds while inflating.
                coding = resp.headers.get("Content-Encoding", "")
                chunks = decoded(resp.aiter_raw(), coding, request) if is_supported(coding) else resp.aiter_raw()
                body, cut = await read_capped(chunks, request, settings.max_response_bytes, progress)
                completed = not cut
            finally:
                if not completed and resp.extensions.get("http_version") == b"HTTP/2":
                    await _drop_connection(resp)
                await resp.aclose()  # over HTTP/1.1, after an early stop the connection is dropped, not drained
        except BlockedAddress as exc:
            raise RequestFailed("blocked_address", str(exc), request=request) from None
        except RequestFailed:  # too large, or a body that cannot be decoded
            raise
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, ImportError) as exc:
            reason = _reason(exc, started, proxy is not None)
            if proxy is not None:
                proxies.outcome(proxy, reason)
            message = str(exc) or type(exc).__name__
            # Through a proxy the client's own message may hold the proxy URL: not chained.
            failure = RequestFailed(reason, redact_proxies(message, proxies), request=request)
            raise failure from (None if proxy is not None else exc)
        finally:
            if proxy is not None:
                self._via.release(proxy)
        if proxy is not None:
            proxies.outcome(proxy, None)
        # Decoded as aiohttp decodes them (UTF-8, a stray byte kept as a surrogate escape),
        # not httpx's way (Latin-1 for a header set that is not UTF-8).
        headers = CIMultiDictProxy(
            CIMultiDict(
                (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
                for name, value in resp.headers.raw
            )
        )
        return Response(request.url, resp.status_code, headers, body, request)

    def _request(self, request: Request) -> httpx.Request:
        """The httpx request: the defaults under the request's own headers, and one Cookie
        header joining the request's own, its ``cookies`` and the jar's (as aiohttp does)."""
        given = request._headers or {}
        lowered = {name.lower() for name in given}
        headers = [(name, value) for name, value in self._defaults if name.lower() not in lowered]
        headers.extend(given.items())
        outgoing = httpx.Request(request.method, request.url, headers=headers, content=request.body)
        parts = outgoing.headers.get_list("Cookie")
        if parts:
            del outgoing.headers["Cookie"]  # (the jar adds its cookies only to a request without one)
        if request.cookies is not None:
            cookies = as_cookies(request.cookies)
            if not self._jar_is_ours:  # with this request only
                parts.append("; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items()))
            elif request.attempt == 1 and request.redirects == 0:  # into the jar, once per chain
                host = outgoing.url.host
                for name, morsel in cookies.items():
                    self._cookies.set(name, morsel.value, domain=morsel["domain"] or host, path=morsel["path"] or "/")
        if self._jar_is_ours:
            self._cookies.set_cookie_header(outgoing)
            parts.extend(outgoing.headers.get_list("Cookie"))
        if parts:
            outgoing.headers["Cookie"] = "; ".join(parts)
        return outgoing


async def _drop_connection(resp: httpx.Response) -> None:
    """End an HTTP/2 stream stopped before its end. httpcore sends no RST_STREAM for it and
    keeps the 16 MiB window it granted the stream: the DATA still coming would use up the
    connection's window and stall every other stream on it. So the stream is reset and the
    window its unread DATA holds is given back (through httpcore's internals, checked for);
    failing that, the connection is closed (its other
    requests then fail, and are retried, on a new one)."""
    stream: Any = getattr(getattr(getattr(resp, "stream", None), "_httpcore_stream", None), "_stream", None)
    connection: Any = getattr(stream, "_connection", None)
    stream_id = getattr(stream, "_stream_id", None)
    state = getattr(connection, "_h2_state", None)
    if state is not None and stream_id is not None and hasattr(connection, "_write_outgoing_data"):
        try:
            state.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
            # DATA already received for the stream and queued unread (megabytes, when the
            # server is fast): httpcore gives a chunk's window back only as a reader takes
            # it, so without this every stopped body would shrink the connection's window
            # for good, until it stalls.
            queued = getattr(connection, "_events", {}).get(stream_id, ())
            data = [event for event in queued if isinstance(event, h2.events.DataReceived)]
            unread = sum(event.flow_controlled_length or 0 for event in data)
            if unread:
                state.acknowledge_received_data(unread, stream_id)
            await connection._write_outgoing_data(stream._request)
            return
        except Exception:  # the connection is dropped below instead
            pass
    network = resp.extensions.get("network_stream")
    if network is not None:
        with contextlib.suppress(Exception):
            await network.aclose()


async def _close_transport(transport: httpx.AsyncHTTPTransport) -> None:
    await transport.aclose()


def _reason(exc: BaseException, started: bool, proxied: bool = False) -> str:
    """A failure's reason; a connection lost after the status line is an incomplete body;
    through a proxy, a connection that cannot be made is the proxy's (the only one opened)."""
    if proxied and isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) and not _caused_by(exc, ssl.SSLError):
        return "proxy_error"
    if isinstance(exc, ImportError):  # socks5:// without socksio
        return "proxy_error"
    if isinstance(exc, httpx.ConnectError) and _caused_by(exc, ssl.SSLError):
        return "tls_error"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        if started:
            return "incomplete_body"
        if isinstance(exc, httpx.RemoteProtocolError) and "disconnect" not in str(exc).lower():
            return "bad_response"  # a malformed status line or headers, as aiohttp reports them
        return "server_disconnected"
    return next((reason for kind, reason in _REASONS if isinstance(exc, kind)), "client_error")


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # a short chain: httpx wraps httpcore wraps the ssl error
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the private-network guard: the host is resolved
    here, every address checked, and the connection made to a checked address (TLS still
    names the host: httpcore passes it to ``start_tls`` itself)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, guard: AddressGuard) -> None:
        self._inner = inner
        self._guard = guard

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        guard = self._guard
        if not guard.enabled:
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            if not guard.allows(host, address):
                raise guard.refuse(host, address)
        error: Exception = httpcore.ConnectError(f"{host} resolved to no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
