"""Running a spider's callback or errback, and routing what it yields.

Requests go to the frontier (as new chains, one link deeper), items through the item flow
(or into the page's ``sink`` until its chain ends, with a durable store), anything else is
a ``bad_callback_output`` error; an exception in the callback is a ``callback_error`` and
the crawl goes on.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from ._failure import Failure
from ._items import ItemFlow
from ._log import debug_enabled
from ._pipeline import is_item
from ._request import Request
from ._response import Response
from ._stats import StatsCollector

if TYPE_CHECKING:
    from ._frontier import Frontier

__all__ = ["CallbackRunner", "new_chain"]


class CallbackRunner:
    def __init__(
        self,
        stats: StatsCollector,
        items: ItemFlow,
        log: structlog.stdlib.BoundLogger,
        frontier: Callable[[], Frontier],
    ) -> None:
        self._stats = stats
        self._items = items
        self._log = log
        self._frontier = frontier  # made when the crawl starts

    async def run(
        self,
        callback: Any,
        argument: Response | Failure,
        request: Request,
        filtered: dict[str, int] | None = None,
        *,
        sink: list[Any] | None = None,
    ) -> None:
        """Run a callback (with the request's ``cb_kwargs``) or an errback (with the failure
        only, as in Scrapy: ``failure.request.cb_kwargs`` holds them) and take what it yields.

        ``filtered`` (at DEBUG) gathers the reasons its requests were filtered for, logged as
        one ``links_filtered`` event for the page rather than one event per link. ``sink``
        (with a state file) collects its items for the exporters, which get them when the
        chain ends.
        """
        if filtered is None and isinstance(argument, Failure) and debug_enabled():
            filtered = {}
        try:
            if request._cb_kwargs and isinstance(argument, Response):
                result = callback(argument, **request._cb_kwargs)
            else:
                result = callback(argument)
            # A Request is routed without an await (no coroutine per link: a spider that yields
            # one follow() per link yields dozens a page); items may wait in pipelines. A plain
            # link (a new Request, as follow() makes) goes straight to the frontier from here.
            page = argument if isinstance(argument, Response) else None
            if inspect.isasyncgen(result):
                add = self._frontier().add
                depth = request.depth + 1
                async for output in result:
                    if type(output) is Request and output.attempt == 1 and not (output.redirects or output.chain):
                        output.depth = depth
                        if output._canonical is None and page is not None:
                            _adopt_joined(page, output)
                        reason = add(output)
                        if reason is not None and filtered is not None:
                            _count(filtered, reason)
                    elif isinstance(output, Request):
                        self._follow(output, request, filtered, page)
                    else:
                        await self._output(output, request, sink)
                return
            if inspect.isawaitable(result):
                result = await result
            if result is None:
                return
            for output in result:
                if isinstance(output, Request):
                    self._follow(output, request, filtered, page)
                else:
                    await self._output(output, request, sink)
        except Exception as exc:
            self._stats.callback_errors += 1
            self._log.error(
                "callback_error",
                url=request.url,
                callback=getattr(callback, "__qualname__", repr(callback)),
                reason=f"{type(exc).__name__}: {exc}",
                exc_info=exc,
            )
        finally:
            if filtered:
                self._log.debug("links_filtered", url=request.url, filtered=filtered)

    def _follow(
        self, output: Request, request: Request, filtered: dict[str, int] | None, page: Response | None
    ) -> None:
        output.depth = request.depth + 1
        if output._canonical is None and page is not None:
            _adopt_joined(page, output)
        if output.attempt != 1 or output.redirects or output.chain:  # e.g. response.request.replace(url=...)
            new_chain(output)
        reason = self._frontier().add(output)
        if reason is not None and filtered is not None:
            _count(filtered, reason)

    async def _output(self, output: Any, request: Request, sink: list[Any] | None) -> None:
        """An item (through the item flow) or something a callback must not yield."""
        if is_item(output):
            await self._items.process(output, sink)
        elif output is not None:
            self._stats.callback_errors += 1
            self._log.error(
                "bad_callback_output",
                url=request.url,
                reason=f"neither an item nor a Request: {type(output).__name__}",
            )


def _adopt_joined(page: Response, request: Request) -> None:
    """A request for the URL ``page.urljoin()`` has just made (that very string) gets its
    canonical URL and host, as one from ``follow()`` has them: the frontier does not
    canonicalise it again. Only the last one is remembered: a spider that yields each
    Request as it makes it (a generator) is covered, and a string compared by identity
    costs nothing (remembering them all cost the generator form 5 %)."""
    joined = page._joined
    if joined is not None and joined[0] is request.url:
        request.url, request._canonical = joined[1][0], joined[1]


def _count(filtered: dict[str, int], reason: str) -> None:
    """A link the frontier filtered, for the page's one ``links_filtered`` event (at DEBUG).
    robots_unavailable is a failure, logged on its own as request_failed."""
    if reason != "robots_unavailable":
        filtered[reason] = filtered.get(reason, 0) + 1


def new_chain(request: Request) -> None:
    """A request the spider yields starts a chain of its own, even when it was made with
    ``replace()`` from a retried or redirected one: its own retries, its own cookies, and
    its place in ``max_pages``."""
    request.attempt, request.redirects, request.not_before, request.chain = 1, 0, 0.0, 0
