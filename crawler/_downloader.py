"""The downloader: one aiohttp session per crawl, bodies streamed under a size cap.

Redirects are not followed here (``allow_redirects=False``): the engine follows them hop by
hop so each hop passes the offsite check, dedupe and its domain's limiter. The body is read
in chunks *after* decompression and the read stops as soon as it passes
``max_response_bytes``, so a gzip bomb costs about the cap in memory, never its inflated
size. A body shorter than its Content-Length is an ``incomplete_body`` failure, never a page.
"""

from __future__ import annotations

from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
from yarl import URL

from ._connector import BoundedConnector, default_max_idle_hosts
from ._deadlines import Deadlines, Fetch
from ._exceptions import RequestFailed, ResponseTooLarge
from ._request import Request
from ._response import Response
from ._settings import Settings

__all__ = ["Downloader"]


class Downloader:
    def __init__(self, settings: Settings, session: aiohttp.ClientSession | None = None) -> None:
        self._settings = settings
        self._session = session
        self._owns_session = session is None
        #: Request cookies go in our own jar; a host's session keeps its jar to itself.
        self._jar_is_ours = self._owns_session and settings.cookies
        # The limits are enforced by one sweep (see _deadlines), not by aiohttp's per-request
        # timers: the session gets none of its own, not even aiohttp's default 5 minutes.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_read=None, sock_connect=None)
        self._deadlines = Deadlines(settings.timeout, settings.read_timeout)
        self._max_bytes = settings.max_response_bytes

    async def open(self) -> None:
        if self._session is None:
            settings = self._settings
            # Idle keep-alive connections and the DNS cache bounded (see _connector): a
            # broad crawl would otherwise hold a socket and an address for every host met.
            connector = BoundedConnector(
                limit=settings.concurrency,
                ttl_dns_cache=300,
                max_idle_hosts=default_max_idle_hosts(settings.concurrency, settings.domain_concurrency),
            )
            # unsafe=True: aiohttp's default jar drops cookies from IP-address hosts, so a
            # login on http://127.0.0.1/ or a LAN box would be forgotten; a crawler keeps
            # them as it does for any host (still scoped to that host by the jar).
            jar = aiohttp.CookieJar(unsafe=True) if self._settings.cookies else aiohttp.DummyCookieJar()
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"User-Agent": self._settings.user_agent},
                cookie_jar=jar,
            )
            # aiohttp silently resends an idempotent request once when a connection drops.
            # That second try would bypass the domain's limiter and the retry count; our own
            # retries (with backoff) cover a stale keep-alive connection instead. The switch
            # is private (aiohttp's own test utilities set it), hence the guard.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False

    async def aclose(self) -> None:
        """Close the session if this downloader made it; safe to call twice."""
        session, self._session = self._session, None
        self._deadlines.close()
        if session is not None and self._owns_session:
            await session.close()

    async def fetch(self, request: Request) -> Response:
        session = self._session
        if session is None:
            raise RequestFailed("closed", "downloader is closed", request=request)
        headers = request._headers
        if not self._owns_session and not (headers and any(k.lower() == "user-agent" for k in headers)):
            headers = {**(headers or {}), "User-Agent": self._settings.user_agent}  # a host's session
        cookies = self._request_cookies(session, request) if request.cookies is not None else None
        fetch = self._deadlines.watch()
        try:
            response = await self._request(session, request, headers, cookies, fetch)
        except BaseException as exc:
            limit = self._deadlines.done(fetch, exc)
            if limit is not None:
                raise self._timed_out(limit, request) from exc
            raise
        self._deadlines.done(fetch, None)
        return response

    async def _request(
        self,
        session: aiohttp.ClientSession,
        request: Request,
        headers: dict[str, str] | None,
        cookies: SimpleCookie | None,
        fetch: Fetch,
    ) -> Response:
        try:
            url = URL(request.url, encoded=True)
        except ValueError as exc:  # what canonicalize let through and yarl refuses
            raise RequestFailed("bad_url", str(exc), request=request) from exc
        try:
            async with session.request(
                request.method,
                url,
                headers=headers,
                cookies=cookies,
                data=request.body,
                allow_redirects=False,
                timeout=self._timeout,
            ) as resp:
                fetch.response = resp
                body = await self._read(resp, request)
                return Response(request.url, resp.status, resp.headers, body, request)
        except aiohttp.ClientPayloadError as exc:
            raise RequestFailed("incomplete_body", str(exc), request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise RequestFailed("server_disconnected", str(exc), request=request) from exc
        except aiohttp.ClientConnectionError as exc:
            raise RequestFailed("connection_error", str(exc), request=request) from exc
        except aiohttp.InvalidURL as exc:
            raise RequestFailed("bad_url", str(exc), request=request) from exc
        except aiohttp.ClientResponseError as exc:
            raise RequestFailed("bad_response", str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise RequestFailed("client_error", f"{type(exc).__name__}: {exc}", request=request) from exc
        except ValueError as exc:  # aiohttp refusing what it was given, e.g. a newline in a header value
            raise RequestFailed("bad_request", f"{type(exc).__name__}: {exc}", request=request) from exc

    def _request_cookies(self, session: aiohttp.ClientSession, request: Request) -> SimpleCookie | None:
        """Put the request's cookies in the crawl's jar, which sends them (``None`` returned);
        with no jar of ours (``cookies`` off, or a host's session, whose jar is never written
        to), return them to go with this request only, where they win over the jar's."""
        cookies = _as_cookies(request.cookies)
        if not self._jar_is_ours:
            return cookies
        # Once per chain: a retry or a redirect hop must not undo cookies the server set
        # since (a login's 302 with a new session cookie).
        if request.attempt == 1 and request.redirects == 0:
            session.cookie_jar.update_cookies(cookies, URL(request.url, encoded=True))
        return None

    def _timed_out(self, limit: str, request: Request) -> RequestFailed:
        if limit == "read_timeout":
            message = f"no data for {self._settings.read_timeout}s"
        else:
            message = f"no complete answer within {self._settings.timeout}s"
        return RequestFailed("timeout", message, request=request)

    async def _read(self, resp: aiohttp.ClientResponse, request: Request) -> bytes:
        meta = request._meta
        limit = meta.get("max_response_bytes", self._max_bytes) if meta else self._max_bytes
        truncate = bool(meta and meta.get("truncate_body", False))
        length = resp.content_length
        if length is not None and "Content-Encoding" not in resp.headers:  # the length is the body's
            if length <= limit:  # the parser stops at Content-Length: one read
                return await resp.read()
            if not truncate:
                resp.close()
                raise ResponseTooLarge(limit, request=request)
        chunks = []
        size = 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            if size > limit:
                resp.close()  # drop the connection rather than drain the rest
                if truncate:
                    chunks.append(chunk[: len(chunk) - (size - limit)])
                    break
                raise ResponseTooLarge(limit, request=request)
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _as_cookies(cookies: Any) -> SimpleCookie:
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
