"""Politeness as the server sees it: per-domain rates, Retry-After pauses, autothrottle.

What it measures, from timestamps taken by the *server* when each request arrives:

1. ``two_domains``: domain A (127.0.0.1) answers its first request with ``429`` and
   ``Retry-After: 3``, then ``200`` to everything; domain B (127.0.0.2, same port) has many
   pages. Both are crawled at the same time with a per-domain ``rate_limit`` (default 5/s) and a
   small ``concurrency`` (default 2). Reported: B's rate during A's pause window and over the
   whole crawl against the configured rate (a paused domain must not hold a worker: DESIGN.md
   principle 1); how many requests reached A before its Retry-After deadline (must be 0:
   principle 2, the pause covers the whole domain); A's rate after the pause and its
   ``stats.domains`` entry (autothrottle halved its rate on the 429 and raises it back slowly),
   plus a timeline of A's current rate sampled during the crawl.
2. ``steady_state``: N pages (default 80) on one domain at ``rate_limit`` 10/s: the observed
   rate between the 10th and the last request against the configured one, and the gaps
   between consecutive requests (the limiter spaces them evenly, no burst).

Why: unit tests check the order of events with loose bounds; this shows the actual figures
(how close to the configured rate the crawler runs, how exact a pause is) for the issue notes.

Both servers are one aiohttp app on loopback in its own thread and event loop (so the
crawler's loop does not delay its clock readings); ``obey_robots`` is off so the server sees
only the crawl's own requests. Each scenario is bounded by a 60 s timeout.

Run from the repository root::

    /tmp/venv/bin/python bench/politeness.py [--rate 5] [--concurrency 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import statistics
import sys
import threading
import time

from aiohttp import web

from crawler import Crawler, Request, Response, Spider

HOST_A = "127.0.0.1"
HOST_B = "127.0.0.2"
SCENARIO_TIMEOUT_S = 60.0


@dataclasses.dataclass
class Hit:
    at: float  # time.monotonic() when the request reached the handler
    host: str
    path: str
    status: int = 200


class Server:
    """One aiohttp app on 127.0.0.1 and 127.0.0.2 (same port), in a thread with its own loop.

    ``throttle_first[host] = seconds`` makes that host answer its first request with 429 and
    ``Retry-After: seconds``. Every request is recorded in ``hits``.
    """

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.hits: list[Hit] = []
        self.throttle_first: dict[str, int] = {}
        self.port = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-server", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10) or not self.port:
            raise RuntimeError("the server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def reset(self) -> None:
        with self._lock:
            self.hits.clear()
            self.throttle_first.clear()

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}{path}"

    def hits_for(self, host: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.host == host]

    async def _handle(self, request: web.Request) -> web.Response:
        at = time.monotonic()
        host = request.host.rsplit(":", 1)[0]
        with self._lock:
            seen = any(h.host == host for h in self.hits)
            retry_after = self.throttle_first.get(host) if not seen else None
            self.hits.append(Hit(at, host, request.path, 429 if retry_after is not None else 200))
        if self.latency:
            await asyncio.sleep(self.latency)
        if retry_after is not None:
            return web.Response(status=429, text="slow down", headers={"Retry-After": str(retry_after)})
        body = f"<!DOCTYPE html><html><head><title>{host}{request.path}</title></head><body>ok</body></html>"
        return web.Response(text=body, content_type="text/html")

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.TCPSite(runner, HOST_A, 0).start()
            self.port = runner.addresses[0][1]
            await web.TCPSite(runner, HOST_B, self.port).start()
        finally:
            self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()


class PageSpider(Spider):
    """Fetches the given URLs (start requests, in order); one item per page."""

    name = "politeness_bench"

    def __init__(self, urls: list[str]) -> None:
        super().__init__()
        self.urls = urls

    async def start(self):
        for url in self.urls:
            yield Request(url, dont_filter=True)

    async def parse(self, response: Response):
        yield {"url": response.url}


# -- figures -----------------------------------------------------------------------------------


def rate_between(times: list[float]) -> float | None:
    """Requests per second over a run of arrival times: (n - 1) intervals over the span."""
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


def gaps_ms(times: list[float]) -> dict[str, float] | None:
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(times)]
    if not gaps:
        return None
    return {
        "min": round(min(gaps), 1),
        "median": round(statistics.median(gaps), 1),
        "max": round(max(gaps), 1),
    }


def r3(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def domain_entry(stats, host: str) -> dict | None:
    entry = stats.domains.get(host)
    return None if entry is None else dataclasses.asdict(entry)


async def run_crawl(crawler: Crawler, sample: str | None = None) -> tuple[object, list[tuple[float, float | None]]]:
    """Run the crawl (bounded); sample ``sample``'s current rate every 0.25 s."""
    timeline: list[tuple[float, float | None]] = []
    task = asyncio.create_task(crawler.run())
    try:
        async with asyncio.timeout(SCENARIO_TIMEOUT_S):
            while not task.done():
                if sample is not None:
                    entry = crawler.statistics().domains.get(sample)
                    if entry is not None:
                        timeline.append((time.monotonic(), entry.rate))
                await asyncio.wait({task}, timeout=0.25)
            stats = task.result()
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # the crawl closes its session and tasks
        raise
    return stats, timeline


