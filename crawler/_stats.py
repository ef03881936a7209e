"""Crawl statistics: counters kept while crawling and a frozen snapshot to read them."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ._log import debug_enabled, get_logger
from ._request import Request

__all__ = ["START_WARNINGS", "CrawlStats", "DomainStats", "StatsCollector"]

#: How many start requests that are filtered or fail get a WARNING each; later ones are DEBUG
#: (a seed list of a million URLs with duplicates must not flood the log).
START_WARNINGS = 20


@dataclasses.dataclass(frozen=True, slots=True)
class DomainStats:
    """One domain's scheduling state at the time of the snapshot."""

    rate: float | None  #: current requests/s (autothrottle may have lowered it); None = unlimited
    configured_rate: float | None
    crawl_delay: float | None  #: robots.txt Crawl-delay/Request-rate floor, seconds
    paused_for_s: float  #: seconds left of a Retry-After pause
    throttled: int  #: 429/503 answers received
    queued: int
    in_flight: int


@dataclasses.dataclass(frozen=True, slots=True)
class CrawlStats:
    """A snapshot of a crawl's counters. Every request is in exactly one of ``pages``
    (handed to a callback), ``failures`` (by reason), ``filtered`` (by reason) or
    ``redirected``; ``retries`` counts extra attempts.
    """

    requests: int  #: downloads attempted (retries and redirect hops included)
    start_requests: int  #: requests the spider's ``start()`` (or ``start_requests()``) produced
    responses: dict[int, int]  #: responses by HTTP status
    pages: int  #: responses handed to a spider callback
    retries: int
    redirected: int
    failures: dict[str, int]
    filtered: dict[str, int]
    items: int
    items_dropped: dict[str, int]
    callback_errors: int
    robots_txt: dict[str, int]  #: robots.txt fetches by outcome (``fetched``, ``http_404`` ...)
    proxies_rested: dict[str, int]  #: times each proxy (its URL without the password) was rested
    bytes: int  #: decompressed body bytes received
    queued: int  #: requests waiting in the frontier at the time of the snapshot
    elapsed_s: float
    pages_per_second: float
    domains: dict[str, DomainStats]
    close_reason: str | None  #: ``finished``, ``stopped``, ``cancelled``, ``max_pages``, ``max_items``, ``error``

    def no_pages_reason(self) -> str | None:
        """Why no page reached a callback, in one line; ``None`` when some did.

        With no page handed to a callback, every outcome counted belongs to a start request
        or its retries and redirect hops, so the counts say what became of them.
        """
        if self.pages:
            return None
        if not self.start_requests:
            return "the spider made no start requests" + (
                " (its start() raised or yielded something other than a Request: see the log)"
                if self.callback_errors
                else " (start_urls is empty and start() yielded nothing)"
            )
        ends = [
            f"{what} ({', '.join(f'{k}={v}' for k, v in sorted(counts.items()))})"
            for what, counts in (("filtered", self.filtered), ("failed", self.failures))
            if counts
        ]
        plural = "s" if self.start_requests > 1 else ""
        return f"{self.start_requests} start request{plural} " + (" and ".join(ends) or "produced no page")

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["responses"] = {str(k): v for k, v in sorted(self.responses.items())}
        return data


_TOTALS = ("requests", "start_requests", "pages", "retries", "redirected", "items", "callback_errors", "bytes")


