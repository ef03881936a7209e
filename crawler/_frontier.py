"""The frontier: per-domain queues that hand out only requests whose domain is ready.

Principle 1 of DESIGN.md lives here. A request is handed out only when its domain is under
its concurrency, has a token in its aiolimiter bucket (``has_capacity``), is past its adaptive
interval (autothrottle, robots.txt ``Crawl-delay``), is not paused (``Retry-After``), and the
request's own ``not_before`` (a retry's backoff) has passed. When no domain is ready the
frontier sleeps once, until the soonest domain can become ready or something changes (a
request added, a download finished). No worker ever sleeps holding a request, so a paused or
slow domain never blocks the others.

Every request that enters ends in one recorded outcome: filtered here (``bad_url``,
``offsite``, ``depth``, ``duplicate``, ``robots``, or the close reason when the crawl closes
with it still queued), failed here (``robots_unavailable``), or handed out to the engine,
which records the rest.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from aiolimiter import AsyncLimiter

from ._failure import Failure
from ._links import LinkScreen
from ._request import Request
from ._response import Response
from ._retry import PAUSE_STATUSES
from ._robots import MAX_ROBOTS_BYTES, RobotsCache, origin_of
from ._seen import FingerprintSet
from ._settings import Settings
from ._stats import DomainStats, StatsCollector
from ._url import BadURL, canonicalize, fingerprint

__all__ = ["Frontier"]

# Slack added to computed wake-up times so a token bucket that leaks in floating point has
# surely refilled when we look again (avoids a burst of zero-length sleeps).
_WAKE_SLACK = 0.0001
# Autothrottle (AIMD): a 429/503 halves the domain's rate; each run of this many successes
# adds a tenth of the configured rate back.
_DECREASE = 0.5
_SUCCESS_RUN = 10
_INCREASE_SHARE = 0.1
_ROBOTS_PRIORITY = 1 << 30
_PROMOTED = 1 << 31  # above everything: see _Domain.promote_unbudgeted

_Template = tuple[Callable[..., object] | None, int]  # (callback, depth), shared by many links
_Entry = tuple[str, _Template] | Request


class _Domain:
    """Scheduling state of one rate-limit scope (a host, or a registrable domain)."""

    __slots__ = (
        "ceiling",
        "concurrency",
        "configured_rate",
        "delayed",
        "floor",
        "in_flight",
        "key",
        "last_token",
        "limiter",
        "pace",
        "paused_until",
        "queues",
        "rate",
        "size",
        "step",
        "streak",
        "throttled",
        "top",
    )

    def __init__(self, key: str, rate: float | None, concurrency: int) -> None:
        self.key = key
        # priority -> FIFO of entries. An entry is a (url, (callback, depth)) tuple for a plain
        # followed link (about 60 bytes besides the URL) or a Request for anything else.
        self.queues: dict[int, deque[_Entry]] = {}
        self.top = 0  #: highest priority with entries (when size > 0)
        self.size = 0
        self.delayed: list[tuple[float, int, Request]] = []  # (not_before, seq, request): retries
        self.in_flight = 0
        self.concurrency = concurrency
        self.paused_until = 0.0
        self.configured_rate = rate
        # One token per interval, bucket of one: even spacing, no burst at start. This is the
        # hard cap; autothrottle and Crawl-delay only ever slow a domain down from it.
        self.limiter = AsyncLimiter(1, 1 / rate) if rate else None
        self.rate = rate  #: current (adaptive) rate; None = unlimited
        self.ceiling = rate  #: where autothrottle recovers to before handing back to configured_rate
        self.step = 0.0
        self.pace = 0.0  #: moving average of seconds between hand-outs
        self.streak = 0
        self.throttled = 0
        self.floor = 0.0  #: robots.txt Crawl-delay / Request-rate, seconds
        self.last_token = -math.inf

    def push(self, priority: int, entry: _Entry) -> None:
        queue = self.queues.get(priority)
        if queue is None:
            queue = self.queues[priority] = deque()
        queue.append(entry)
        if not self.size or priority > self.top:
            self.top = priority
        self.size += 1

    def head(self) -> _Entry:
        return self.queues[self.top][0]

    def pop(self) -> _Entry:
        queue = self.queues[self.top]
        entry = queue.popleft()
        self.size -= 1
        if not queue:
            del self.queues[self.top]
            if self.queues:
                self.top = max(self.queues)
        return entry

    def promote_unbudgeted(self) -> bool:
        """Move the first queued retry, redirect hop or robots.txt request to the front.

        Once max_pages is reached only those may still go out; they must not wait behind
        fresh links that never will. Rare (the end of a limited crawl), so a scan is fine.
        """
        for priority in sorted(self.queues, reverse=True):
            queue = self.queues[priority]
            for entry in queue:
                if not _uses_budget(entry):
                    queue.remove(entry)
                    self.size -= 1
                    if not queue:
                        del self.queues[priority]
                    self.push(_PROMOTED, entry)
                    return True
        return False

    def entries(self) -> Iterator[_Entry]:
        for queue in self.queues.values():
            yield from queue
        for *_, request in self.delayed:
            yield request

    def clear(self) -> None:
        self.queues.clear()
        self.delayed.clear()
        self.size = 0

    def gap(self) -> float:
        """Seconds that must separate two requests beyond what the limiter enforces."""
        gap = self.floor
        if self.rate is not None and self.rate != self.configured_rate:
            gap = max(gap, 1 / self.rate)
        return gap


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
    ) -> None:
        self._settings = settings
        self._stats = stats
        self._allowed = tuple(d.lower().lstrip(".") for d in allowed_domains)
        self._clock = clock or asyncio.get_running_loop().time
        self._domain_key = domain_key or (lambda host: host)
        self._keys: dict[str, str] = {}  # host -> domain key, cached
        self._offsite_hosts: dict[str, bool] = {}  # host -> outside allowed_domains, cached
        self._domains: dict[str, _Domain] = {}
        self._active: dict[str, _Domain] = {}  # domains with queued or delayed requests, round robin
        self._seen = FingerprintSet()
        #: For ``Response.follow_all``: a page's links screened as ``add`` would, in one pass.
        self.links = LinkScreen(self._seen, self._offsite if self._allowed else None, stats)
        self._templates: dict[_Template, _Template] = {}
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._holds = 0  # producers still running (start requests, requests being processed)
        self._page_budget = settings.max_pages  # first attempts still allowed to be handed out
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
        elif not self._seen.add(fingerprint(url, request.method, request.body)) and not request.dont_filter:
            reason = "duplicate"
        elif self._closed:
            reason = self.close_reason or "closed"
        elif self._robots is not None:
            return self._check_robots(request, by_caller=True)
        else:
            self._push(request)
            return None
        stats.filtered(request, reason, by_caller=True)
        return reason

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
        key = request.domain
        domain = self._domains.get(key)
        if domain is None:
            rate, concurrency = self._settings.for_domain(key)
            domain = self._domains[key] = _Domain(key, rate, concurrency)
        if request.not_before > self._clock():
            heapq.heappush(domain.delayed, (request.not_before, next(self._seq), request))
        else:
            domain.push(request.priority, self._compact(request))
        if key not in self._active:
            self._active[key] = domain
        self._stats.queued += 1
        self._wakeup.set()

    def _compact(self, request: Request) -> _Entry:
        """A plain followed link is queued as (url, template): most of a frontier is these."""
        if (
            request._headers is None
            and not request._meta
            and not request._cb_kwargs
            and request.errback is None
            and request.body is None
            and request.cookies is None
            and request.method == "GET"
            and request.attempt == 1
            and request.redirects == 0
            and not request.dont_filter
            and not request.internal
            and request.priority == 0
            and type(request) is Request  # a subclass is kept whole
        ):
            key = (request.callback, request.depth)
            try:
                template = self._templates.get(key)
            except TypeError:  # an unhashable callable as callback: keep the Request as it is
                return request
            if template is None:
                template = self._templates[key] = key
            return (request.url, template)
        return request

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
        domain = self._domains.get(response.request.meta["robots_domain"])
        if floor and domain is not None:
            domain.floor = max(domain.floor, floor)
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
        domain = self._domains.get(request.domain)
        if domain is not None:
            domain.in_flight -= 1
        self._wakeup.set()

    def observe(self, request: Request, status: int) -> None:
        """Autothrottle: a 429/503 cuts the domain's rate, a run of other answers raises it."""
        domain = self._domains.get(request.domain)
        if domain is None:
            return
        if status in PAUSE_STATUSES:
            domain.throttled += 1
            domain.streak = 0
            if self._settings.autothrottle:
                self._slow_down(domain)
        elif domain.rate != domain.configured_rate:
            domain.streak += 1
            if domain.streak >= _SUCCESS_RUN:
                domain.streak = 0
                rate = domain.rate + domain.step  # type: ignore[operator]
                domain.rate = domain.configured_rate if rate >= domain.ceiling else rate  # type: ignore[operator]

    def _slow_down(self, domain: _Domain) -> None:
        if domain.rate is None:
            # Unlimited until now: cut from the pace it actually had, and recover to that
            # pace before going back to unlimited.
            domain.rate = domain.ceiling = 1 / domain.pace if domain.pace > 0 else 10.0
        domain.step = max(domain.ceiling * _INCREASE_SHARE, self._settings.min_rate)  # type: ignore[operator]
        domain.rate = max(domain.rate * _DECREASE, self._settings.min_rate)

    def refund_page(self) -> None:
        """A chain (request, retries, redirect hops) ended without a page: it does not count."""
        if self._page_budget is not None:
            self._page_budget += 1
            self._wakeup.set()

    def pause(self, request: Request, seconds: float) -> None:
        """Pause the request's whole domain for ``seconds`` (the server asked via Retry-After)."""
        domain = self._domains.get(request.domain)
        if domain is not None:
            domain.paused_until = max(domain.paused_until, self._clock() + seconds)

    def close(self, reason: str) -> None:
        """Hand out nothing more; queued requests are recorded as filtered with ``reason``."""
        if self._closed:
            return
        self._closed = True
        self.close_reason = reason
        dropped = 0
        for domain in self._active.values():
            dropped += sum(1 for entry in domain.entries() if isinstance(entry, tuple) or not entry.internal)
            domain.clear()
        dropped += sum(len(parked) for parked in self._parked.values())
        if dropped:
            self._stats.count_filtered(reason, dropped)
        self._parked.clear()
        self._active.clear()
        self._stats.queued = 0
        self._wakeup.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def domain_stats(self) -> dict[str, DomainStats]:
        now = self._clock()
        return {
            key: DomainStats(
                rate=None if d.rate is None else round(d.rate, 3),
                configured_rate=d.configured_rate,
                crawl_delay=d.floor or None,
                paused_for_s=round(max(d.paused_until - now, 0.0), 3),
                throttled=d.throttled,
                queued=d.size + len(d.delayed),
                in_flight=d.in_flight,
            )
            for key, d in self._domains.items()
        }

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
                if self._page_budget == 0 and not self._has_unbudgeted():
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
        for domain in self._active.values():
            delayed = domain.delayed
            while delayed and delayed[0][0] <= now:
                request = heapq.heappop(delayed)[2]
                domain.push(request.priority, request)
            if delayed:
                soonest = min(soonest, delayed[0][0])
            if not domain.size:
                continue
            if domain.in_flight >= domain.concurrency:
                continue  # a finished download wakes us
            if domain.paused_until > now:
                soonest = min(soonest, domain.paused_until)
                continue
            if budget == 0 and _uses_budget(domain.head()) and not domain.promote_unbudgeted():
                continue  # max_pages reached, unless a handed-out page fails (its refund wakes us)
            gap = domain.gap()
            if gap and now < domain.last_token + gap:
                soonest = min(soonest, domain.last_token + gap)
                continue
            if domain.limiter is not None and not domain.limiter.has_capacity():
                soonest = min(soonest, domain.last_token + 1 / domain.configured_rate)  # type: ignore[operator]
                continue
            return domain, soonest
        return None, soonest

    async def _hand_out(self, domain: _Domain, now: float) -> Request:
        if domain.limiter is not None:
            await domain.limiter.acquire()  # has capacity (just checked): returns without waiting
        if domain.last_token > -math.inf:
            domain.pace += 0.1 * ((now - domain.last_token) - domain.pace)
        domain.last_token = now
        entry = domain.pop()
        if isinstance(entry, tuple):
            url, (callback, depth) = entry
            request = Request._link(url, callback, depth, domain.key)
        else:
            request = entry
        domain.in_flight += 1
        if self._page_budget is not None and _uses_budget(request):
            self._page_budget -= 1
        # Round robin: this domain goes to the back of the line.
        del self._active[domain.key]
        if domain.size or domain.delayed:
            self._active[domain.key] = domain
        self._stats.queued -= 1
        return request

    def _has_unbudgeted(self) -> bool:
        """Any queued retry, redirect hop or robots.txt request (these need no page budget)."""
        return any(not _uses_budget(entry) for domain in self._active.values() for entry in domain.entries())


def _uses_budget(entry: _Entry) -> bool:
    """The first hand-out of a chain counts against max_pages; retries and hops do not."""
    if isinstance(entry, tuple):
        return True
    return entry.attempt == 1 and entry.redirects == 0 and not entry.internal


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