async def two_domains(server: Server, args: argparse.Namespace) -> dict:
    server.reset()
    server.throttle_first[HOST_A] = args.retry_after
    # A's first page first, so A is throttled at once; then the rest of both, interleaved.
    a_urls = [server.url(HOST_A, f"/a/{i}") for i in range(args.a_pages)]
    b_urls = [server.url(HOST_B, f"/b/{i}") for i in range(args.b_pages)]
    urls = [a_urls[0]]
    for i in range(max(len(a_urls), len(b_urls))):
        urls += [u[i] for u in (b_urls, a_urls[1:]) if i < len(u)]
    settings = {
        "rate_limit": args.rate,
        "concurrency": args.concurrency,
        "obey_robots": False,
        "timeout": 10,
    }
    crawler = Crawler(PageSpider(urls), settings)
    stats, timeline = await run_crawl(crawler, sample=HOST_A)

    a_hits, b_hits = server.hits_for(HOST_A), server.hits_for(HOST_B)
    throttled = [h for h in a_hits if h.status == 429]
    t429 = throttled[0].at if throttled else a_hits[0].at
    deadline = t429 + args.retry_after
    a_early = [h for h in a_hits if t429 < h.at < deadline]
    a_after = [h.at for h in a_hits if h.at >= deadline]
    b_times = [h.at for h in b_hits]
    b_in_pause = [t for t in b_times if t429 <= t < deadline]
    t0 = min(h.at for h in a_hits + b_hits)
    return {
        "scenario": "two_domains",
        "configured_rate": args.rate,
        "concurrency": args.concurrency,
        "domain_concurrency": crawler.settings.domain_concurrency,
        "latency_s": args.latency,
        "retry_after_s": args.retry_after,
        "a_requests": len(a_hits),
        "b_requests": len(b_hits),
        "a_429_at_s": round(t429 - t0, 3),
        "a_requests_before_deadline": len(a_early),
        "a_first_after_deadline_s": r3(a_after[0] - deadline) if a_after else None,
        "a_rate_after_pause": r3(rate_between(a_after)),
        "a_gaps_after_pause_ms": gaps_ms(a_after),
        "b_requests_in_pause": len(b_in_pause),
        "b_rate_in_pause": r3(len(b_in_pause) / args.retry_after),
        "b_rate_in_pause_span": r3(rate_between(b_in_pause)),
        "b_rate_overall": r3(rate_between(b_times)),
        "b_gaps_ms": gaps_ms(b_times),
        "stats_domains": {host: domain_entry(stats, host) for host in (HOST_A, HOST_B)},
        "a_rate_timeline": [(round(t - t0, 2), rate) for t, rate in timeline],
        "pages": stats.pages,
        "retries": stats.retries,
        "failures": stats.failures,
        "elapsed_s": stats.elapsed_s,
        "close_reason": stats.close_reason,
    }


