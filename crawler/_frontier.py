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
import math
from collections.abc import Callable, Iterable

from ._codec import UnstorableRequest
from ._failure import Failure
from ._links import LinkScreen
from ._pacer import MemoryPacer, Pacer
from ._request import Request
from ._response import Response
from ._robots import MAX_ROBOTS_BYTES, RobotsCache, origin_of
from ._settings import Settings
from ._stats import DomainStats, StatsCollector
from ._store import FrontierStore, MemoryStore, uses_budget
from ._url import BadURL, canonicalize, fingerprint

__all__ = ["Frontier"]

# Slack added to computed wake-up times so a token bucket that leaks in floating point has
# surely refilled when we look again (avoids a burst of zero-length sleeps).
_WAKE_SLACK = 0.0001
_ROBOTS_PRIORITY = 1 << 30


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
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._allowed = tuple(d.lower().lstrip(".") for d in allowed_domains)
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
        self._page_budget = None if settings.max_pages is None else max(settings.max_pages - pages_done, 0)
        #: A resumed crawl whose start() runs again: start requests already accepted are skipped,
        #: even the ones that skip dedupe (start_urls' requests do).
        self.resumed = False
        self._robots = RobotsCache(settings.user_agent, self._clock) if settings.obey_robots else None
        self._parked: dict[str, list[Request]] = {}  # origin -> requests waiting for its robots.txt
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
        try:
            url, host = canonicalize(request.url)
        except BadURL as exc:
            stats.filtered(request, "bad_url", detail=exc.reason, by_caller=True)
            return "bad_url"
        request.url = url
        key = self._keys.get(host)
        if key is None:
            key = self._keys[host] = self._domain_key(host)
        request.domain = key
        if request.internal:  # robots.txt and its redirects: none of the crawl's filters apply
            self._push(request)
            return None
        if self._allowed and self._offsite(host):
            reason = "offsite"
        elif (max_depth := self._settings.max_depth) is not None and request.depth > max_depth:
            reason = "depth"
        # dont_filter skips the check but still records the URL, so a later link back to a
        # start page is a duplicate rather than a second fetch.
        elif not self._store.see(fingerprint(url, request.method, request.body)) and (
            not request.dont_filter or (self.resumed and request.depth == 0)
        ):
            reason = "duplicate"
        else:
            try:
                # Accepted even when the crawl has closed: a durable store keeps it for the
                # run that resumes the crawl (nothing else would find that link again).
                self._store.accept(request)
            except UnstorableRequest as exc:
                self._stats.unstorable(request, str(exc))
                return "unstorable"
            if self._closed:
                reason = self.close_reason or "closed"
                stats.filtered(request, reason, by_caller=True)
                return reason
            if self._robots is not None:
                return self._check_robots(request, by_caller=True)
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
        request.domain = self._keys.get(host) or self._keys.setdefault(host, self._domain_key(host))
        if self._allowed and self._offsite(host):
            reason = "offsite"
        elif (max_depth := self._settings.max_depth) is not None and request.depth > max_depth:
            reason = "depth"
        elif self._robots is not None:
            self._check_robots(request, by_caller=False)
            return
        else:
            self._push(request)
            return
        self._stats.filtered(request, reason)
        self._store.finish(request)

    def finish(self, request: Request) -> None:
        """``request``'s chain has ended (its one outcome is recorded): the store may forget it."""
        self._store.finish(request)

    def _offsite(self, host: str) -> bool:
        offsite = self._offsite_hosts.get(host)
        if offsite is None:
            if len(self._offsite_hosts) > 100_000:  # a broad crawl: keep the cache bounded
                self._offsite_hosts.clear()
            offsite = self._offsite_hosts[host] = not any(host == d or host.endswith("." + d) for d in self._allowed)
        return offsite

    def requeue(self, request: Request) -> None:
        """Put back a retry (no dedupe; it waits for its ``not_before`` holding no worker)."""
        if self._closed:
            if not request.internal:
                self._stats.count_filtered(self.close_reason or "closed")
            return
        self._push(request)

    def _push(self, request: Request) -> None:
        self._store.push(request, self._clock())
        self._stats.queued += 1
        self._wakeup.set()

    # -- robots.txt ------------------------------------------------------------------------

    def _check_robots(self, request: Request, *, by_caller: bool) -> str | None:
        """Queue, park or end ``request`` by its origin's robots.txt.

        ``by_caller``: called from ``add``, whose caller gets the reason back (and logs the
        page's summary, refunds a redirect hop); else a parked request is being released,
        and its outcome is wholly settled here.
        """
        robots = self._robots
        assert robots is not None
        origin = origin_of(request.url)
        verdict = robots.verdict(origin, request.url)
        if verdict is True:
            self._push(request)
            return None
        if verdict is False:
            self._stats.filtered(request, "robots", by_caller=by_caller)
            if not by_caller:
                self._refund_hop(request)
                self._store.finish(request)
            return "robots"
        why = robots.unavailable(origin)
        if why is not None:
            self._on_failure(request, "robots_unavailable", why)
            if not by_caller:
                self._refund_hop(request)
            return "robots_unavailable"
        parked = self._parked.get(origin)
        if parked is None:
            parked = self._parked[origin] = []
            fetch = Request(
                origin + "/robots.txt",
                callback=self._robots_loaded,
                errback=self._robots_failed,
                dont_filter=True,
                priority=_ROBOTS_PRIORITY,
                meta={
                    "max_response_bytes": MAX_ROBOTS_BYTES,
                    "truncate_body": True,
                    "robots_origin": origin,
                    "robots_domain": request.domain,
                },
            )
            fetch.internal = True
            fetch.domain = request.domain
            self._push(fetch)
        parked.append(request)
        self._stats.queued += 1
        return None

    def _refund_hop(self, request: Request) -> None:
        """A parked redirect hop that ends here ends its chain without a page."""
        if request.redirects:  # (a hop never uses the page budget: see _uses_budget)
            self.refund_page()

    def _robots_loaded(self, response: Response) -> None:
        assert self._robots is not None
        origin = response.request.meta["robots_origin"]
        rules = self._robots.loaded(origin, response.body)
        floor = rules.min_interval()
        if floor:
            self._pacer.set_floor(response.request.meta["robots_domain"], floor)
        self._release_parked(origin)

    def _robots_failed(self, failure: Failure) -> None:
        assert self._robots is not None
        origin = failure.request.meta["robots_origin"]
        status = failure.response.status if failure.response is not None else None
        client_error = status is not None and 400 <= status < 500 and status != 429
        if failure.reason in ("max_redirects", "bad_url") or client_error:
            # RFC 9309 2.3.1.3: an "unavailable" robots.txt (4xx, more than 5 redirects, or a
            # redirect we cannot follow) means there are no rules.
            self._robots.allow_all(origin)
        else:
            # 5xx/429/unreachable after retries
            error = failure.exception.__cause__ or failure.exception if failure.exception is not None else None
            why = f"{origin}/robots.txt: {failure.reason}" + (f" ({error})" if error is not None else "")
            self._robots.mark_unavailable(origin, why)
        self._release_parked(origin)

    def _release_parked(self, origin: str) -> None:
        for request in self._parked.pop(origin, ()):
            self._stats.queued -= 1
            if self._closed:
                self._stats.count_filtered(self.close_reason or "closed")
            else:
                self._check_robots(request, by_caller=False)
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
        self._store.done(request.domain, self._clock())
        self._wakeup.set()

    def observe(self, request: Request, status: int) -> None:
        """Autothrottle: a 429/503 cuts the domain's rate, a run of other answers raises it."""
        self._pacer.observe(request.domain, status)

    def refund_page(self) -> None:
        """A chain (request, retries, redirect hops) ended without a page: it does not count."""
        if self._page_budget is not None:
            self._page_budget += 1
            self._store.budget_restored(self._clock())
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
        dropped = self._store.drain() + sum(len(parked) for parked in self._parked.values())
        if dropped:
            self._stats.count_filtered(reason, dropped)
        self._parked.clear()
        self._stats.queued = 0
        self._wakeup.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def domain_stats(self) -> dict[str, DomainStats]:
        now = self._clock()
        stats = {}
        for key in {**self._pacer.paces(), **dict.fromkeys(self._store.domains())}:
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
            request, soonest = await store.lease(now, fresh=budget != 0)
            if request is not None:
                if budget is not None and uses_budget(request):
                    self._page_budget = budget - 1
                self._stats.queued -= 1
                return request
            if self._holds == 0:
                if not store.active() and not self._parked:
                    if budget == 0:
                        self.close("max_pages")
                    return None
                if budget == 0 and not store.has_unbudgeted() and not self._parked:
                    self.close("max_pages")
                    return None
            self._wakeup.clear()
            timeout = None if soonest == math.inf else max(soonest - now, 0.0) + _WAKE_SLACK
            try:
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                pass


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
