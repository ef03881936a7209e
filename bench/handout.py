"""Hand-out cost with many blocked domains: microseconds per ``Frontier.next()``.

A broad crawl has thousands of domains that cannot send right now: paused by Retry-After,
under a Crawl-delay, at their concurrency on a slow server. A frontier that scans its domains
on every hand-out pays for each of them again and again. This puts 10 busy, unlimited domains
beside N paused ones (one queued request each, paused for an hour) and times hand-outs of the
busy domains' requests, in process, no network.

    python bench/handout.py [--paused 0 100 1000 10000 100000] [--handouts 20000] [--json FILE]
    python bench/handout.py --redis redis://127.0.0.1:6379/0 [--paused ...]

With ``--redis`` (a running Redis; a fresh crawl id per measurement, cleared after), the same
question for the shared frontier, where the claim script (``lua/sync.lua``) picks the ready
domains: the busy domains' requests are claimed through ``RedisStore.lease`` one at a time,
each acknowledged, and Redis' own time per hand-out comes from ``INFO commandstats``.
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


async def per_handout_redis(paused: int, handouts: int, url: str) -> tuple[float, float]:
    """(wall us, Redis us) per hand-out with the shared frontier."""
    import uuid

    import redis.asyncio as aioredis

    from crawler import Spider
    from crawler._shared import SharedCrawl

    class Probe(Spider):
        name = "handout"

        async def parse(self, response: object) -> None:
            return None

    loop = asyncio.get_running_loop()
    settings = Settings(
        frontier=url, crawl_id=f"handout-{uuid.uuid4().hex[:8]}", obey_robots=False, rate_limit=None,
        domain_concurrency=10**6, concurrency=10**6,
    )
    shared = SharedCrawl(Probe(), settings, (), loop.time)
    await shared.join()
    store, pacer = shared.store, shared.pacer
    client = aioredis.from_url(url)
    try:
        for i in range(paused):
            request = Request(f"http://paused-{i}.example/")
            request.domain = f"paused-{i}.example"
            store.push(request, loop.time())
            pacer.pause(request.domain, loop.time() + 3600)
        for i in range(handouts):
            request = Request(f"http://busy-{i % BUSY}.example/{i}")
            request.domain = f"busy-{i % BUSY}.example"
            store.push(request, loop.time())
        store.start_done()
        await store.sync(0)  # the adds, the pauses
        # Untimed: the first claims file every paused domain under its pause's end (a bounded
        # number per script call, so it may take a few calls), as a crawl does once per pause.
        first = None
        while first is None:
            first, _ = await store.lease(loop.time(), fresh=True)
        store.done(first, loop.time())
        store.finish(first, page=True)
        await client.config_resetstat()
        started = time.perf_counter()
        for _ in range(handouts - 1):
            request, _ = await store.lease(loop.time(), fresh=True)
            assert request is not None and request.domain.startswith("busy-"), request
            store.done(request, loop.time())
            store.finish(request, page=True)
        wall = (time.perf_counter() - started) / (handouts - 1) * 1e6
        stats = await client.info("commandstats")
        redis_us = stats.get("cmdstat_evalsha", {}).get("usec", 0) / (handouts - 1)
    finally:
        await shared.close(repair=False)
        await shared.store.call("release", 1)
        keys = [key async for key in client.scan_iter(f"crawler:{{{settings.crawl_id}}}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    return wall, redis_us


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paused", type=int, nargs="+", default=[0, 100, 1_000, 10_000, 100_000])
    ap.add_argument("--handouts", type=int, default=20_000)
    ap.add_argument("--json", help="also write the figures as JSON to this file")
    ap.add_argument("--redis", metavar="URL", help="measure the shared frontier on this Redis instead")
    args = ap.parse_args()
    results: dict[int, object] = {}
    for paused in args.paused:
        if args.redis:
            wall, redis_us = await per_handout_redis(paused, args.handouts, args.redis)
            results[paused] = {"wall_us": round(wall, 2), "redis_us": round(redis_us, 2)}
            print(f"{BUSY} busy + {paused:>7,} paused domains: {wall:8.2f} us per hand-out, "
                  f"{redis_us:6.2f} us of it in Redis")
            continue
        us = await per_handout(paused, args.handouts)
        results[paused] = round(us, 2)
        print(f"{BUSY} busy + {paused:>7,} paused domains: {us:8.2f} us per hand-out")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"busy": BUSY, "us_per_handout": results}, out, indent=2)


if __name__ == "__main__":
    asyncio.run(main())
