"""The pyreqwest downloader: HTTP/2 (and HTTP/1.1) through pyreqwest, Rust's reqwest and hyper.

``pip install pyreqwest``, then ``Crawler(spider, downloader=PyreqwestDownloader())``. Over
``https://`` a server that offers HTTP/2 (ALPN) gets it; plain ``http://`` stays HTTP/1.1.

It meets the downloader contract (``crawler._downloader``): no redirects followed; reqwest's
own decompression off, the raw body streamed chunk by chunk (``streamed_read_buffer_limit(0)``:
pyreqwest otherwise reads 64 KB of body before it hands over the status line, and forwards
the rest in 64 KB batches, which hides read progress) and inflated by ``crawler._decoding``
under the cap; progress counted for the deadline sweep; failures mapped by one function
(:func:`_reason`); one cookie jar (pyreqwest's ``CookieStore``) shared by the clients; one
client per proxy (reqwest takes proxies per client).

What pyreqwest (0.15) cannot do, and what is done instead:

- **The private-network guard is checked before the request, not at connect time.**
  pyreqwest offers no DNS resolver hook (only a static ``resolve()`` table per client). So
  the host is resolved here with ``loop.getaddrinfo`` and every address checked with
  ``guard.allows`` (IP literals too); a host found public is trusted for ``_CHECK_TTL``
  seconds. reqwest then resolves the host again itself: a DNS answer that changes between
  the two lookups (DNS rebinding with a short TTL) can still steer a connection to a private
  address. A crawl that must be safe against rebinding should use the aiohttp or httpx
  downloader, which check the address they connect to.
- **Retries of protocol refusals.** reqwest 0.13's default retry policy resends a request the
  server refused at the HTTP/2 level (GOAWAY with NO_ERROR, REFUSED_STREAM: the server has
  not processed it, RFC 9113 8.7), up to twice; hyper resends a request that never got
  written to a pooled connection found dead. pyreqwest does not expose ``retry`` to turn
  this off. Neither is a duplicate the server sees, but each is a send the domain's limiter
  does not count. ``PyreqwestDownloader(http2=False)`` avoids the HTTP/2 ones.
- **Cancellation does not abort a request still waiting for its status line.** pyreqwest
  spawns the request on its Tokio runtime and, when the awaiting task is cancelled, drops
  the join handle, which detaches the request rather than aborting it: its connection stays
  open until the server answers. (Cancelled while the body streams, the response is closed
  and the connection dropped at once.) Each client therefore has a total timeout of
  ``timeout + _BACKSTOP`` seconds, past the engine's own deadline, which only ends such
  orphans; the engine's sweep still decides every timeout a crawl sees.
- **Header values that are not visible ASCII cannot be read** (pyreqwest raises on
  converting them to ``str``, raw bytes are not exposed). Such a value is left out of
  ``Response.headers``; a redirect whose ``Location`` is one fails with ``bad_response``.
- ``tls_ca_file`` adds its certificates to the system's trust store (reqwest's
  ``tls_built_in_root_certs(false)`` is not exposed), where aiohttp and httpx trust the
  file alone.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import timedelta
from http.cookies import Morsel
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from multidict import CIMultiDict, CIMultiDictProxy
from pyreqwest import exceptions as errors
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.cookie import Cookie, CookieStore
from pyreqwest.proxy import ProxyBuilder
from pyreqwest.response import Response as RawResponse

from crawler import Request, RequestFailed, Response
from crawler._addresses import AddressGuard, BlockedAddress
from crawler._aiohttp import as_cookies
from crawler._decoding import accept_encoding, decoded, is_supported
from crawler._downloader import Network, ReadProgress, read_capped
from crawler._proxies import ProxyRotation, redact_proxies

if TYPE_CHECKING:
    from crawler import Settings

__all__ = ["PyreqwestDownloader"]

_BACKSTOP = 10.0  # seconds past the engine's ``timeout`` after which reqwest ends an orphaned request
_SETTLE = 0.05  # seconds aclose() leaves pyreqwest's runtime thread to tear the closed clients down
_YEAR = 365 * 86400.0  # the backstop for a timeout of "never"
_CHECK_TTL = 10.0  # seconds a host whose addresses were all found public is not looked up again
_CHECKED_MAX = 4096  # hosts remembered so; the table is emptied when it is full
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)

#: pyreqwest's exceptions and the failure reasons they become, most specific first. The
#: causes reqwest reports refine them in _reason() (TLS, proxy, a connection the server
#: closed), and so does whether the status line had arrived.
_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (errors.ClientClosedError, "closed"),
    (errors.RequestTimeoutError, "timeout"),  # only the backstop: the engine times requests itself
    (errors.BuilderError, "bad_request"),
    (errors.DecodeError, "bad_response"),  # a status line or header block that does not parse
    (errors.ConnectError, "connection_error"),
    (errors.TransportError, "connection_error"),
    (errors.PyreqwestError, "client_error"),
    (ValueError, "bad_request"),  # pyreqwest refusing what it was given, e.g. a newline in a header
)
#: Words in reqwest's causes that say which part failed.
_TLS_WORDS = ("certificate", "tls", "handshake", "ssl")
_PROXY_WORDS = ("proxy", "tunnel", "socks")
_SENT_WORDS = ("(sendrequest)", "connection closed before message completed")
_FOR_URL = re.compile(r" for url \(.*\)$")


class PyreqwestDownloader:
    """pyreqwest as the crawl's HTTP client. ``http2``: offer HTTP/2 over TLS (default True)."""

    def __init__(self, *, http2: bool = True) -> None:
        self._http2 = http2
        self._clients: dict[str | None, Client] = {}
        self._settings: Settings | None = None
        self._guard = AddressGuard(False)
        self._proxies = ProxyRotation(())
        self._jar: CookieStore | None = None
        self._roots: list[bytes] = []
        self._checked: dict[str, float] = {}  # host -> loop time until which its addresses count as checked

    async def open(self, settings: Settings, network: Network | None = None) -> None:
        network = network or Network.from_settings(settings)
        self._settings = settings
        self._guard = network.guard
        self._proxies = network.proxies
        # One jar, whichever proxy a request goes through, as one browser has; none with cookies off.
        self._jar = CookieStore() if settings.cookies else None
        self._roots = []
        if settings.tls_verify and settings.tls_ca_file:
            self._roots = _PEM.findall(Path(settings.tls_ca_file).read_bytes())
        self._clients[None] = self._client(None)

    def _client(self, proxy: str | None) -> Client:
        settings = self._settings
        assert settings is not None
        builder = (
            ClientBuilder()
            .follow_redirects(False)
            .referer(False)
            .gzip(False)  # decoded here, in bounded pieces: reqwest inflates without a cap
            .brotli(False)
            .deflate(False)
            .zstd(False)
            .user_agent(settings.user_agent)
            .default_headers([("Accept", "*/*"), ("Accept-Encoding", accept_encoding())])
            .pool_idle_timeout(timedelta(seconds=15))
            .timeout(timedelta(seconds=min(settings.timeout + _BACKSTOP, _YEAR)))
            .no_proxy()  # not reqwest's reading of HTTP(S)_PROXY: ProxyRotation decides
        )
        builder = builder.http2(True) if self._http2 else builder.http1_only()
        if self._jar is not None:
            builder = builder.cookie_provider(self._jar)
        if not settings.tls_verify:
            builder = builder.danger_accept_invalid_certs(True)
        for root in self._roots:
            builder = builder.add_root_certificate_pem(root)
        if proxy is not None:
            builder = builder.proxy(ProxyBuilder.all(proxy))
        return builder.build()

    async def aclose(self) -> None:
        """Close every client and let go of it; safe to call twice.

        ``Client.close()`` only refuses new requests: the pools and their connections go when
        the client object is freed, torn down on pyreqwest's runtime thread. That thread
        touching the interpreter while it finalizes aborts the process (``PyGILState_Release``),
        so the teardown is given ``_SETTLE`` seconds here, before a short program can exit."""
        clients, self._clients = list(self._clients.values()), {}
        if not clients:
            return
        while clients:
            await clients.pop().close()  # (popped: no reference left once closed)
        await asyncio.sleep(_SETTLE)

    async def fetch(self, request: Request, progress: ReadProgress) -> Response:
        settings = self._settings
        client = self._clients.get(None)
        if settings is None or client is None:
            raise RequestFailed("closed", "downloader is closed", request=request)
        proxies = self._proxies
        proxy = proxies.choose(request)
        started = False
        try:
            try:
                parts = urlsplit(request.url)
                host, port = parts.hostname or "", parts.port
            except ValueError as exc:
                raise RequestFailed("bad_url", str(exc), request=request) from None
            if proxy is None:
                if self._guard.enabled:
                    await self._check_host(host, port or (443 if parts.scheme == "https" else 80), request)
            else:
                self._guard.check_literal(host)
                chosen = self._clients.get(proxy)
                client = chosen if chosen is not None else self._proxy_client(proxy, request)
            try:
                builder = client.request(request.method, request.url)
            except ValueError as exc:  # the URL, or the method, that pyreqwest refuses
                reason = "bad_request" if "method" in str(exc).lower() else "bad_url"
                raise RequestFailed(reason, _message(exc), request=request) from None
            headers = self._headers(request)
            if headers:
                builder = builder.headers(headers)
            if request.body is not None:
                builder = builder.body_bytes(request.body)
            # 0: the response as soon as its head has arrived, each chunk as soon as it is read.
            async with builder.streamed_read_buffer_limit(0).build_streamed() as resp:
                started = True
                progress.received = 0
                status = resp.status
                response_headers = _response_headers(resp, request)
                coding = response_headers.get("Content-Encoding", "")
                raw = _raw_chunks(resp)
                chunks = decoded(raw, coding, request) if is_supported(coding) else raw
                body, _cut = await read_capped(chunks, request, settings.max_response_bytes, progress)
            # leaving the block closes the response: after an early stop the connection is dropped
        except BlockedAddress as exc:
            raise RequestFailed("blocked_address", str(exc), request=request) from None
        except RequestFailed:  # too large, a body that cannot be decoded, a bad URL, an unusable proxy
            raise
        except (errors.PyreqwestError, ValueError) as exc:
            reason = _reason(exc, started, proxy is not None)
            if proxy is not None:
                proxies.outcome(proxy, reason)
            # Through a proxy the client's own message may hold the proxy URL: not chained.
            failure = RequestFailed(reason, redact_proxies(_message(exc), proxies), request=request)
            raise failure from (None if proxy is not None else exc)
        if proxy is not None:
            proxies.outcome(proxy, None)
        return Response(request.url, status, response_headers, body, request)

    def _proxy_client(self, proxy: str, request: Request) -> Client:
        """The client that goes through ``proxy``, made on first use."""
        try:
            client = self._clients[proxy] = self._client(proxy)
        except (errors.PyreqwestError, ValueError) as exc:
            self._proxies.outcome(proxy, "proxy_error")
            message = redact_proxies(f"cannot use proxy {proxy}: {_message(exc)}", self._proxies)
            raise RequestFailed("proxy_error", message, request=request) from None
        return client

    async def _check_host(self, host: str, port: int, request: Request) -> None:
        """Refuse a host that is, or resolves to, an address the guard does not allow."""
        guard = self._guard
        bare = host.strip("[]")
        try:
            ipaddress.ip_address(bare.split("%", 1)[0])
        except ValueError:
            pass
        else:  # an IP literal: no lookup
            if not guard.allows(host, bare):
                raise BlockedAddress(f"{host} is not a public address (block_private_addresses)")
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        checked = self._checked
        if checked.get(host, 0.0) > now:
            return
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise RequestFailed("connection_error", f"cannot resolve {host}: {exc}", request=request) from None
        for address in dict.fromkeys(str(info[4][0]) for info in infos):
            if not guard.allows(host, address):
                raise guard.refuse(host, address)
        if len(checked) >= _CHECKED_MAX:
            checked.clear()
        checked[host] = now + _CHECK_TTL

    def _headers(self, request: Request) -> list[tuple[str, str]]:
        """The request's own headers (reqwest adds the defaults it does not set), and its
        cookies: into the jar once per chain, or with cookies off into this request's header."""
        given = request._headers
        headers = list(given.items()) if given else []
        jar = self._jar
        own = next((value for name, value in headers if name.lower() == "cookie"), None) if headers else None
        if request.cookies is None and (jar is None or own is None):
            return headers
        pairs: list[str] = []
        if request.cookies is not None:
            cookies = as_cookies(request.cookies)
            if jar is None:
                pairs = [f"{morsel.key}={morsel.coded_value}" for morsel in cookies.values()]
            elif request.attempt == 1 and request.redirects == 0:
                # Once per chain: a retry or a redirect hop must not undo cookies the server set since.
                for morsel in cookies.values():
                    _into_jar(jar, morsel, request.url)
        if jar is not None and own is not None:
            # reqwest leaves the jar out when the request has a Cookie header: merge it in, as aiohttp does.
            pairs = [f"{cookie.name}={cookie.value}" for cookie in jar.matches(request.url)]
        if not pairs:
            return headers
        extra = "; ".join(pairs)
        headers = [(name, value) for name, value in headers if name.lower() != "cookie"]
        headers.append(("Cookie", f"{own}; {extra}" if own else extra))
        return headers


