"""The frontier: per-domain queues that hand out only requests whose domain is ready.

Principle 1 of DESIGN.md lives here. A request is handed out only when its domain is under
``domain_concurrency``, has a token in its aiolimiter bucket (``has_capacity``), is not paused
(``Retry-After``), and the request's own ``not_before`` (a retry's backoff) has passed. When no
domain is ready the frontier sleeps once, until the soonest domain can become ready or until
something changes (a request added, a download finished). No worker ever sleeps holding a
request, so a paused or slow domain never blocks the others.

Every request that enters ends in one recorded outcome: filtered here (``bad_url``,
``offsite``, ``depth``, ``duplicate``, or ``max_pages`` when the crawl closes with it still
queued) or handed out to the engine, which records the rest.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable, Iterable

from aiolimiter import AsyncLimiter

from ._request import Request
from ._settings import Settings
from ._stats import StatsCollector
from ._url import BadURL, canonicalize, fingerprint

__all__ = ["Frontier"]

# Slack added to computed wake-up times so a token bucket that leaks in floating point has
# surely refilled when we look again (avoids a burst of zero-length sleeps).
_WAKE_SLACK = 0.001


class _Domain:
    """Scheduling state of one host."""

    __slots__ = ("delayed", "in_flight", "interval", "key", "last_token", "limiter", "paused_until", "queue")

    def __init__(self, key: str, rate: float | None) -> None:
        self.key = key
        self.queue: list[tuple[int, int, Request]] = []  # (-priority, seq, request): FIFO per priority
        self.delayed: list[tuple[float, int, Request]] = []  # (not_before, seq, request)
        self.in_flight = 0
        self.paused_until = 0.0
        # One token per interval, bucket of one: even spacing, no burst at start.
        self.limiter = AsyncLimiter(1, 1 / rate) if rate else None
        self.interval = 1 / rate if rate else 0.0
        self.last_token = -math.inf

    def pending(self) -> int:
        return len(self.queue) + len(self.delayed)


class Frontier:
    def __init__(
        self,
        settings: Settings,
        stats: StatsCollector,
        *,
        allowed_domains: Iterable[str] = (),
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._allowed = tuple(d.lower().lstrip(".") for d in allowed_domains)
        self._clock = clock or asyncio.get_running_loop().time
        self._domains: dict[str, _Domain] = {}
        self._active: dict[str, _Domain] = {}  # domains with queued or delayed requests, in round-robin order
        self._seen: set[int] = set()
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._holds = 0  # producers still running (start requests, callbacks, in-flight requests)
        self._page_budget = settings.max_pages  # first attempts still allowed to be handed out
        self._closed = False
        self.close_reason: str | None = None

    # -- adding ----------------------------------------------------------------------------

    def add(self, request: Request) -> bool:
        """Filter and enqueue a new request; False (and a recorded outcome) when filtered."""
        try:
            url, host = canonicalize(request.url)
        except BadURL as exc:
            self._stats.filtered(request, "bad_url", detail=exc.reason)
            return False
        allowed = self._allowed
        if allowed and not any(host == d or host.endswith("." + d) for d in allowed):
            self._stats.filtered(request, "offsite")
            return False
        max_depth = self._settings.max_depth
        if max_depth is not None and request.depth > max_depth:
            self._stats.filtered(request, "depth")
            return False
        # dont_filter skips the check but still records the URL, so a later link back to a
        # start page is a duplicate rather than a second fetch.
        fp = fingerprint(url, request.method, request.body)
        if fp in self._seen and not request.dont_filter:
            self._stats.filtered(request, "duplicate")
            return False
        self._seen.add(fp)
        if self._closed:
            self._stats.filtered(request, self.close_reason or "closed")
            return False
        request.url = url
        request.domain = host
        self._push(request, host)
        return True

    def add_all(self, requests: Iterable[Request]) -> None:
        for request in requests:
            self.add(request)

    def requeue(self, request: Request) -> None:
        """Put back a retry (no dedupe; it waits for its ``not_before`` holding no worker)."""
        if self._closed:
            self._stats.filtered(request, self.close_reason or "closed")
            return
        self._push(request, request.domain)

    def _push(self, request: Request, host: str) -> None:
        domain = self._domains.get(host)
        if domain is None:
            domain = self._domains[host] = _Domain(host, self._settings.rate_limit)
        if request.not_before > self._clock():
            heapq.heappush(domain.delayed, (request.not_before, next(self._seq), request))
        else:
            heapq.heappush(domain.queue, (-request.priority, next(self._seq), request))
        if host not in self._active:
            self._active[host] = domain
        self._stats.queued += 1
        self._wakeup.set()

    # -- the engine's side -----------------------------------------------------------------

    def hold(self) -> None:
        """A producer (start requests, a request being processed) may still add requests."""
        self._holds += 1

    def release(self) -> None:
        self._holds -= 1
        self._wakeup.set()

    def download_done(self, request: Request) -> None:
        """The request's connection slot is free again (its domain may take another)."""
        domain = self._domains.get(request.domain)
        if domain is not None:
            domain.in_flight -= 1
        self._wakeup.set()

    def refund_page(self) -> None:
        """A handed-out first attempt ended without a page: it does not count to max_pages."""
        if self._page_budget is not None:
            self._page_budget += 1
            self._wakeup.set()

    def pause(self, request: Request, seconds: float) -> None:
        """Pause the request's whole domain for ``seconds`` (the server asked via Retry-After)."""
        domain = self._domains.get(request.domain)
        if domain is not None:
            domain.paused_until = max(domain.paused_until, self._clock() + seconds)

    def paused_until(self, request: Request) -> float:
        domain = self._domains.get(request.domain)
        return domain.paused_until if domain is not None else 0.0

    def close(self, reason: str) -> None:
        """Hand out nothing more; queued requests are recorded as filtered with ``reason``."""
        if self._closed:
            return
        self._closed = True
        self.close_reason = reason
        for domain in self._active.values():
            for *_, request in itertools.chain(domain.queue, domain.delayed):
                self._stats.filtered(request, reason)
            domain.queue.clear()
            domain.delayed.clear()
        self._active.clear()
        self._stats.queued = 0
        self._wakeup.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def pending(self) -> int:
        return sum(d.pending() for d in self._active.values())

    async def next(self) -> Request | None:
        """The next request whose domain is ready; ``None`` when the crawl has nothing left."""
        while True:
            if self._closed:
                return None
            now = self._clock()
            domain, soonest = self._ready_domain(now)
            if domain is not None:
                return await self._hand_out(domain, now)
            if self._holds == 0:
                if not self._active:
                    if self._page_budget == 0:
                        self.close("max_pages")
                    return None
                if self._page_budget == 0 and not self._has_retries():
                    self.close("max_pages")
                    return None
            self._wakeup.clear()
            timeout = None if soonest == math.inf else max(soonest - now, 0.0) + _WAKE_SLACK
            try:
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def _ready_domain(self, now: float) -> tuple[_Domain | None, float]:
        """The first domain (round robin) that may send now, and else the soonest time one may."""
        soonest = math.inf
        budget = self._page_budget
        limit = self._settings.domain_concurrency
        for domain in self._active.values():
            delayed = domain.delayed
            while delayed and delayed[0][0] <= now:
                _, seq, request = heapq.heappop(delayed)
                heapq.heappush(domain.queue, (-request.priority, seq, request))
            if not domain.queue:
                if delayed:
                    soonest = min(soonest, delayed[0][0])
                continue
            if domain.in_flight >= limit:
                continue  # a finished download wakes us
            if domain.paused_until > now:
                soonest = min(soonest, domain.paused_until)
                continue
            if budget == 0 and _is_first_attempt(domain.queue[0][2]):
                continue  # max_pages reached, unless a handed-out page fails (its refund wakes us)
            if domain.limiter is not None and not domain.limiter.has_capacity():
                soonest = min(soonest, domain.last_token + domain.interval)
                continue
            return domain, soonest
        return None, soonest

    async def _hand_out(self, domain: _Domain, now: float) -> Request:
        if domain.limiter is not None:
            await domain.limiter.acquire()  # has capacity (just checked): returns without waiting
            domain.last_token = now
        request = heapq.heappop(domain.queue)[2]
        domain.in_flight += 1
        if self._page_budget is not None and _is_first_attempt(request):
            self._page_budget -= 1
        # Round robin: this domain goes to the back of the line.
        del self._active[domain.key]
        if domain.queue or domain.delayed:
            self._active[domain.key] = domain
        self._stats.queued -= 1
        return request

    def _has_retries(self) -> bool:
        return any(
            not _is_first_attempt(entry[-1])
            for domain in self._active.values()
            for entry in itertools.chain(domain.queue, domain.delayed)
        )


def _is_first_attempt(request: Request) -> bool:
    return request.attempt == 1 and request.redirects == 0
