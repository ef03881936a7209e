"""One attempt at a request, and what its response means: a page for the callback, a
redirect hop, or a failure.

An attempt runs the middleware chain around the download (a middleware may answer, retry or
refuse it) and counts what went out and what came back.

Redirects are followed here, hop by hop, as new requests of the same chain (each passes the
offsite check, dedupe and its domain's limiter again): never by the HTTP client. A hop to
another host carries none of the request's credentials (its cookies, ``Cookie`` and
``Authorization`` headers). Non-2xx statuses fail, unless the setting ``handle_statuses``, or
the request's own ``meta["handle_statuses"]`` (which replaces it), hands them to the callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

import structlog

from ._downloader import Fetcher
from ._exceptions import RequestFailed
from ._failure import Failure
from ._log import debug_enabled
from ._middleware import MiddlewareChain
from ._request import Request
from ._response import Response
from ._settings import Settings
from ._stats import StatsCollector
from ._url import BadURL, canonicalize, join

__all__ = ["Attempt", "judge"]

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CREDENTIAL_HEADERS = frozenset({"cookie", "authorization"})
_HANDLE_KEYS = frozenset({"handle_statuses", "handle_httpstatus_list", "handle_httpstatus_all"})


class Attempt:
    """One attempt at a request: the middlewares, the download, and the verdict."""

    def __init__(
        self,
        chain: MiddlewareChain,
        downloader: Fetcher,
        stats: StatsCollector,
        sending: Callable[[Request], float],
        observe: Callable[[Request, int], None],
        settings: Settings,
        log: structlog.stdlib.BoundLogger,
    ) -> None:
        self._chain = chain
        self._downloader = downloader
        self._stats = stats
        self._sending = sending  # a domain's gap is kept at the send (after the middlewares)
        self._observe = observe  # autothrottle sees every status
        self._settings = settings
        self._log = log

    async def __call__(self, request: Request) -> Request | Response | Failure:
        chain = self._chain
        debug = debug_enabled()
        started = time.monotonic() if debug else 0.0
        try:
            sent = await chain.process_request(request)
            if isinstance(sent, Response):
                response = sent
            else:
                request = sent
                wait = self._sending(request)
                while wait:
                    await asyncio.sleep(wait)
                    wait = self._sending(request)
                self._stats.requests += 1
                response = await self._downloader.fetch(request)
                self._stats.bytes += len(response.body)
                self._stats.responses[response.status] += 1
                self._observe(request, response.status)
                if debug:
                    self._log.debug(
                        "response",
                        url=request.url,
                        domain=request.domain,
                        status=response.status,
                        attempt=request.attempt,
                        elapsed_ms=round((time.monotonic() - started) * 1000, 1),
                    )
            result = await chain.process_response(request, response)
        except RequestFailed as exc:
            try:
                handled = await chain.process_exception(request, exc)
            except RequestFailed as final:
                return Failure(request, final.reason, final)
            return handled if handled is not None else Failure(request, exc.reason, exc)
        if isinstance(result, Request):
            return result
        return judge(request, result, self._settings)


def judge(request: Request, response: Response, settings: Settings) -> Request | Response | Failure:
    """The response itself (for the callback), the next redirect hop, or a Failure."""
    status = response.status
    if 200 <= status < 300:
        return response
    meta = request._meta
    if meta and not _HANDLE_KEYS.isdisjoint(meta):  # the request's own list replaces the setting
        handled = _handles(meta, status)
    else:
        handled = status in settings.handle_statuses
    if handled:
        return response
    if status in _REDIRECT_STATUSES and "Location" in response.headers:
        return _redirect(request, response, settings)
    return Failure(request, f"http_{status}", response=response)


def _redirect(request: Request, response: Response, settings: Settings) -> Request | Failure:
    meta = request._meta
    limit = meta.get("max_redirects", settings.max_redirects) if meta else settings.max_redirects
    if request.redirects >= limit:
        return Failure(request, "max_redirects", response=response)
    target = join(request.url, response.headers["Location"])  # RFC 9110: against the request URL
    method, body = request.method, request.body
    if response.status in (301, 302, 303) and method != "HEAD":
        method, body = "GET", None
    hop = request.replace(url=target, method=method, body=body, redirects=request.redirects + 1, attempt=1)
    if _host(target) != _host(request.url):
        # Credentials never follow a redirect to another host (as browsers and Scrapy do).
        hop.cookies = None
        if hop._headers:
            hop._headers = {k: v for k, v in hop._headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
    chain = hop.meta["redirect_urls"] = [*(request._meta or {}).get("redirect_urls", ()), request.url]
    # A hop back into its own chain (e.g. a cookie-setting bounce) is not a duplicate of
    # another page: it may be refetched, and max_redirects bounds a true loop.
    with contextlib.suppress(BadURL):  # a bad target is recorded by the frontier as bad_url
        hop.dont_filter = request.dont_filter or canonicalize(target)[0] in chain
    return hop


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _handles(meta: Mapping[str, Any], status: int) -> bool:
    """The request's own ``handle_statuses`` (a list, one status, or True for every status),
    which replaces the setting for it, as Scrapy's ``handle_httpstatus_list`` /
    ``handle_httpstatus_all`` meta keys do (read the same way)."""
    if meta.get("handle_statuses") is True or meta.get("handle_httpstatus_all") is True:
        return True
    for key in ("handle_statuses", "handle_httpstatus_list"):
        statuses = meta.get(key)
        if statuses == status and not isinstance(statuses, bool):
            return True
        if isinstance(statuses, Collection) and not isinstance(statuses, str | bytes) and status in statuses:
            return True
    return False
