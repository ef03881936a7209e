"""The Crawler: runs one spider's crawl inside the caller's event loop.

It owns everything the crawl opens (the HTTP session unless one was passed in, the item
pipelines and exporters, every task, in one ``TaskGroup``) and closes it all on the way out,
whether the crawl finished, was stopped, or its task was cancelled. It installs no signal
handlers and configures no logging: that is the CLI's job.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp

from ._addresses import AddressGuard
from ._cache import HttpCache
from ._callbacks import CallbackRunner
from ._downloader import Downloader, Fetcher, Network, downloader_for, make_downloader
from ._exceptions import CrawlStateError, FrontierUnavailable, IgnoreRequest, SpiderLoadError
from ._failure import Failure
from ._frontier import Frontier, registrable_domain_key
from ._items import ItemFlow
from ._log import debug_enabled, get_logger
from ._middleware import Middleware, MiddlewareChain, check_middlewares
from ._pacer import MemoryPacer
from ._pipeline import ItemPipeline
from ._progress import CrawlProgress, ProgressMeter, log_progress
from ._request import Request
from ._resume import Resume
from ._retry import RetryMiddleware
from ._settings import Settings
from ._shared import SharedCrawl
from ._spider import Spider, check_declaration
from ._sqlite_store import StoredCrawl
from ._start import StartFeeder
from ._stats import CrawlStats, DomainStats, StatsCollector
from ._url import allowed_hosts
from ._verdict import Attempt

__all__ = ["Crawler", "CrawlerState"]

_T = TypeVar("_T")


class CrawlerState(enum.Enum):
    """Where a :class:`Crawler` is in its one life."""

    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class Crawler:
    """Run ``spider`` with ``settings`` (a :class:`Settings` or a mapping of overrides).

    Settings layer as: defaults < ``spider.settings`` < ``settings``. ``session`` lets a host
    program share its own ``aiohttp.ClientSession`` (then the crawler does not close it).
    ``pipelines`` run after the spider's own; ``exporters`` (pipelines too) run last. Where
    a class is given for a middleware or pipeline, each crawl makes its own instance.

    A Crawler runs once: ``await crawler.run()`` returns the final :class:`CrawlStats`.
    """

    def __init__(
        self,
        spider: Spider,
        settings: Settings | Mapping[str, Any] | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        downloader: Downloader | Callable[[], Downloader] | None = None,
        middlewares: Sequence[Middleware | type[Middleware]] = (),
        pipelines: Sequence[ItemPipeline | type[ItemPipeline]] = (),
        exporters: Sequence[ItemPipeline | type[ItemPipeline]] = (),
    ) -> None:
        check_declaration(spider)
        self.spider = spider
        self.settings = Settings().merge(spider.settings).merge(settings)
        self._allowed_hosts, self._allowed_notes = allowed_hosts(spider.allowed_domains)
        if spider.allowed_domains and not self._allowed_hosts:
            # An empty list would mean "any host": never widen a crawl because its list was bad.
            raise SpiderLoadError("; ".join(self._allowed_notes) + ": allowed_domains names no usable host")
        if session is not None and downloader is not None:
            raise TypeError("pass session= or downloader=, not both (session= is aiohttp's shortcut)")
        self._downloader_given = downloader if downloader is not None else downloader_for(self.settings, session)
        self._guard = AddressGuard.from_settings(self.settings)
        if self._guard.auto:  # a crawl of a local site needs no setting (see _addresses)
            for url in _start_urls(spider):
                self._guard.saw_start(urlsplit(url).hostname or "")
        # A class is instantiated here, for this crawl only; an object is shared with any
        # other crawl that lists it (e.g. as a spider class attribute).
        self._extra_middlewares: tuple[Middleware, ...] = _per_crawl((*spider.middlewares, *middlewares))
        check_middlewares(self._extra_middlewares)
        self._user_pipelines: tuple[ItemPipeline, ...] = _per_crawl((*spider.pipelines, *pipelines))
        self._exporters: tuple[ItemPipeline, ...] = _per_crawl(exporters)
        self._pipelines = (*self._user_pipelines, *self._exporters)
        for pipeline in self._pipelines:
            if not isinstance(pipeline, ItemPipeline):
                raise TypeError(
                    f"{pipeline!r} is not an item pipeline: it needs async open, process_item "
                    "and close (subclass crawler.Pipeline)"
                )
        self._stats = StatsCollector()
        self._meter = ProgressMeter(self._stats, lambda: self._busy, self.settings)
        self._log = get_logger(spider=spider.name)
        self._state = CrawlerState.NEW
        self._closed = asyncio.Event()  # set once everything the crawl opened is closed
        self._frontier: Frontier | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._stop_requested = False
        self._downloader: Fetcher | None = None
        self._cache: HttpCache | None = None  # with http_cache: the development cache
        self._resume: Resume | None = None  # with a state file: the crawl is resumable
        self._shared: SharedCrawl | None = None  # with a shared frontier: this is one worker of the crawl
        self._frontier_failed = False  # the crawl ended because the shared frontier failed
        self._feeder: StartFeeder | None = None  # runs the spider's start() (once the crawl runs)
        self._busy = 0  # dispatch slots taken (requests handed out whose processing has not ended)
        self._open_pages = 0  # pages handed to callbacks whose chain has not ended (with a state file)
        #: True when ``run()`` found its state file holding a finished crawl and fetched nothing.
        self.already_finished = False
        #: With a shared frontier: the whole crawl's totals (every worker's pages, items,
        #: requeued requests; what is still queued and leased) when this worker closed.
        self.crawl_totals: dict[str, int] | None = None
        self._items = items = ItemFlow(
            spider,
            self.settings,
            self._stats,
            self._user_pipelines,
            self._exporters,
            self._log,
            on_max_items=lambda: self._frontier.close("max_items"),  # type: ignore[union-attr]
        )
        self._callbacks = CallbackRunner(self._stats, items, self._log, self._the_frontier)

    # -- public API ------------------------------------------------------------------------

    def statistics(self, *, domains: bool = True) -> CrawlStats:
        """A frozen snapshot of the counters, at any time during or after the crawl.
        ``domains=False`` leaves out the per-domain states (a pass over every domain; see
        ``busiest_domains``)."""
        return self._stats.snapshot(domains=domains)

    def busiest_domains(self, count: int) -> tuple[int, dict[str, DomainStats]]:
        """How many domains the crawl knows, and the state of the ``count`` busiest (cheaper
        than ``statistics().domains`` in a broad crawl: only those are built)."""
        if self._frontier is None:
            return 0, {}
        return self._frontier.busiest_domains(count)

    def progress(self) -> CrawlProgress:
        """Where the crawl stands (pages, items, rates now and on average, queued, in flight,
        an ETA when bounded): counters only, cheap enough to ask several times a second."""
        return self._meter.progress()

    def items(self) -> AsyncIterator[Any]:
        """Stream items as they are produced, from now until the crawl ends."""
        return self._items.stream()

    async def stop(self) -> None:
        """Stop scheduling; requests in flight finish, queued ones are recorded as ``stopped``.
        (A request already past the queue still keeps its domain's gap, and waits out a
        Retry-After pause, before it is sent: at most ``retry_after_max``.)"""
        self._stop_requested = True
        if self._frontier is not None:
            self._frontier.close("stopped")

    @property
    def state(self) -> CrawlerState:
        """``NEW`` until ``run()``, ``RUNNING``, ``CLOSING`` while it closes what it opened, ``CLOSED``."""
        return self._state

    async def run(self) -> CrawlStats:
        """Crawl until the frontier is empty, a limit is reached, ``stop()`` or cancellation;
        the final stats. A Crawler runs once."""
        if self._state is not CrawlerState.NEW:
            raise CrawlStateError(f"a Crawler runs once ({self._state.value}); make a new one for another crawl")
        self._state = CrawlerState.RUNNING
        self._stats.start()
        loop = asyncio.get_running_loop()
        pacer: Any = MemoryPacer(self.settings)
        stored = self._open_state(pacer) if self.settings.state is not None else None
        if stored is not None and stored.finished:
            return self._stats.snapshot()
        store: Any = self._resume.store if self._resume is not None else None
        feed = "new"
        if self.settings.frontier is not None:
            feed = await self._open_shared(loop)
            assert self._shared is not None
            store, pacer = self._shared.store, self._shared.pacer
        self._frontier = frontier = Frontier(
            self.settings,
            self._stats,
            allowed_domains=self._allowed_hosts,
            clock=loop.time,
            domain_key=registrable_domain_key() if self.settings.rate_scope == "registrable_domain" else None,
            on_failure=self._failed_in_frontier,
            store=store,
            pacer=pacer,
            pages_done=self._stats.pages,
            shared=self._shared is not None,
        )
        network = Network.from_settings(self.settings, self._guard, on_rested=self._stats.proxy_rested)
        self._downloader = Fetcher(make_downloader(self._downloader_given), self.settings, network)
        if self.settings.http_cache is not None:
            self._cache = HttpCache(
                self.settings.http_cache,
                expiry=self.settings.http_cache_expiry,
                errors=self.settings.http_cache_errors,
            )
        chain = MiddlewareChain(
            [
                *([self._cache] if self._cache is not None else []),  # first: a hit skips everything below
                *([self._shared.robots()] if self._shared is not None and self.settings.obey_robots else []),
                RetryMiddleware(self.settings, pause_domain=frontier.pause, clock=loop.time),
                *self._extra_middlewares,
            ]
        )
        self._attempt = Attempt(
            chain, self._downloader, self._stats, frontier.sending, frontier.observe, self.settings, self._log
        )
        self._log.info(
            "crawl_resumed" if stored is not None and not stored.new else "crawl_started",
            settings=self.settings.loggable() or None,
            queued=len(stored.requests) if stored is not None and not stored.new else None,
        )
        for note in self._allowed_notes:
            self._log.warning("allowed_domains_entry", reason=note)
        reason = "finished"
        opened: list[ItemPipeline] = []
        reporter: asyncio.Task[None] | None = None
        try:
            if self.settings.progress_interval > 0:
                reporter = loop.create_task(log_progress(self.progress, self.settings.progress_interval))
            await self._downloader.open()
            for pipeline in self._pipelines:
                await pipeline.open(self.spider)
                opened.append(pipeline)
            if self._shared is not None:
                self._shared.outputs_opened()
            await self.spider.opened()
            if self._stop_requested:  # stop() came before the crawl could start
                frontier.close("stopped")
            max_items = self.settings.max_items
            if max_items is not None and self._stats.items >= max_items:  # a resumed crawl had them all
                frontier.close("max_items")
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                feeder = self._feeder = StartFeeder(
                    self.spider, frontier, tasks, self._stats, self._guard, self._log,
                    resume=self._resume, shared=self._shared,
                )
                for request in stored.requests if stored is not None else ():
                    if request.depth == 0 and not request.redirects and self._guard.auto:  # a start request
                        self._guard.saw_start(urlsplit(request.url).hostname or "")
                    frontier.restore(request)
                if self._shared is not None:
                    if feed != "no":
                        feeder.feed(takeover=feed == "takeover")
                elif self._resume is None or not self._resume.start_done:
                    frontier.resumed = stored is not None and not stored.new
                    feeder.feed(takeover=False)
                await self._dispatch(tasks)
            reason = frontier.close_reason or "finished"
        except asyncio.CancelledError:
            reason = "cancelled"
            raise
        except BaseException as exc:
            reason = "error"
            self._frontier_failed = isinstance(exc, FrontierUnavailable) or (
                isinstance(exc, BaseExceptionGroup) and exc.subgroup(FrontierUnavailable) is not None
            )
            raise
        finally:
            if reporter is not None:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
            await self._finish(reason, opened)
        return self._stats.snapshot()

    def _keep_guard_decision(self, record: Callable[[], None], *, recorded: bool) -> None:
        """block_private_addresses=auto is the crawl's decision, kept in its state: taken from
        there (``recorded``), and ``record``-ed there when made (by start_urls already, or later)."""
        if recorded:
            self._guard.start_was_local()
        elif self._guard.local_start:
            record()
        self._guard.on_local = record

    def _open_state(self, pacer: MemoryPacer) -> StoredCrawl:
        """Open the state file; a finished crawl in it closes this Crawler at once."""
        assert self.settings.state is not None
        try:
            self._resume = Resume(
                self.settings.state,
                self.spider,
                self._stats,
                self._exporters,
                pacer,
                self.settings.concurrency,
                uncommitted=lambda: (self._open_pages, self._items.held),
            )
            stored = self._resume.open()
            self._keep_guard_decision(self._resume.start_was_local, recorded=self._resume.local_start)
        except BaseException:
            self._resume = None
            self._mark_closed()
            raise
        if stored.finished:
            self.already_finished = True
            self._log.info("crawl_already_finished", state=self.settings.state)
            self._resume.close(finished=True, save=False)
            self._stats.finish("finished")
            self._mark_closed()
        return stored

    async def _open_shared(self, loop: asyncio.AbstractEventLoop) -> str:
        """Join the shared crawl; who adds the start requests (``new``, ``takeover``, ``no``)."""
        try:
            self._shared = SharedCrawl(self.spider, self.settings, self._exporters, loop.time)
            store = self._shared.store
            store.on_duplicates = self._stats.queued_elsewhere
            store.on_redone = self._stats.taken_back
            self._meter.whole_crawl = lambda: {
                "pages": store.pages_total,
                "items": store.items_total,
                "queued": store.remote["fresh"] + store.remote["cont"],
                "leased": store.remote["leased"],
            }
            store.on_orphaned_start = lambda: self._feeder.take_over() if self._feeder is not None else None
            # One worker runs start(); every worker learns from Redis that its requests are
            # local, before it fetches the claims of the reply that says so.
            store.on_local_start = self._guard.start_was_local
            self._keep_guard_decision(store.local_start, recorded=False)
            store.on_bad_entry = self._bad_entry
            store.on_synced = self._shared_limits
            # Claims only for what can be sent at once (the dispatcher holds one slot meanwhile).
            store.capacity = lambda: self.settings.concurrency - self._busy + 1
            self._items.elsewhere = store.items_elsewhere
            self._items.exported = store.item_exported
            self._shared.items_over = self._stats.items_over_limit
            return await self._shared.open()
        except BaseException:
            if self._shared is not None:
                await self._shared.close(repair=False)
                self._shared.release_outputs()
            self._shared = None
            self._mark_closed()
            raise

    def _shared_limits(self) -> None:
        """max_items is the whole crawl's: other workers' items may have reached it."""
        max_items, shared, frontier = self.settings.max_items, self._shared, self._frontier
        if max_items is None or shared is None or frontier is None:
            return
        if self._stats.items + shared.store.items_elsewhere() >= max_items:
            frontier.close("max_items")

    def _bad_entry(self, entry: str, reason: str) -> None:
        """A queue entry in the shared frontier that is not a request of this crawl's."""
        self._stats.failures["bad_stored_request"] += 1
        self._log.error("bad_stored_request", entry=entry[:200], reason=reason[:300])

    def _the_frontier(self) -> Frontier:
        assert self._frontier is not None, "the crawl has not started"
        return self._frontier

    def _mark_closed(self) -> None:
        self._state = CrawlerState.CLOSED
        self._closed.set()

    async def aclose(self) -> None:
        """Stop the crawl if it runs and wait until it has ended and closed everything it
        opened (pipelines, files, the HTTP session). Safe to call twice, and before ``run()``
        (the Crawler will then not run). Not from inside the crawl's own task: it would
        wait for itself."""
        if self._state is CrawlerState.NEW:
            self._mark_closed()
            return
        await self.stop()
        await self._closed.wait()

    async def __aenter__(self) -> Crawler:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the crawl -------------------------------------------------------------------------

    async def _dispatch(self, tasks: asyncio.TaskGroup) -> None:
        frontier = self._frontier
        assert frontier is not None
        slots = asyncio.Semaphore(self.settings.concurrency)
        while True:
            await slots.acquire()
            self._busy += 1
            request = await frontier.next()
            if request is None:
                self._busy -= 1
                slots.release()
                return
            frontier.hold()
            tasks.create_task(self._process(request, slots))

    def _failed_in_frontier(self, request: Request, reason: str, error: str | None) -> None:
        """A request the frontier failed before it was sent: record it, run its errback."""
        self._stats.failed(request, reason, error=error)
        if request.errback is not None and self._tasks is not None:
            self._frontier.hold()  # type: ignore[union-attr]
            self._tasks.create_task(self._run_errback(request, Failure(request, reason)))
        else:
            self._frontier.finish(request)  # type: ignore[union-attr]

    async def _run_errback(self, request: Request, failure: Failure) -> None:
        try:
            items = self._page_items()
            await self._callbacks.run(request.errback, failure, request, sink=items)
            if items is not None:  # with a state file; else the memory store has nothing to end
                await self._end_chain(request, items)
        finally:
            self._frontier.release()  # type: ignore[union-attr]

    def _page_items(self) -> list[Any] | None:
        """Where a callback's items wait for its chain to end (with a state file), or None:
        exported as they come."""
        return [] if self._resume is not None or self._shared is not None else None

    async def _end_chain(self, request: Request, items: list[Any] | None, *, page: bool = False) -> None:
        """``request``'s chain has its one outcome: export its page's items, then let the store
        forget it. With a state file, this order is what makes items exactly once: a
        checkpoint records the exporters' positions and the ended chains together."""
        out = await self._items.export(request, items) if items else 0
        if page:
            self._open_pages -= 1  # before finish(): the checkpoint it may take counts this page
        self._frontier.finish(request, page=page, items=out)  # type: ignore[union-attr]

    async def _process(self, request: Request, slots: asyncio.Semaphore) -> None:
        frontier = self._frontier
        assert frontier is not None
        try:
            try:
                outcome = await self._attempt(request)
            except asyncio.CancelledError:
                frontier.cancelled(request)
                raise
            except IgnoreRequest as exc:
                frontier.ignored(request, exc)
                return
            except Exception as exc:  # a middleware's bug must not end the crawl
                self._log.error("internal_error", url=request.url, reason=repr(exc), exc_info=exc)
                outcome = Failure(request, "internal_error", exc)
            finally:
                frontier.download_done(request)
            # The frontier records the outcome; the spider sees only what is its own.
            if isinstance(outcome, Request):
                frontier.followed(request, outcome)
            elif isinstance(outcome, Failure):
                if not frontier.failed(request, outcome):
                    return
                items = self._page_items()
                if request.errback is not None:
                    await self._callbacks.run(request.errback, outcome, request, sink=items)
                if items is not None:  # with a state file; else the memory store has nothing to end
                    await self._end_chain(request, items)
            elif frontier.answered(request, outcome):
                callback = request.callback or self.spider.parse
                # At DEBUG, the links the page's follow_all drops join its one summary event.
                filtered: dict[str, int] | None = {} if debug_enabled() else None
                screen = frontier.links
                outcome._screen = screen if filtered is None else functools.partial(screen, counts=filtered)
                items = self._page_items()
                if items is not None:  # with a state file: the page counts as saved once its chain ends
                    self._open_pages += 1
                await self._callbacks.run(callback, outcome, request, filtered, sink=items)
                if items is not None:
                    await self._end_chain(request, items, page=True)
        finally:
            frontier.release()
            self._busy -= 1
            slots.release()


    async def _finish(self, reason: str, opened: list[ItemPipeline]) -> None:
        """Close everything the crawl opened, even when cancelled; items already out are kept."""
        self._state = CrawlerState.CLOSING
        try:
            await self._close_all(reason, opened)
        finally:
            if self._shared is not None:
                self._shared.release_outputs()  # the outputs are closed: another process may take them
            self._mark_closed()

    async def _close_all(self, reason: str, opened: list[ItemPipeline]) -> None:
        if self._frontier is not None:
            self._frontier.close(reason)
        self._stats.finish(reason)
        if self._shared is not None:  # before the exporters close: their sizes are committed
            await self._shared.close(frontier_failed=self._frontier_failed)
            self.crawl_totals = self._shared.totals
            if self._frontier_failed:  # its outputs are cut back to what Redis committed
                counts, store = self._stats, self._shared.store
                counts.taken_back(counts.pages - store.committed_pages, counts.items - store.committed_items)
        if self._resume is not None:  # before the exporters close: their positions are saved
            try:
                self._resume.close(finished=reason == "finished")
            except Exception as exc:
                self._log.error("state_save_error", state=self._resume.path, reason=repr(exc), exc_info=exc)
        for pipeline in reversed(opened):
            try:
                await pipeline.close(self.spider)
            except Exception as exc:
                self._log.error("pipeline_close_error", reason=repr(exc), exc_info=exc)
        if self._downloader is not None:
            await self._downloader.aclose()
        if self._cache is not None:
            self._cache.close()
            self._log.info("http_cache", hits=self._cache.hits, stored=self._cache.stored, path=str(self._cache.path))
        try:
            await self.spider.closed(reason)
        except Exception as exc:
            self._log.error("spider_closed_error", reason=repr(exc), exc_info=exc)
        self._items.end()
        stats = self._stats.snapshot()
        self._log.info(
            "crawl_finished",
            reason=reason,
            pages=stats.pages,
            items=stats.items,
            failures=stats.failures or None,
            elapsed_s=stats.elapsed_s,
        )
        # A crawl stopped or cancelled before its first page is no surprise; nor is a worker
        # of a shared crawl whose pages the other workers fetched.
        others_crawled = bool(self.crawl_totals and self.crawl_totals.get("pages"))
        if reason in ("finished", "error") and not others_crawled:
            no_pages = stats.no_pages_reason()
            if no_pages is not None:
                self._log.warning("no_pages_crawled", reason=no_pages)
        if reason != "error" and self._shared is not None and self._shared.store.broken is not None:
            raise self._shared.store.broken  # (its last write failed as it closed: not a clean end)


def _start_urls(spider: Spider) -> list[str]:
    urls = spider.start_urls
    if isinstance(urls, str):
        return [urls]
    return [url for url in urls if isinstance(url, str)] if isinstance(urls, list | tuple) else []


def _per_crawl(entries: Iterable[_T | type[_T]]) -> tuple[_T, ...]:
    """The objects for one crawl: a class is instantiated (no arguments), an object kept."""
    made: list[_T] = []
    for entry in entries:
        if isinstance(entry, type):
            cls: type[_T] = entry
            try:
                entry = cls()
            except TypeError as exc:
                raise TypeError(
                    f"cannot make a {cls.__name__} for this crawl without arguments ({exc}): "
                    "list an instance instead"
                ) from exc
        made.append(entry)
    return tuple(made)