def _into_jar(jar: CookieStore, morsel: Morsel[str], url: str) -> None:
    """Put a request's cookie in the jar: for the request's host, or for its own domain."""
    cookie = Cookie(morsel.key, morsel.coded_value).with_path(morsel["path"] or "/")
    domain = morsel["domain"]
    if not domain:
        jar.insert(cookie, url)
        return
    cookie = cookie.with_domain(domain)
    try:
        jar.insert(cookie, url)
    except ValueError:  # the domain is not the request's: set it as that domain itself would
        with suppress(ValueError):  # (not a domain a cookie can be set for: left out)
            jar.insert(cookie, f"{urlsplit(url).scheme}://{domain.lstrip('.')}/")


def _response_headers(resp: RawResponse, request: Request) -> CIMultiDictProxy[str]:
    """The response's headers; one whose value pyreqwest cannot read as text (not visible
    ASCII) is left out, and a redirect whose Location is one fails."""
    raw = resp.headers
    try:
        return CIMultiDictProxy(CIMultiDict(raw.items()))
    except ValueError:
        pass
    pairs: list[tuple[str, str]] = []
    for name in dict.fromkeys(raw.keys()):
        try:
            pairs.extend((name, value) for value in raw.getall(name))
        except ValueError:
            if name == "location" and 300 <= resp.status < 400:
                raise RequestFailed(
                    "bad_response", "the Location header is not ASCII (pyreqwest cannot read it)", request=request
                ) from None
    return CIMultiDictProxy(CIMultiDict(pairs))


