"""The frontier's policy: which requests enter the crawl, and when one goes out.

Principle 1 of DESIGN.md: a request is handed out only when its domain is ready. Three parts
share the work. The policy here canonicalises each request and filters it (``bad_url``,
``offsite``, ``depth``, ``duplicate``, ``robots``, or the close reason when the crawl has
closed), gates it on its origin's robots.txt and keeps the ``max_pages`` budget. The store
(``_store``) holds the queues and the seen-set and finds a ready domain by its next-ready time;
the pacer (``_pacer``) says when each domain may send (rate, concurrency, Retry-After pauses,
autothrottle, Crawl-delay). When no domain is ready the frontier sleeps once, until the
soonest domain can become ready or something changes (a request added, a download finished).
No worker ever sleeps holding a request, so a paused or slow domain never blocks the others.

Every request that enters ends in one recorded outcome: filtered here, failed here
(``robots_unavailable``), or handed out to the engine, which records the rest.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable, Iterable

from ._codec import UnstorableRequest
from ._exceptions import IgnoreRequest
from ._failure import Failure
from ._links import LinkScreen
from ._pacer import MemoryPacer, Pacer
from ._request import Request
from ._response import Response
from ._robots_gate import RobotsGate
from ._settings import Settings
from ._stats import DomainStats, StatsCollector
from ._store import FrontierStore, MemoryStore, uses_budget
from ._url import BadURL, canonicalize, fingerprint

__all__ = ["Frontier"]

# Slack added to computed wake-up times so a token bucket that leaks in floating point has
# surely refilled when we look again (avoids a burst of zero-length sleeps).
_WAKE_SLACK = 0.0001


class Frontier:
    def __init__(
        self,
        settings: Settings,
        stats: StatsCollector,
        *,
        allowed_domains: Iterable[str] = (),
        clock: Callable[[], float] | None = None,
        domain_key: Callable[[str], str] | None = None,
        on_failure: Callable[[Request, str, str | None], None] | None = None,
        store: FrontierStore | None = None,
        pacer: Pacer | None = None,
        pages_done: int = 0,
        shared: bool = False,
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._allowed = frozenset(d.lower().lstrip(".") for d in allowed_domains)
        self._clock = clock or asyncio.get_running_loop().time
        self._domain_key = domain_key or (lambda host: host)
        self._keys: dict[str, str] = {}  # host -> domain key, cached
        self._offsite_hosts: dict[str, bool] = {}  # host -> outside allowed_domains, cached
        self._pacer: Pacer = pacer or MemoryPacer(settings)
        self._store: FrontierStore = store or MemoryStore(self._pacer)
        #: For ``Response.follow_all``: a page's links screened as ``add`` would, in one pass.
        self.links = LinkScreen(self._store.seen, self._offsite if self._allowed else None, stats)
        self._wakeup = asyncio.Event()
        self._holds = 0  # producers still running (start requests, requests being processed)
        # First attempts still allowed to be handed out (a resumed crawl counts its earlier pages).
        # A store shared by several workers (``shared``) keeps max_pages itself: one budget for
        # all of them. It also has robots.txt checked when a request is handed out rather than
        # when it is added: a request waiting for its origin's rules waits leased in the shared
        # store, where every worker sees that the crawl is not over.
        self._page_budget = (
            None if settings.max_pages is None or shared else max(settings.max_pages - pages_done, 0)
        )
        self._store_budget = shared and settings.max_pages is not None
        self._shared = shared
        #: A resumed crawl whose start() runs again: start requests already accepted are skipped,
        #: even the ones that skip dedupe (start_urls' requests do).
        self.resumed = False
        self._robots = RobotsGate(self, settings.user_agent, self._clock) if settings.obey_robots else None
        # Records a request that fails here (robots_unavailable); the engine runs its errback.
        self._on_failure = on_failure or (lambda request, reason, error: stats.failed(request, reason, error=error))
        self._closed = False
        self.close_reason: str | None = None
        stats.domain_stats = self.domain_stats

    # -- adding ----------------------------------------------------------------------------

    def add(self, request: Request) -> str | None:
        """Filter and enqueue a new request: ``None`` when it is queued, else the reason it ended here.

        A request that ends here has its outcome recorded (filtered, or failed for
        ``robots_unavailable``) before this returns.
        """
        stats = self._stats
        marker = request._canonical
        if marker is not None and marker[0] is request.url and (marker[1] or request.depth):
            url, host = marker  # resolved by Response.follow
            if not host:  # not a crawlable URL (a start request is canonicalised again, for the detail)
                stats.filtered(request, "bad_url", by_caller=True)
                return "bad_url"
        else:
            try:
                url, host = canonicalize(request.url)
            except BadURL as exc:
                stats.filtered(request, "bad_url", detail=exc.reason, by_caller=True)
                return "bad_url"
            request.url = url
        if request.internal:  # robots.txt and its redirects: none of the crawl's filters apply
            request.domain = self._key_of(host)
            self._push(request)
            return None
        if self._allowed and self._offsite(host):
            reason = "offsite"
        elif (max_depth := self._settings.max_depth) is not None and request.depth > max_depth:
            reason = "depth"
        # dont_filter skips the check but still records the URL, so a later link back to a
        # start page is a duplicate rather than a second fetch.
        elif not self._store.see(fingerprint(url, request.method, request.body)) and (
            not request.dont_filter or (self.resumed and request.depth == 0 and not request.redirects)
        ):
            reason = "duplicate"
        else:
            request.domain = self._key_of(host)
            try:
                # Accepted even when the crawl has closed: a durable store keeps it for the
                # run that resumes the crawl (nothing else would find that link again).
                self._store.accept(request)
            except UnstorableRequest as exc:
                stats.unstorable(request, str(exc))
                return "unstorable"
            if self._closed and not self._shared:  # (a shared crawl goes on: other workers take it)
                reason = self.close_reason or "closed"
                stats.filtered(request, reason, by_caller=True)
                return reason
            if self._robots is not None and not self._shared:
                return self._robots.check(request, by_caller=True)
            self._push(request)
            return None
        stats.filtered(request, reason, by_caller=True)
        return reason

    def restore(self, request: Request) -> None:
        """Queue again a request that a resumed crawl read back from its store.

        It was accepted before (it is in the seen-set), so only the filters that settings may
        have changed since apply; one that ends here ends its stored chain.
        """
        try:
            url, host = canonicalize(request.url)
        except BadURL as exc:
            self._stats.filtered(request, "bad_url", detail=exc.reason)
            self._store.finish(request)
            return
        request.url = url
        request.domain = self._key_of(host)
        if self._allowed and self._offsite(host):
            reason = "offsite"
        elif (max_depth := self._settings.max_depth) is not None and request.depth > max_depth:
            reason = "depth"
        elif self._robots is not None:
            self._robots.check(request, by_caller=False)
            return
        else:
            self._push(request)
            return
        self._stats.filtered(request, reason)
        self._store.finish(request)

    def finish(self, request: Request, *, page: bool = False, items: int = 0) -> None:
        """``request``'s chain has ended (its one outcome is recorded): the store may forget it."""
        self._store.finish(request, page=page, items=items)

    def _key_of(self, host: str) -> str:
        """The domain key ``host``'s requests are paced and queued under (cached)."""
        key = self._keys.get(host)
        if key is None:
            key = self._keys[host] = self._domain_key(host)
        return key

    def _offsite(self, host: str) -> bool:
        offsite = self._offsite_hosts.get(host)
        if offsite is None:
            if len(self._offsite_hosts) > 100_000:  # a broad crawl: keep the cache bounded
                self._offsite_hosts.clear()
            # The host or one of its parent domains is allowed: a lookup per label, not a scan
            # of allowed_domains (a broad crawl may list thousands).
            allowed = self._allowed
            offsite = host not in allowed
            dot = host.find(".")
            while offsite and dot >= 0:
                offsite = host[dot + 1 :] not in allowed
                dot = host.find(".", dot + 1)
            self._offsite_hosts[host] = offsite
        return offsite

    def requeue(self, request: Request) -> None:
        """Put back a retry (no dedupe; it waits for its ``not_before`` holding no worker)."""
        if self._closed and not self._shared:
            if not request.internal:
                self._stats.count_filtered(self.close_reason or "closed")
            return
        self._push(request)

    def _push(self, request: Request) -> None:
        self._store.push(request, self._clock())
        self._stats.queued += 1
        self._wakeup.set()

    # -- outcomes: every request's one outcome is recorded here ------------------------------

    def followed(self, request: Request, then: Request) -> None:
        """The download gave the next request of the same chain: a redirect hop or a retry."""
        if then.redirects > request.redirects:
            self._stats.redirected += 1
            reason = self.add(then)
            if reason is None or (self._closed and reason == self.close_reason):
                # Queued (or dropped only because the crawl closed): a resumed crawl goes on from the hop.
                self._store.advance(then)
            elif then.internal:  # robots.txt redirected somewhere unusable: settle its origin
                self._gate().failed(Failure(then, "bad_url"))
            else:  # the hop was filtered: the chain ends here without a page
                self.refund_page(request)
                self.finish(request)
        else:
            self._stats.retries += 1
            self.requeue(then)

    def ignored(self, request: Request, error: IgnoreRequest) -> None:
        """A middleware refused the request."""
        if request.internal:  # refused robots.txt: its origin must still be settled
            self._gate().failed(Failure(request, error.reason, error))
            return
        self.refund_page(request)
        self._stats.filtered(request, error.reason)
        self.finish(request)

    def cancelled(self, request: Request) -> None:
        """The crawl was cancelled with the request in flight: its one outcome, even now."""
        if not request.internal:
            self._stats.count_filtered("cancelled")

    def failed(self, request: Request, failure: Failure) -> bool:
        """The request failed; True when the spider's errback is to see it (then the engine
        ends its chain, after the errback)."""
        if request.internal:
            self._stats.robots_txt[failure.reason] += 1
            self._gate().failed(failure)
            return False
        self.refund_page(request)
        self._stats.failed(request, failure.reason, error=_describe(failure.exception))
        return True

    def answered(self, request: Request, response: Response) -> bool:
        """A response for a callback; True when it is a page of the spider's (then the
        engine runs the callback and ends the chain)."""
        if request.internal:
            self._stats.robots_txt["fetched"] += 1
            self._gate().loaded(response)
            return False
        self._stats.pages += 1
        return True

    def _gate(self) -> RobotsGate:
        assert self._robots is not None, "a robots.txt request without a robots gate"
        return self._robots

    # -- the engine's side -----------------------------------------------------------------

    def hold(self) -> None:
        """A producer (start requests, a request being processed) may still add requests."""
        self._holds += 1

    def release(self) -> None:
        self._holds -= 1
        self._wakeup.set()

    def sending(self, request: Request) -> float:
        """The request reaches the downloader: seconds it waits there first (``Pace.door``)."""
        return self._pacer.sending(request.domain, self._clock())

    def download_done(self, request: Request) -> None:
        """The request's connection slot is free again (its domain may take another)."""
        self._store.done(request, self._clock())
        self._wakeup.set()

    def observe(self, request: Request, status: int) -> None:
        """Autothrottle: a 429/503 cuts the domain's rate, a run of other answers raises it."""
        self._pacer.observe(request.domain, status)

    def refund_page(self, request: Request | None = None) -> None:
        """A chain (request, retries, redirect hops) ended without a page: it does not count."""
        if self._page_budget is not None:
            self._page_budget += 1
        elif not self._store_budget:
            return
        self._store.budget_restored(self._clock(), request)
        self._wakeup.set()

    def pause(self, request: Request, seconds: float) -> None:
        """Pause the request's whole domain for ``seconds`` (the server asked via Retry-After)."""
        self._pacer.pause(request.domain, self._clock() + seconds)

    def close(self, reason: str) -> None:
        """Hand out nothing more; queued requests are recorded as filtered with ``reason``."""
        if self._closed:
            return
        self._closed = True
        self.close_reason = reason
        dropped = self._store.drain() + (self._robots.drop() if self._robots is not None else 0)
        if dropped:
            self._stats.count_filtered(reason, dropped)
        self._stats.queued = 0
        self._wakeup.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def busiest_domains(self, count: int) -> tuple[int, dict[str, DomainStats]]:
        """How many domains there are, and the state of the ``count`` busiest (most in flight,
        then most queued, then most 429/503s), picked before any DomainStats is built: a live
        view or a metrics scrape of a crawl of 100,000 domains asks for a handful."""
        keys = dict.fromkeys([*self._pacer.paces(), *self._store.domains()])
        return len(keys), self.domain_stats(keys, busiest=count)

    def domain_stats(self, keys: Iterable[str] | None = None, busiest: int | None = None) -> dict[str, DomainStats]:
        """Each domain's state (of ``keys``; with ``busiest``, only that many of them)."""
        now = self._clock()
        stats = {}
        if keys is None:
            keys = dict.fromkeys([*self._pacer.paces(), *self._store.domains()])  # each once, in order
        if busiest is not None:
            pacer, store = self._pacer, self._store

            def load(key: str) -> tuple[int, int, int]:
                pace = pacer.pace(key)
                return pace.in_flight, store.queued(key), pace.throttled

            keys = heapq.nlargest(busiest, keys, key=load)
        for key in keys:
            pace = self._pacer.pace(key)
            stats[key] = DomainStats(
                rate=None if pace.rate is None else round(pace.rate, 3),
                configured_rate=pace.configured_rate,
                crawl_delay=pace.floor or None,
                paused_for_s=round(max(pace.paused_until - now, 0.0), 3),
                throttled=pace.throttled,
                queued=self._store.queued(key),
                in_flight=pace.in_flight,
            )
        return stats

    async def next(self) -> Request | None:
        """The next request whose domain is ready; ``None`` when the crawl has nothing left."""
        store = self._store
        while True:
            if self._closed:
                return None
            now = self._clock()
            budget = self._page_budget
            # Cleared before asking the store: what happens while a shared store's lease()
            # awaits Redis (a download done, a request added) must wake the wait below.
            self._wakeup.clear()
            request, soonest = await store.lease(now, fresh=budget != 0)
            if self._closed:  # while a shared store awaited Redis (max_items reached elsewhere)
                return None  # (what it claimed goes back when it closes)
            if request is not None:
                if budget is not None and uses_budget(request):
                    self._page_budget = budget - 1
                self._stats.queued -= 1
                robots = self._robots
                if self._shared and robots is not None and not request.internal and not robots.admit(request):
                    store.done(request, now)  # parked or ended here: its domain's slot is free
                    continue
                return request
            if self._holds == 0:
                parked = self._robots is not None and self._robots.waiting()
                if not store.active() and not parked:
                    reason = "max_pages" if budget == 0 else store.end_reason()
                    if reason is not None:
                        self.close(reason)
                    return None
                if budget == 0 and not store.has_unbudgeted() and not parked:
                    self.close("max_pages")
                    return None
            timeout = None if soonest == math.inf else max(soonest - now, 0.0) + _WAKE_SLACK
            try:
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                pass


def _describe(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    cause = exc.__cause__
    return f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)


def registrable_domain_key() -> Callable[[str], str]:
    """Maps a host to its registrable domain (``a.b.example.co.uk`` -> ``example.co.uk``).

    Uses tldextract's bundled public suffix list (no network); hosts without a public suffix
    (IP addresses, ``localhost``) are their own key.
    """
    import tldextract

    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    def key(host: str) -> str:
        parts = extract.extract_str(host)
        return f"{parts.domain}.{parts.suffix}" if parts.suffix and parts.domain else host

    return key


__all__ += ["registrable_domain_key"]
