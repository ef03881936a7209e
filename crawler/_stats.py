"""Crawl statistics: counters kept while crawling and a frozen snapshot to read them."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ._log import debug_enabled, get_logger
from ._request import Request

__all__ = ["CrawlStats", "DomainStats", "StatsCollector"]


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
                " (its start() raised: see the log)" if self.callback_errors else " (start_urls is empty)"
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
        self.bytes = 0
        self.queued = 0
        self.started: float | None = None
        self.finished: float | None = None
        self.close_reason: str | None = None
        #: Set by the frontier: per-domain state for snapshots.
        self.domain_stats: Callable[[], dict[str, DomainStats]] = dict
        self._log = get_logger()

    def start(self) -> None:
        self.started = time.monotonic()

    def finish(self, reason: str) -> None:
        self.finished = time.monotonic()
        self.close_reason = reason

    def count_filtered(self, reason: str, count: int = 1) -> None:
        """Requests or links filtered, counted without a log event each.

        For links a page yields (the engine logs one summary per page at DEBUG) and for what
        is still queued when a crawl closes (``max_pages``, ``stopped``...: by design, and
        possibly millions).
        """
        self.filtered_by[reason] += count

    def filtered(self, request: Request, reason: str, *, detail: str | None = None) -> None:
        """One request filtered: counted, and logged when it is worth an event of its own.

        A start request that is filtered may leave the crawl with nothing to do, so it is a
        WARNING; a redirect hop is one DEBUG event. A link yielded by a page is only counted:
        the engine logs one summary per page (one event per link drowned DEBUG logs).
        """
        self.filtered_by[reason] += 1
        if request.depth == 0 and not request.internal:
            self._log.warning("start_request_filtered", url=request.url, reason=reason, detail=detail)
        elif request.redirects and debug_enabled():
            self._log.debug("filtered", url=request.url, reason=reason, detail=detail)

    def failed(self, request: Request, reason: str, *, error: str | None = None) -> None:
        self.failures[reason] += 1
        # A 4xx is an ordinary answer (a dead link): counted, logged at DEBUG. Anything else
        # (network trouble, 5xx after retries, a cap hit), or any failure of a start request
        # (the crawl may have nothing else to do), is worth a warning.
        if reason.startswith("http_4") and (request.depth or request.internal):
            if not debug_enabled():
                return
            log = self._log.debug
        else:
            log = self._log.warning
        log(
            "request_failed",
            url=request.url,
            domain=request.domain,
            reason=reason,
            attempt=request.attempt,
            error=error,
        )

    def snapshot(self) -> CrawlStats:
        elapsed = 0.0 if self.started is None else (self.finished or time.monotonic()) - self.started
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
            bytes=self.bytes,
            queued=self.queued,
            elapsed_s=round(elapsed, 3),
            pages_per_second=round(self.pages / elapsed, 2) if elapsed > 0 else 0.0,
            domains=self.domain_stats(),
            close_reason=self.close_reason,
        )
