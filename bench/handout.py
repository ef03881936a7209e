"""Hand-out cost with many blocked domains: microseconds per ``Frontier.next()``.

A broad crawl has thousands of domains that cannot send right now: paused by Retry-After,
under a Crawl-delay, at their concurrency on a slow server. A frontier that scans its domains
on every hand-out pays for each of them again and again. This puts 10 busy, unlimited domains
beside N paused ones (one queued request each, paused for an hour) and times hand-outs of the
busy domains' requests, in process, no network.

    python bench/handout.py [--paused 0 100 1000 10000 100000] [--handouts 20000] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from crawler import Request, Settings
from crawler._frontier import Frontier
from crawler._stats import StatsCollector

BUSY = 10


async def per_handout(paused: int, handouts: int) -> float:
    settings = Settings(obey_robots=False, rate_limit=None, domain_concurrency=10**9, concurrency=10**9)
    frontier = Frontier(settings, StatsCollector())
    for i in range(paused):
        request = Request(f"http://paused-{i}.example/")
        frontier.add(request)
        frontier.pause(request, 3600)
    for i in range(handouts):
        frontier.add(Request(f"http://busy-{i % BUSY}.example/{i}"))
    frontier.hold()  # producers "running": next() must not end the crawl when only paused domains are left
    # Untimed: the first hand-out meets every paused domain once (queued before its pause, so
    # still filed under "ready now") and files it under its pause's end, as a crawl does once
    # per pause. The rest is the steady state this measures.
    await frontier.next()
    started = time.perf_counter()
    for _ in range(handouts - 1):
        request = await frontier.next()
        assert request is not None and request.domain.startswith("busy-")
    return (time.perf_counter() - started) / (handouts - 1) * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paused", type=int, nargs="+", default=[0, 100, 1_000, 10_000, 100_000])
    ap.add_argument("--handouts", type=int, default=20_000)
    ap.add_argument("--json", help="also write the figures as JSON to this file")
    args = ap.parse_args()
    results = {}
    for paused in args.paused:
        us = await per_handout(paused, args.handouts)
        results[paused] = round(us, 2)
        print(f"{BUSY} busy + {paused:>7,} paused domains: {us:8.2f} us per hand-out")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"busy": BUSY, "us_per_handout": results}, out, indent=2)


if __name__ == "__main__":
    asyncio.run(main())
