"""Frontier memory: bytes per queued URL and per seen URL.

Fills a real ``Frontier`` (the one a crawl uses) with 1,000,000 queued URLs of about 70
characters over 100 domains (``--domains``; a broad crawl: 100,000), as a crawl's follow_all
would (plain links with a callback),
and separately a seen-set of 5,000,000 fingerprints; reports peak RSS and bytes per URL
(RSS growth divided by the count). Each measurement runs in its own child process so one
does not inflate the other.

    python bench/memory.py [--queued 1000000] [--domains 100] [--seen 5000000] [--json FILE]

Targets: <= 250 bytes per queued URL over 100 domains (issue 5), <= 300 over 100,000
(issue 12), <= 32 bytes per seen URL.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_queued(count: int, out: multiprocessing.Queue, domains: int = 100) -> None:
    import asyncio

    from crawler import Request, Settings
    from crawler._frontier import Frontier
    from crawler._stats import StatsCollector

    async def fill() -> dict[str, float]:
        settings = Settings(obey_robots=False, rate_limit=None)
        frontier = Frontier(settings, StatsCollector())

        def parse(response: object) -> None:
            return None

        urls = (
            f"http://shop-{i % domains:06d}.example.com/catalog/item/{i:09d}.html?ref=listing" for i in range(count)
        )
        before = _rss_kib()
        started = time.perf_counter()
        for url in urls:
            request = Request(url, callback=parse)
            request.depth = 3
            frontier.add(request)
        elapsed = time.perf_counter() - started
        after = _rss_kib()
        stats = frontier.domain_stats()
        queued = sum(d.queued for d in stats.values())
        return {
            "queued": queued,
            "domains": len(stats),
            "url_chars": len(f"http://shop-000000.example.com/catalog/item/{0:09d}.html?ref=listing"),
            "rss_growth_mib": round((after - before) / 1024, 1),
            "bytes_per_queued_url": round((after - before) * 1024 / queued, 1),
            "add_us_per_url": round(elapsed / count * 1e6, 2),
        }

    out.put(asyncio.run(fill()))


def measure_seen(count: int, out: multiprocessing.Queue) -> None:
    import random

    from crawler._seen import FingerprintSet

    rng = random.Random(7)
    seen = FingerprintSet()
    before = _rss_kib()
    started = time.perf_counter()
    for _ in range(count):
        seen.add(rng.getrandbits(64))
    elapsed = time.perf_counter() - started
    after = _rss_kib()
    out.put(
        {
            "seen": len(seen),
            "rss_growth_mib": round((after - before) / 1024, 1),
            "bytes_per_seen_url": round((after - before) * 1024 / count, 1),
            "table_bytes_per_seen_url": round(seen.nbytes() / count, 1),
            "add_us_per_fingerprint": round(elapsed / count * 1e6, 2),
            "stdlib_set_bytes_per_int_for_comparison": _stdlib_set_cost(),
        }
    )


def measure_state(count: int, out: multiprocessing.Queue) -> None:
    """A state file (--state) holding ``count`` queued URLs and as many seen fingerprints:
    bytes on disk per URL, from SQLite's dbstat."""
    import sqlite3
    import tempfile
    from pathlib import Path

    from crawler import Request, Settings, Spider
    from crawler._codec import RequestCodec
    from crawler._pacer import MemoryPacer
    from crawler._sqlite_store import SqliteStore
    from crawler._url import fingerprint

    class Shop(Spider):
        async def parse(self, response: object) -> None:
            return None

    spider = Shop()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "state.db"
        store = SqliteStore(path, MemoryPacer(Settings()), RequestCodec(spider))
        store.open()
        started = time.perf_counter()
        for i in range(count):
            url = f"http://shop-{i % 100:03d}.example.com/catalog/item/{i:09d}.html?ref=listing"
            request = Request(url, callback=spider.parse)
            request.depth = 3
            store.see(fingerprint(url))
            store.accept(request)
            if i % 10_000 == 9_999:
                store.checkpoint()
        store.aclose_sync()
        elapsed = time.perf_counter() - started
        db = sqlite3.connect(path)
        sizes = dict(db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
        db.close()
        out.put(
            {
                "urls": count,
                "file_mib": round(path.stat().st_size / 2**20, 1),
                "bytes_per_queued_url": round(sizes.get("queue", 0) / count, 1),
                "bytes_per_seen_url": round(sizes.get("seen", 0) / count, 1),
                "us_per_url": round(elapsed / count * 1e6, 2),
            }
        )


def _stdlib_set_cost(n: int = 1_000_000) -> float:
    import random

    rng = random.Random(1)
    before = _rss_kib()
    values = {rng.getrandbits(64) for _ in range(n)}
    after = _rss_kib()
    del values
    return round((after - before) * 1024 / n, 1)


def _run(target, count: int, *extra: object) -> dict:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.Process(target=target, args=(count, queue, *extra))
    proc.start()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            result = queue.get(timeout=1)
        except Exception:  # queue.Empty: still working, or dead
            if not proc.is_alive():
                raise SystemExit(f"bench: the {target.__name__} child died (exit code {proc.exitcode})") from None
            continue
        proc.join()
        return result
    proc.kill()
    raise SystemExit(f"bench: the {target.__name__} child took more than 600 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=1_000_000)
    parser.add_argument("--domains", type=int, default=100, help="domains the queued URLs spread over")
    parser.add_argument("--seen", type=int, default=5_000_000)
    parser.add_argument("--state", type=int, default=1_000_000, help="URLs in the state-file measurement (0: skip)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    results = {"queued": _run(measure_queued, args.queued, args.domains), "seen": _run(measure_seen, args.seen)}
    if args.state:
        results["state"] = _run(measure_state, args.state)
    q, s = results["queued"], results["seen"]
    print(f"queued: {q['queued']:,} URLs ({q['url_chars']} chars) over {q['domains']} domains: "
          f"{q['rss_growth_mib']} MiB, {q['bytes_per_queued_url']} B/URL "
          f"(target <= {250 if args.domains <= 100 else 300}), "
          f"{q['add_us_per_url']} us per add")
    print(f"seen:   {s['seen']:,} fingerprints: {s['rss_growth_mib']} MiB, {s['bytes_per_seen_url']} B/URL "
          f"(tables {s['table_bytes_per_seen_url']} B/URL; target <= 32; a stdlib set costs "
          f"{s['stdlib_set_bytes_per_int_for_comparison']} B/int), {s['add_us_per_fingerprint']} us per add")
    if "state" in results:
        d = results["state"]
        print(f"state:  {d['urls']:,} queued + seen URLs in a --state file: {d['file_mib']} MiB on disk, "
              f"{d['bytes_per_queued_url']} B per queued URL, {d['bytes_per_seen_url']} B per seen URL, "
              f"{d['us_per_url']} us per URL")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    ok = q["bytes_per_queued_url"] <= (250 if args.domains <= 100 else 300) and s["bytes_per_seen_url"] <= 32
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
