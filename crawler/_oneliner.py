"""The crawler without asyncio, for scripts and notebooks: ``crawl()`` and ``fetch()``.

Both block until done and return plain values. From a plain script they run their own event
loop; called where a loop is already running (a Jupyter cell, an async web handler), where
``asyncio.run`` cannot be called, they run in a worker thread with a loop of its own and
block the caller until it is done (a notebook cell waits for its result as it does for
Requests). Nothing is global: each call is one Crawler, closed before it returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import Any, TypeVar

from ._crawler import Crawler
from ._exceptions import RequestFailed
from ._failure import Failure
from ._pipeline import Pipeline
from ._request import Request
from ._response import Response
from ._settings import Settings
from ._spider import Spider
from ._stats import CrawlStats

__all__ = ["crawl", "fetch"]

_T = TypeVar("_T")


def crawl(
    spider: Spider | type[Spider],
    settings: Settings | Mapping[str, Any] | None = None,
    *,
    with_stats: bool = False,
    **overrides: Any,
) -> Any:
    """Run ``spider`` (a Spider or its class) to the end and return its items, in order;
    with ``with_stats=True``, ``(items, stats)``. Settings as for ``Crawler``, plus keyword
    overrides: ``crawl(QuotesSpider, max_items=50)``."""

    async def run() -> tuple[list[Any], CrawlStats]:
        instance = spider() if isinstance(spider, type) else spider
        merged = (settings if isinstance(settings, Settings) else Settings().merge(settings)).merge(overrides)
        sink = _Items()
        stats = await Crawler(instance, merged, pipelines=[sink]).run()
        return sink.items, stats

    items, stats = _blocking(run())
    return (items, stats) if with_stats else items


def fetch(url: str, settings: Settings | Mapping[str, Any] | None = None, **overrides: Any) -> Response:
    """Fetch one URL politely (its robots.txt obeyed, the crawler's User-Agent, retries,
    limits) and return the Response, whatever its status. A request that gets no response
    raises RequestFailed with the reason (``robots``, ``timeout``, ``connection_error`` ...)."""

    async def run() -> Response:
        one = _One(url)
        stats = await Crawler(one, Settings(rate_limit=None).merge(settings).merge(overrides)).run()
        if one.response is not None:
            return one.response
        if one.failure is not None:
            if isinstance(one.failure.exception, RequestFailed):
                raise one.failure.exception
            raise RequestFailed(one.failure.reason, f"{url}: {one.failure.reason}")
        reason = next(iter(stats.filtered), None) or next(iter(stats.failures), "no_response")
        raise RequestFailed(reason, f"{url} was not fetched: {reason}")

    return _blocking(run())


class _Items(Pipeline):
    def __init__(self) -> None:
        self.items: list[Any] = []

    async def process_item(self, item: Any, spider: Spider) -> Any:
        self.items.append(item)
        return item


class _One(Spider):
    name = "fetch"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.response: Response | None = None
        self.failure: Failure | None = None

    async def start(self) -> AsyncIterator[Request]:
        # Every 4xx/5xx answer is the caller's to see; redirects are followed (a 3xx is not kept).
        yield Request(self.url, dont_filter=True, errback=self.failed, meta={"handle_statuses": list(range(400, 600))})

    async def parse(self, response: Response) -> None:
        self.response = response

    async def failed(self, failure: Failure) -> None:
        self.failure = failure


def _blocking(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to its end from synchronous code, with or without a running loop here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # A loop runs in this thread (a notebook): run ours beside it, in a thread, and wait. An
    # interrupt while waiting (a notebook's stop button) cancels the crawl there, which closes
    # as a cancelled crawl does (items kept, files closed), and is then raised here.
    started: dict[str, Any] = {}

    async def main() -> _T:
        started["loop"], started["task"] = asyncio.get_running_loop(), asyncio.current_task()
        return await coro

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="crawler") as pool:
        future = pool.submit(asyncio.run, main())
        try:
            return future.result()
        except BaseException:
            if "task" in started and not future.done():
                started["loop"].call_soon_threadsafe(started["task"].cancel)
            raise
