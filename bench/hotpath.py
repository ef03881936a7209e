"""Hot-path micro-benchmark: microseconds per page for each stage after the fetch.

Runs the stages a crawl runs on every page, on bench-site pages generated in memory
(bench/site.py, same shape as the crawl benchmark), without a network, so a regression
shows up by stage:

  parse      Response.text + the lxml tree (what the first response.css() pays)
  extract    the spider's selectors: title and price (response.css(...).get())
  links      hrefs of every <a> (what follow_all reads)
  resolve    join + canonicalise every href
  dedupe     fingerprint + seen-set check of every link
  enqueue    Request + frontier.add for the links that are new
  follow_all the whole of response.follow_all(css="a") in a crawl (links+resolve+dedupe+Requests)
  follow_all_seen  the same pages once more, every link already seen: the steady state of a
             crawl, where the link screen's memory of dead hrefs answers most links
  spider_follow_all  a whole callback in the follow_all idiom (``for request in
             response.follow_all(css="a"): yield request``) run by the engine's callback
             runner into a frontier: the links, the generator, the engine's routing, the adds
  spider_follow  the same in the other idiom users write (Scrapy's tutorial form):
             ``for href in response.css("a::attr(href)").getall(): yield response.follow(href)``
             (each also ``_seen``: the same pages again, every link already seen)
  handout_paused_100, handout_paused_100k  one ``Frontier.next()`` (us per hand-out, not per
             page) with 10 busy domains beside 100 / 100,000 paused ones (``bench/handout.py``)

    python bench/hotpath.py [--pages 3000] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import random
import sys
import time
from pathlib import Path

import structlog

from crawler import Request, Response, Settings
from crawler._callbacks import CallbackRunner
from crawler._frontier import Frontier
from crawler._stats import StatsCollector
from crawler._url import BadURL, canonicalize, fingerprint, join

BASE = "http://127.0.0.1:8080"


def _bench_site_module():
    """bench/site.py, loaded by path: the name ``site`` is the stdlib's, already imported."""
    spec = importlib.util.spec_from_file_location("bench_site", Path(__file__).resolve().parent / "site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pages(n: int, total: int = 20_000) -> list[tuple[str, bytes]]:
    page_html = _bench_site_module().page_html
    rng = random.Random(7)
    out = []
    for i in range(n):
        html, _ = page_html(i, total, rng, 6000)
        out.append((f"{BASE}/p/{i}.html", html.encode()))
    return out


def responses(corpus: list[tuple[str, bytes]]) -> list[Response]:
    headers = {"Content-Type": "text/html"}
    return [Response(url, 200, headers, body, Request(url)) for url, body in corpus]


def timed(stage: str, results: dict[str, float], n: int):
    class _Timer:
        def __enter__(self) -> None:
            self.t = time.perf_counter()

        def __exit__(self, *exc: object) -> None:
            results[stage] = round((time.perf_counter() - self.t) / n * 1e6, 1)

    return _Timer()


async def run(n: int) -> dict[str, float]:
    corpus = pages(n)
    results: dict[str, float] = {}
    rs = responses(corpus)
    with timed("parse", results, n):
        for r in rs:
            r.selector  # noqa: B018 - builds the tree
    with timed("extract", results, n):
        for r in rs:
            r.css("h1.title::text").get()
            r.css("span.price::text").get()
    with timed("links", results, n):
        hrefs = [r._hrefs("a", None) for r in rs]
    with timed("resolve", results, n):
        resolved = []
        for r, hs in zip(rs, hrefs, strict=True):
            urls = []
            for h in hs:
                with contextlib.suppress(BadURL):
                    urls.append(canonicalize(join(r.url, h))[0])
            resolved.append(urls)
    frontier = Frontier(Settings(obey_robots=False, rate_limit=None), StatsCollector(), allowed_domains=["127.0.0.1"])
    with timed("dedupe", results, n):
        fresh = [[u for u in set(urls) if fingerprint(u) not in frontier._store.seen] for urls in resolved]
    with timed("enqueue", results, n):
        for urls in fresh:
            for u in urls:
                request = Request(u)
                request.depth = 1  # a followed link, as the engine marks it (depth 0 is a start request)
                frontier.add(request)
    frontier = Frontier(Settings(obey_robots=False, rate_limit=None), StatsCollector(), allowed_domains=["127.0.0.1"])
    rs = responses(corpus)
    for r in rs:
        r.selector  # noqa: B018 - parse is measured above
        r._screen = frontier.links
    with timed("follow_all", results, n):
        for r in rs:
            for request in r.follow_all(css="a"):
                request.depth = 1
                frontier.add(request)
    with timed("follow_all_seen", results, n):  # the same pages again: every link already seen
        for r in rs:
            r.follow_all(css="a")
    for stage, parse in (
        ("spider_follow_all", _parse_follow_all),
        ("spider_follow", _parse_follow),
        ("spider_urljoin", _parse_urljoin),
    ):
        frontier = Frontier(
            Settings(obey_robots=False, rate_limit=None), StatsCollector(), allowed_domains=["127.0.0.1"]
        )
        runner = CallbackRunner(frontier._stats, None, structlog.get_logger("hotpath"), lambda f=frontier: f)
        rs = responses(corpus)
        for r in rs:
            r.selector  # noqa: B018 - parse is measured above
            r._screen = frontier.links
        with timed(stage, results, n):
            for r in rs:
                await runner.run(parse, r, r.request)
        with timed(stage + "_seen", results, n):  # again: every link already seen
            for r in rs:
                await runner.run(parse, r, r.request)
    import handout  # bench/handout.py, beside this file

    results["handout_paused_100"] = round(await handout.per_handout(100, 5000), 2)
    results["handout_paused_100k"] = round(await handout.per_handout(100_000, 5000), 2)
    results["links_per_page"] = round(sum(len(h) for h in hrefs) / n, 1)
    results["new_links_per_page"] = round(sum(len(f) for f in fresh) / n, 1)
    return results


async def _parse_follow_all(response: Response):
    for request in response.follow_all(css="a"):
        yield request


async def _parse_follow(response: Response):
    for href in response.css("a::attr(href)").getall():
        yield response.follow(href)


async def _parse_urljoin(response: Response):
    # Scrapy spiders written before follow(): a Request per link, its URL from urljoin()
    for href in response.css("a::attr(href)").getall():
        yield Request(response.urljoin(href), callback=_parse_urljoin)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    results = asyncio.run(run(args.pages))
    for stage, value in results.items():
        unit = "" if stage.endswith("per_page") else " us/hand-out" if stage.startswith("handout") else " us/page"
        print(f"{stage:20s} {value:8.1f}{unit}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
