"""The spider's start requests, fed into the frontier once per crawl.

``start()`` runs as a task of the crawl, beside the downloads (a long seed list is fetched
from while it is still being read), and holds the frontier open until it is done:

* a resumed crawl (``--state``) skips it once a run has been through it;
* a shared crawl (``--frontier``) runs it in one worker; when that worker leaves or dies
  before it is done, another worker takes over, and re-adds every start request with the
  shared seen-set deduping them (``dont_filter`` included), so none is lost or fetched twice.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import structlog

from ._addresses import AddressGuard
from ._callbacks import new_chain
from ._frontier import Frontier
from ._request import Request
from ._resume import Resume
from ._shared import SharedCrawl
from ._spider import Spider
from ._stats import StatsCollector

__all__ = ["StartFeeder"]


class StartFeeder:
    """Runs ``spider.start()`` into ``frontier`` as a task of ``tasks`` (see the module doc)."""

    def __init__(
        self,
        spider: Spider,
        frontier: Frontier,
        tasks: asyncio.TaskGroup,
        stats: StatsCollector,
        guard: AddressGuard,
        log: structlog.stdlib.BoundLogger,
        *,
        resume: Resume | None,
        shared: SharedCrawl | None,
    ) -> None:
        self._spider = spider
        self._frontier = frontier
        self._tasks = tasks
        self._stats = stats
        self._guard = guard
        self._log = log
        self._resume = resume
        self._shared = shared
        self._feeding = False  # start() runs in this process (or its claim is being asked for)

    def feed(self, *, takeover: bool) -> None:
        """Run start() now; ``takeover``: another worker began it (a shared crawl)."""
        frontier = self._frontier
        if self._shared is not None:
            frontier.resumed = self._shared.store.takeover = takeover
            if takeover:
                self._log.info("start_requests_taken_over")
        self._feeding = True
        frontier.hold()
        self._tasks.create_task(self._run())

    def take_over(self) -> None:
        """The worker adding the start requests left or died before it was done: try to take over."""
        if self._feeding or self._frontier.closed:
            return
        self._feeding = True  # until the claim says otherwise
        self._frontier.hold()
        self._tasks.create_task(self._claim())

    async def _claim(self) -> None:
        assert self._shared is not None
        try:
            feed = await self._shared.join(rejoin=True)
        finally:
            self._frontier.release()
        if feed == "takeover":
            self.feed(takeover=True)
        else:
            self._feeding = False

    async def _run(self) -> None:
        frontier, shared = self._frontier, self._shared
        try:
            async for request in self._spider.start():
                if frontier.closed:
                    break
                if isinstance(request, Request):
                    self._stats.start_requests += 1
                    if self._guard.auto and self._guard.enabled:  # before robots.txt is fetched for it
                        self._guard.saw_start(urlsplit(request.url).hostname or "")
                    new_chain(request)
                    frontier.add(request)
                    if shared is not None and shared.store.pending() >= 10_000:
                        await shared.store.sync(0)  # a long seed list reaches Redis as it goes
                else:
                    self._stats.callback_errors += 1
                    self._log.error("bad_start_request", reason=f"not a Request: {request!r}"[:200])
            else:
                if self._resume is not None and not frontier.closed:
                    self._resume.start_done = True  # a resumed run need not call start() again
        except Exception as exc:
            self._stats.callback_errors += 1
            self._log.error("start_requests_error", reason=repr(exc), exc_info=exc)
        finally:
            # A shared crawl's start() is over unless this worker stopped in it (then another
            # worker takes over); one that raised would raise again, so it is over too.
            if shared is not None and not frontier.closed:
                shared.store.start_done()
            self._feeding = False
            frontier.release()
