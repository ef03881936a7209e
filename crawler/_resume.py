"""A resumable crawl: the engine's side of a state file (``--state crawl.db``).

Opens the :class:`SqliteStore`, checks that the file belongs to this spider, carries the
stats of earlier runs over, tells each resumable exporter where its output was last
committed, and saves beside every checkpoint what a resumed run needs: the stats, the
exporters' positions, whether ``start()`` was exhausted, and at the end whether the crawl
finished.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._codec import RequestCodec
from ._exceptions import SpiderLoadError
from ._pacer import Pacer
from ._pipeline import ItemPipeline, ResumableExporter
from ._spider import Spider
from ._sqlite_store import SqliteStore, StoredCrawl
from ._stats import StatsCollector

__all__ = ["Resume"]

_NOT_OUTCOMES = frozenset({"stopped", "cancelled", "max_pages", "max_items", "closed", "error", "finished"})


class Resume:
    def __init__(
        self,
        path: str,
        spider: Spider,
        stats: StatsCollector,
        exporters: Sequence[ItemPipeline],
        pacer: Pacer,
        concurrency: int,
        uncommitted: Callable[[], tuple[int, int]],
    ) -> None:
        self.path = path
        self._spider = spider
        self._stats = stats
        self._exporters = [e for e in exporters if isinstance(e, ResumableExporter)]
        self._pacer = pacer
        # (pages, items) counted for chains that have not ended: not saved, since a crash
        # fetches those pages again and they will be counted again.
        self._uncommitted = uncommitted
        # A checkpoint per quarter of the concurrency's worth of ended chains: cheap at full
        # speed, and a kill costs at most 1.25 x concurrency pages fetched again.
        batch = max(1, concurrency // 4)
        self.store = SqliteStore(path, pacer, RequestCodec(spider), batch=batch)
        self.store.progress = self._progress
        #: True once the spider's start() has been exhausted (a resumed run does not call it again).
        self.start_done = False
        #: True once a start request was found local: block_private_addresses=auto is off for
        #: the crawl, a resumed run's too (it may have no start request left to tell).
        self.local_start = False
        self.stored: StoredCrawl | None = None

    def open(self) -> StoredCrawl:
        """Open the state file; raise SpiderLoadError if another spider's crawl is in it."""
        stored = self.stored = self.store.open()
        if stored.new:
            return stored
        owner = stored.meta.get("spider")
        if owner != self._spider.name:
            self.store.aclose_sync(save=False)
            raise SpiderLoadError(
                f"the state file {self.path} holds a crawl of the spider {owner!r}, not {self._spider.name!r}: "
                "use another --state file, or delete this one to start over"
            )
        if stored.finished:
            return stored
        stored.requests = self.store.load()
        self._stats.restore(stored.meta.get("stats") or {})
        # Retry-After pauses and lowered rates outlive the process: a server that asked for
        # rest is not hit again at once because the crawler restarted.
        self._pacer.restore(stored.meta.get("pacing") or {}, asyncio.get_running_loop().time(), time.time())
        self.start_done = bool(stored.meta.get("start_done"))
        self.local_start = bool(stored.meta.get("local_start"))
        positions = stored.meta.get("exporters") or {}
        for exporter in self._exporters:
            if exporter.key in positions:
                exporter.resume_at(int(positions[exporter.key]))
        return stored

    def _progress(self) -> dict[str, Any]:
        stats = self._stats.totals()
        pages, items = self._uncommitted()
        stats["pages"] -= pages
        stats["items"] -= items
        # Requests dropped from the queue when this run closed (stopped, max_pages ...) are
        # still queued in the store: not an outcome, so not carried over as one.
        stats["filtered"] = {k: v for k, v in stats["filtered"].items() if k not in _NOT_OUTCOMES}
        return {
            "spider": self._spider.name,
            "stats": stats,
            "exporters": {exporter.key: exporter.position() for exporter in self._exporters},
            "start_done": self.start_done,
            "local_start": self.local_start,
            "pacing": self._pacer.export(asyncio.get_running_loop().time(), time.time()),
        }

    def start_was_local(self) -> None:
        """A start request was found local (kept with the next checkpoint)."""
        self.local_start = True

    def close(self, *, finished: bool, save: bool = True) -> None:
        """The last checkpoint: with ``finished``, a later run says so and fetches nothing.
        ``save`` False closes the file as it is (a run that found the crawl finished)."""
        self.store.aclose_sync(save=save, finished=finished)
