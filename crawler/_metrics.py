"""Prometheus metrics for long crawls: ``--metrics-port PORT`` (``pip install "crawler[metrics]"``).

An HTTP endpoint (``/metrics``, on 127.0.0.1 unless told otherwise) served by
prometheus-client from its own thread, with the crawl's own registry (nothing in the
process-wide default one). Nothing is counted per request: each scrape takes one snapshot
of the crawl's counters, and takes it *on the event loop* (the counters are the loop's, and
a thread reading them while the loop updates them could see a dict change size).

Counters: pages, items, requests, retries, bytes; failures, filtered requests and dropped
items by reason; responses by status. Gauges: queued, in flight, pages/s over the last
10 s, domains known. Per domain (rate now and configured, queued, in flight, pause left,
429/503s): the busiest ``top`` domains only, so the label's cardinality stays bounded
however broad the crawl.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from ._progress import CrawlProgress
from ._stats import CrawlStats, DomainStats

__all__ = ["MetricsServer"]


class MetricsServer:
    """Serves a crawl's metrics until :meth:`aclose`."""

    def __init__(
        self,
        progress: Callable[[], CrawlProgress],
        statistics: Callable[..., CrawlStats],
        busiest: Callable[[int], tuple[int, dict[str, DomainStats]]],
        *,
        port: int,
        host: str = "127.0.0.1",
        top: int = 20,
    ) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise RuntimeError("--metrics-port needs prometheus-client: pip install 'crawler[metrics]'") from None
        self._progress = progress
        self._statistics = statistics
        self._busiest = busiest
        self._top = top
        self._loop = asyncio.get_running_loop()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)  # a collector is anything with collect()
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.port: int = self._server.server_port

    async def aclose(self) -> None:
        """Stop serving and wait until the server thread has ended; safe twice. (In a thread:
        a scrape being answered waits for the loop, which must stay free meanwhile.)"""
        server, self._server = self._server, None  # type: ignore[assignment]
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()
            await asyncio.to_thread(self._thread.join, 5)

    async def _snapshot(self) -> tuple[CrawlProgress, CrawlStats, int, dict[str, DomainStats]]:
        # statistics() without its per-domain part (a pass building every domain's state);
        # the busiest domains are picked by the frontier instead.
        count, busiest = self._busiest(self._top)
        return self._progress(), self._statistics(domains=False), count, busiest

    def collect(self) -> Iterator[Any]:
        """Called by prometheus-client in its server thread, once per scrape."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        future = asyncio.run_coroutine_threadsafe(self._snapshot(), self._loop)
        try:
            progress, stats, domain_count, busiest = future.result(timeout=10)
        except TimeoutError:
            future.cancel()  # not left queued on the loop
            raise

        def counter(name: str, text: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"crawler_{name}", text, value=value)

        yield counter("pages", "Responses handed to a spider callback", stats.pages)
        yield counter("items", "Items produced", stats.items)
        yield counter("requests", "Downloads attempted (retries and redirect hops included)", stats.requests)
        yield counter("retries", "Extra attempts", stats.retries)
        yield counter("response_bytes", "Decompressed body bytes received", stats.bytes)
        for name, text, counts, label in (
            ("failures", "Requests that ended failed, by reason", stats.failures, "reason"),
            ("filtered", "Requests and links filtered, by reason", stats.filtered, "reason"),
            ("items_dropped", "Items dropped by a pipeline, by reason", stats.items_dropped, "reason"),
            ("responses", "Responses, by HTTP status", {str(k): v for k, v in stats.responses.items()}, "status"),
        ):
            family = CounterMetricFamily(f"crawler_{name}", text, labels=[label])
            for key, value in counts.items():
                family.add_metric([key], value)
            yield family
        yield GaugeMetricFamily("crawler_queued", "Requests waiting in the frontier", value=progress.queued)
        yield GaugeMetricFamily("crawler_in_flight", "Requests being processed", value=progress.in_flight)
        rate = progress.pages_per_s_now
        yield GaugeMetricFamily("crawler_pages_per_second", "Pages per second, over the last 10 s or more", value=rate)
        yield GaugeMetricFamily("crawler_domains", "Domains known to the frontier", value=domain_count)
        per_domain: dict[str, tuple[str, Callable[[Any], float | None]]] = {
            "rate": ("Requests/s allowed now (autothrottle may have cut it); -1: unlimited", lambda d: d.rate),
            "configured_rate": ("Requests/s configured; -1: unlimited", lambda d: d.configured_rate),
            "queued": ("Requests queued for the domain", lambda d: d.queued),
            "in_flight": ("Requests in flight to the domain", lambda d: d.in_flight),
            "paused_seconds": ("Seconds left of a Retry-After pause", lambda d: d.paused_for_s),
            "throttled": ("429/503 answers received", lambda d: d.throttled),
        }
        for name, (text, read) in per_domain.items():
            gauge = GaugeMetricFamily(
                f"crawler_domain_{name}", f"{text} (the {self._top} busiest domains)", labels=["domain"]
            )
            for domain, state in busiest.items():
                reading = read(state)
                gauge.add_metric([domain], -1.0 if reading is None else float(reading))
            yield gauge