async def steady_state(server: Server, args: argparse.Namespace) -> dict:
    server.reset()
    urls = [server.url(HOST_A, f"/s/{i}") for i in range(args.steady_pages)]
    settings = {"rate_limit": args.steady_rate, "obey_robots": False, "timeout": 10}
    crawler = Crawler(PageSpider(urls), settings)
    stats, _ = await run_crawl(crawler)
    times = [h.at for h in server.hits_for(HOST_A)]
    window = times[9:]  # from the 10th request to the last
    return {
        "scenario": "steady_state",
        "configured_rate": args.steady_rate,
        "concurrency": crawler.settings.concurrency,
        "domain_concurrency": crawler.settings.domain_concurrency,
        "latency_s": args.latency,
        "requests": len(times),
        "rate_10th_to_last": r3(rate_between(window)),
        "rate_overall": r3(rate_between(times)),
        "gaps_ms": gaps_ms(times),
        "first_gap_ms": round((times[1] - times[0]) * 1000, 1) if len(times) > 1 else None,
        "stats_domains": {HOST_A: domain_entry(stats, HOST_A)},
        "pages": stats.pages,
        "failures": stats.failures,
        "elapsed_s": stats.elapsed_s,
        "close_reason": stats.close_reason,
    }


# -- report ----------------------------------------------------------------------------------


def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.1f}"
    return str(value)


def print_table(title: str, rows: list[tuple[str, object, object]]) -> None:
    print(title)
    width = max(len(r[0]) for r in rows)
    print(f"  {'figure':<{width}}  {'observed':>10}  expected")
    for name, observed, expected in rows:
        print(f"  {name:<{width}}  {fmt(observed):>10}  {fmt(expected) if expected is not None else ''}")