async def _raw_chunks(resp: RawResponse) -> AsyncIterator[bytes]:
    reader = resp.body_reader
    while (chunk := await reader.read_chunk()) is not None:
        yield bytes(chunk)


def _causes(exc: BaseException) -> str:
    """reqwest's chain of causes, lowercased, one a line, without the URL some of them end
    with (a host named ``tls.example`` says nothing about the failure)."""
    details = getattr(exc, "details", None)
    causes = details.get("causes") if isinstance(details, dict) else None
    return "\n".join(_FOR_URL.sub("", str(cause.get("message", ""))) for cause in causes or ()).lower()


def _message(exc: BaseException) -> str:
    """The exception and reqwest's causes: "connection error: ... tcp connect error: Connection refused"."""
    head = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    details = getattr(exc, "details", None)
    causes = details.get("causes") if isinstance(details, dict) else None
    parts = [head, *(str(cause.get("message", "")) for cause in causes or ())]
    return ": ".join(part for i, part in enumerate(parts) if part and (i == 0 or part != parts[i - 1]))


def _reason(exc: BaseException, started: bool, proxied: bool) -> str:
    """A failure's reason: from :data:`_REASONS`, refined by reqwest's causes and by whether
    the status line had arrived (a connection lost after it is an incomplete body)."""
    if not isinstance(exc, errors.ClientClosedError | errors.RequestTimeoutError):
        if started and isinstance(exc, errors.RequestError):
            return "incomplete_body"  # cut short, or framing (chunked, Content-Length) that does not hold
        causes = _causes(exc)
        if isinstance(exc, errors.BuilderError) and "scheme" in causes:
            return "bad_url"
        if isinstance(exc, errors.TransportError):
            if proxied and any(word in causes for word in _PROXY_WORDS):
                return "proxy_error"
            if proxied and isinstance(exc, errors.ConnectError) and not any(word in causes for word in _TLS_WORDS):
                return "proxy_error"  # the only connection made is to the proxy
            if any(word in causes for word in _TLS_WORDS):
                return "tls_error"
            if any(word in causes for word in _SENT_WORDS):
                return "server_disconnected"  # connected, request sent, closed before the status line
    return next((reason for kind, reason in _REASONS if isinstance(exc, kind)), "client_error")