class StatsCollector:
    """Mutable counters owned by one crawl; also logs each recorded outcome."""

    def __init__(self) -> None:
        self.requests = 0
        self.start_requests = 0
        self.responses: Counter[int] = Counter()
        self.pages = 0
        self.retries = 0
        self.redirected = 0
        self.failures: Counter[str] = Counter()
        self.filtered_by: Counter[str] = Counter()
        self.items = 0
        self.items_dropped: Counter[str] = Counter()
        self.callback_errors = 0
        self.robots_txt: Counter[str] = Counter()
        self.proxies_rested: Counter[str] = Counter()
        self.bytes = 0
        self.queued = 0
        self._start_warnings = 0
        self._earlier_elapsed = 0.0  # seconds crawled by earlier runs of a resumed crawl
        self.started: float | None = None
        self.finished: float | None = None
        self.close_reason: str | None = None
        #: Set by the frontier: per-domain state for snapshots.
        self.domain_stats: Callable[[], dict[str, DomainStats]] = dict
        self._log = get_logger()

    def start(self) -> None:
        self.started = time.monotonic()

    def totals(self) -> dict[str, Any]:
        """The counters as plain data, cheaply (a resumable crawl saves them at each checkpoint);
        ``restore`` takes them back, as it takes a ``CrawlStats.as_dict()``."""
        data: dict[str, Any] = {name: getattr(self, name) for name in _TOTALS}
        data["responses"] = {str(k): v for k, v in self.responses.items()}
        data["failures"] = dict(self.failures)
        data["filtered"] = dict(self.filtered_by)
        data["items_dropped"] = dict(self.items_dropped)
        data["robots_txt"] = dict(self.robots_txt)
        data["proxies_rested"] = dict(self.proxies_rested)
        data["elapsed_s"] = self._elapsed()
        return data

    def restore(self, saved: dict[str, Any]) -> None:
        """Carry the totals of earlier runs of a resumed crawl (``totals()`` or ``CrawlStats.as_dict()``)."""
        for name in _TOTALS:
            setattr(self, name, int(saved.get(name, 0)))
        self.responses = Counter({int(status): n for status, n in saved.get("responses", {}).items()})
        self.failures = Counter(saved.get("failures", {}))
        self.filtered_by = Counter(saved.get("filtered", {}))
        self.items_dropped = Counter(saved.get("items_dropped", {}))
        self.robots_txt = Counter(saved.get("robots_txt", {}))
        self.proxies_rested = Counter(saved.get("proxies_rested", {}))
        self._earlier_elapsed = float(saved.get("elapsed_s", 0.0))

    def proxy_rested(self, proxy: str) -> None:
        self.proxies_rested[proxy] += 1

    def finish(self, reason: str) -> None:
        self.finished = time.monotonic()
        self.close_reason = reason

    # -- a worker of a shared crawl: its own counts keep only what the crawl kept of its work

    def taken_back(self, pages: int, items: int) -> None:
        """Pages other workers redo (this worker's leases were lost, or its frontier failed)
        and their items, cut from its outputs."""
        self.pages -= pages
        self.items -= items

    def items_over_limit(self, count: int) -> None:
        """Items past the whole crawl's max_items, cut from the outputs after all."""
        self.items -= count
        self.items_dropped["max_items"] += count

    def queued_elsewhere(self, count: int) -> None:
        """Requests this worker queued that the shared seen-set already had."""
        self.count_filtered("duplicate", count)
        self.queued -= count

    def count_filtered(self, reason: str, count: int = 1) -> None:
        """Requests or links filtered, counted without a log event each.

        For links a page yields (the engine logs one summary per page at DEBUG) and for what
        is still queued when a crawl closes (``max_pages``, ``stopped``...: by design, and
        possibly millions).
        """
        self.filtered_by[reason] += count

    def filtered(self, request: Request, reason: str, *, detail: str | None = None, by_caller: bool = False) -> None:
        """One request filtered: counted, and logged when it is worth an event of its own.

        A start request that is filtered may leave the crawl with nothing to do, so it is a
        WARNING (the first few; the rest at DEBUG, for a seed list full of duplicates). A
        link that a page yields, filtered on its way in (``by_caller``), is only counted: the
        engine logs one summary per page, as one event per link drowned DEBUG logs. Anything
        else filtered (a redirect hop, a middleware's IgnoreRequest, a link that waited for
        its robots.txt) is one DEBUG event.
        """
        self.filtered_by[reason] += 1
        if _is_start(request):
            self._start_request_event("start_request_filtered", url=request.url, reason=reason, detail=detail)
        elif (request.redirects or not by_caller) and debug_enabled():
            self._log.debug("filtered", url=request.url, reason=reason, detail=detail)

    def unstorable(self, request: Request, error: str) -> None:
        """A request the crawl's state file cannot keep (a lambda callback, a datetime in meta):
        an error in the spider, named with the request, filtered as ``unstorable``."""
        self.filtered_by["unstorable"] += 1
        self.callback_errors += 1
        self._log.error("unstorable_request", url=request.url, reason=error)

    def failed(self, request: Request, reason: str, *, error: str | None = None) -> None:
        self.failures[reason] += 1
        fields = {
            "url": request.url,
            "domain": request.domain,
            "reason": reason,
            "attempt": request.attempt,
            "error": error,
        }
        if not reason.startswith("http_4"):  # network trouble, 5xx after retries, a cap hit
            self._log.warning("request_failed", **fields)
        elif _is_start(request):  # the crawl may have nothing else to do
            self._start_request_event("request_failed", **fields)
        elif debug_enabled():  # a 4xx of a followed link: an ordinary dead link
            self._log.debug("request_failed", **fields)

    def _start_request_event(self, event: str, **fields: Any) -> None:
        """A WARNING for each of the first start requests to go wrong, then DEBUG events."""
        self._start_warnings += 1
        if self._start_warnings <= START_WARNINGS:
            if self._start_warnings == START_WARNINGS:
                fields["note"] = f"the first {START_WARNINGS} start requests to go wrong are warnings, more are DEBUG"
            self._log.warning(event, **fields)
        elif debug_enabled():
            self._log.debug(event, **fields)

    def elapsed(self) -> float:
        """Seconds crawled so far (earlier runs of a resumed crawl included)."""
        return self._elapsed()

    def _elapsed(self) -> float:
        elapsed = self._earlier_elapsed
        if self.started is not None:
            elapsed += (self.finished or time.monotonic()) - self.started
        return elapsed

    def snapshot(self, *, domains: bool = True) -> CrawlStats:
        elapsed = self._elapsed()
        return CrawlStats(
            requests=self.requests,
            start_requests=self.start_requests,
            responses=dict(self.responses),
            pages=self.pages,
            retries=self.retries,
            redirected=self.redirected,
            failures=dict(self.failures),
            filtered=dict(self.filtered_by),
            items=self.items,
            items_dropped=dict(self.items_dropped),
            callback_errors=self.callback_errors,
            robots_txt=dict(self.robots_txt),
            proxies_rested=dict(self.proxies_rested),
            bytes=self.bytes,
            queued=self.queued,
            elapsed_s=round(elapsed, 3),
            pages_per_second=round(self.pages / elapsed, 2) if elapsed > 0 else 0.0,
            domains=self.domain_stats() if domains else {},
            close_reason=self.close_reason,
        )


def _is_start(request: Request) -> bool:
    """A start request or one of its retries and redirect hops (a followed link is depth 1+)."""
    return request.depth == 0 and not request.internal