def report(two: dict, steady: dict) -> list[str]:
    rate = two["configured_rate"]
    a_dom, b_dom = two["stats_domains"][HOST_A] or {}, two["stats_domains"][HOST_B] or {}
    print_table(
        f"two_domains: A={HOST_A} (429 + Retry-After: {two['retry_after_s']} on its first request), "
        f"B={HOST_B}; rate_limit={rate}/s, concurrency={two['concurrency']}, "
        f"domain_concurrency={two['domain_concurrency']}, server latency={two['latency_s']}s",
        [
            ("requests to A / to B", f"{two['a_requests']} / {two['b_requests']}", None),
            ("A requests before its Retry-After deadline", two["a_requests_before_deadline"], 0),
            ("A's first request after the deadline, s late", two["a_first_after_deadline_s"], ">= 0"),
            (
                f"B requests in A's pause window ({two['retry_after_s']} s)",
                two["b_requests_in_pause"],
                f"~{rate * two['retry_after_s']:g}",
            ),
            ("B rate in A's pause window, req/s (count/window)", two["b_rate_in_pause"], rate),
            ("B rate in A's pause window, req/s (first..last)", two["b_rate_in_pause_span"], rate),
            ("B rate over the whole crawl, req/s", two["b_rate_overall"], rate),
            ("B gaps min/median/max, ms", _gaps(two["b_gaps_ms"]), f"{1000 / rate:g}"),
            ("A rate after the pause, req/s", two["a_rate_after_pause"], f"< {rate} (autothrottle)"),
            ("A gaps after the pause min/median/max, ms", _gaps(two["a_gaps_after_pause_ms"]), None),
            (
                "stats.domains[A] rate / configured / throttled",
                f"{fmt(a_dom.get('rate'))} / {fmt(a_dom.get('configured_rate'))} / {a_dom.get('throttled')}",
                None,
            ),
            (
                "stats.domains[B] rate / configured / throttled",
                f"{fmt(b_dom.get('rate'))} / {fmt(b_dom.get('configured_rate'))} / {b_dom.get('throttled')}",
                None,
            ),
            ("pages / retries / failures", f"{two['pages']} / {two['retries']} / {two['failures'] or {}}", None),
            ("crawl time, s", two["elapsed_s"], None),
        ],
    )
    changes = []
    last = object()
    for at, current in two["a_rate_timeline"]:
        if current != last:
            changes.append(f"{at:g}s:{fmt(current)}")
            last = current
    print(f"  A's current rate (stats.domains) over time: {'  '.join(changes)}")
    print()
    srate = steady["configured_rate"]
    print_table(
        f"steady_state: {steady['requests']} pages on {HOST_A}, rate_limit={srate}/s, "
        f"domain_concurrency={steady['domain_concurrency']}, server latency={steady['latency_s']}s",
        [
            ("rate from the 10th to the last request, req/s", steady["rate_10th_to_last"], srate),
            ("rate over all requests, req/s", steady["rate_overall"], srate),
            ("gaps min/median/max, ms", _gaps(steady["gaps_ms"]), f"{1000 / srate:g}"),
            ("first gap, ms (no burst at start)", steady["first_gap_ms"], f"{1000 / srate:g}"),
            ("pages / failures", f"{steady['pages']} / {steady['failures'] or {}}", None),
            ("crawl time, s", steady["elapsed_s"], None),
        ],
    )
    problems = []
    if two["a_requests_before_deadline"]:
        problems.append(f"{two['a_requests_before_deadline']} request(s) reached A before its Retry-After deadline")
    for name, observed, configured in (
        ("B rate in A's pause", two["b_rate_in_pause_span"], rate),
        ("B rate overall", two["b_rate_overall"], rate),
        ("steady-state rate", steady["rate_10th_to_last"], srate),
    ):
        if observed is None or not 0.9 * configured <= observed <= 1.02 * configured:
            problems.append(f"{name} {fmt(observed)} req/s vs configured {configured}")
    return problems


def _gaps(gaps: dict[str, float] | None) -> str:
    return "-" if not gaps else f"{gaps['min']:g} / {gaps['median']:g} / {gaps['max']:g}"


async def amain(args: argparse.Namespace) -> dict:
    server = Server(args.latency)
    server.start()
    try:
        two = await two_domains(server, args)
        steady = await steady_state(server, args)
    finally:
        server.stop()
    return {"two_domains": two, "steady_state": steady}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5.0, help="rate_limit per domain in two_domains (default 5)")
    parser.add_argument("--concurrency", type=int, default=2, help="concurrency in two_domains (default 2)")
    parser.add_argument("--retry-after", type=int, default=3, help="A's Retry-After, seconds (default 3)")
    parser.add_argument("--a-pages", type=int, default=20, help="pages on domain A (default 20)")
    parser.add_argument("--b-pages", type=int, default=60, help="pages on domain B (default 60)")
    parser.add_argument("--steady-rate", type=float, default=10.0, help="rate_limit in steady_state (default 10)")
    parser.add_argument("--steady-pages", type=int, default=80, help="pages in steady_state (default 80)")
    parser.add_argument("--latency", type=float, default=0.02, help="server think time per request, s (default 0.02)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args()
    logging.getLogger("crawler").setLevel(logging.ERROR)  # the 429 is expected; keep the table readable

    results = asyncio.run(amain(args))
    problems = report(results["two_domains"], results["steady_state"])
    print()
    print("OK" if not problems else "SURPRISES:\n  " + "\n  ".join(problems))
    results["problems"] = problems
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"benchmark": "politeness", "python": sys.version.split()[0], **results}, out, indent=2)
        print(f"wrote {args.json}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
