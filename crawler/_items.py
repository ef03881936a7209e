"""Items on their way out: pipelines, exporters, ``max_items``, and ``Crawler.items()`` streams.

Without a state file an item goes through the pipelines and then the exporters as soon as a
callback yields it. With one, it goes through the spider's pipelines at once and waits, with
the rest of its page's items, for the page's chain to end: only then do the exporters write
them, so that a checkpoint can record the exporters' positions together with the chains that
ended (exactly-once output; see ``_sqlite_store``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import structlog

from ._exceptions import DropItem
from ._pipeline import ItemPipeline
from ._request import Request
from ._settings import Settings
from ._spider import Spider
from ._stats import StatsCollector

__all__ = ["ItemFlow"]

_END = object()  # end-of-stream marker for items() subscribers


class ItemFlow:
    def __init__(
        self,
        spider: Spider,
        settings: Settings,
        stats: StatsCollector,
        pipelines: Sequence[ItemPipeline],
        exporters: Sequence[ItemPipeline],
        log: structlog.stdlib.BoundLogger,
        *,
        on_max_items: Callable[[], None],
    ) -> None:
        self._spider = spider
        self._max_items = settings.max_items
        self._stats = stats
        self._pipelines = tuple(pipelines)
        self._exporters = tuple(exporters)
        self._all = (*self._pipelines, *self._exporters)
        self._log = log
        self._on_max_items = on_max_items
        self._in_pipelines = 0
        self._subscribers: list[asyncio.Queue[Any]] = []
        self._ended = False
        #: Items counted but held for their page's chain to end (not yet exported).
        self.held = 0
        #: Items other workers of a shared crawl have committed (max_items is the crawl's).
        self.elsewhere: Callable[[], int] = lambda: 0
        #: Called after each held item is in the outputs (a shared crawl marks where it ends).
        self.exported: Callable[[], None] = lambda: None

    async def process(self, item: Any, sink: list[Any] | None) -> None:
        """Through the pipelines, then the exporters; or (``sink``) into the page's items,
        for the exporters when its chain ends."""
        max_items = self._max_items
        # Items still in the pipelines count against max_items, so concurrent callbacks
        # cannot overshoot it; one that a pipeline drops or fails on gives its place back.
        if max_items is not None and self._stats.items + self._in_pipelines + self.elsewhere() >= max_items:
            self._stats.items_dropped["max_items"] += 1
            return
        self._in_pipelines += 1
        try:
            for pipeline in self._pipelines if sink is not None else self._all:
                item = await pipeline.process_item(item, self._spider)
        except DropItem as exc:
            reason = str(exc) or "dropped"
            self._stats.items_dropped[reason] += 1
            self._log.debug("item_dropped", reason=reason)
            return
        finally:
            self._in_pipelines -= 1
        self._stats.items += 1
        if sink is not None:
            sink.append(item)
            self.held += 1
        for queue in self._subscribers:
            queue.put_nowait(item)
        if max_items is not None and self._stats.items + self.elsewhere() >= max_items:
            self._on_max_items()

    async def export(self, request: Request, items: list[Any]) -> int:
        """A page's items, held until its chain ended, to the exporters; how many are out
        (what its chain's end commits: not those an exporter dropped or failed on)."""
        self.held -= len(items)
        out = 0
        for item in items:
            try:
                for exporter in self._exporters:
                    item = await exporter.process_item(item, self._spider)
                self.exported()
                out += 1
            except DropItem as exc:  # not output after all: as if a pipeline had dropped it
                self._stats.items -= 1
                self._stats.items_dropped[str(exc) or "dropped"] += 1
            except Exception as exc:  # not output either: counted as dropped, with its reason logged
                self._stats.items -= 1
                self._stats.items_dropped["exporter_error"] += 1
                self._log.error("exporter_error", url=request.url, reason=repr(exc), exc_info=exc)
        return out

    async def stream(self) -> AsyncIterator[Any]:
        """Items as they are produced, from now until ``end()``."""
        if self._ended:
            return
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while (item := await queue.get()) is not _END:
                yield item
        finally:
            self._subscribers.remove(queue)

    def end(self) -> None:
        """No more items: every stream ends."""
        self._ended = True
        for queue in self._subscribers:
            queue.put_nowait(_END)
