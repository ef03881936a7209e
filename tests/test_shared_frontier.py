"""The shared frontier (``frontier="redis://..."``): several workers, one crawl, on a real
redis-server. Workers here are Crawlers in one event loop (each with its own connection and
worker id, exactly as separate processes would be); tests/test_shared_workers.py runs them as
real subprocesses and kills one."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
import subprocess
import zlib
from collections import Counter

import pytest
from aiohttp import web
from crawler_plugins.exporters import JsonArrayExporter, JsonLinesExporter
from support import Collect, RedisServer, links

from crawler import (
    BaseMiddleware,
    Crawler,
    DropItem,
    FrontierUnavailable,
    Request,
    Settings,
    Spider,
    SpiderLoadError,
    fingerprint,
)
from crawler._shared import SharedCrawl

pytestmark = pytest.mark.usefixtures("steady_loop")  # gaps on the server clock

FAST = {"rate_limit": None, "domain_concurrency": 100, "obey_robots": False, "retries": 0}


class Site(Spider):
    """Follows every link of a start page's site, yields one item per page."""

    name = "site"

    def __init__(self, start: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.start_urls = [start]

    async def parse(self, response):
        yield {"url": response.url}
        for request in response.follow_all(css="a"):
            yield request


def web_of(server, count: int, *, delay: float = 0.0) -> list[str]:
    """``count`` pages, each linking to five others (so each is found several times)."""
    rng = random.Random(count)
    paths = [f"/p{i}" for i in range(count)]
    server.route("/", links(*paths[:5]))
    for i, path in enumerate(paths):
        body = links(*(paths[(i + k) % count] for k in (1, 2, 3)), paths[rng.randrange(count)], "/")

        async def page(request: web.Request, body: str = body) -> web.Response:
            if delay:
                await asyncio.sleep(delay)
            return web.Response(text=body, content_type="text/html")

        server.route(path, page)
    return ["/", *paths]


async def crawl_together(server, frontier: str, workers: int, **settings) -> list[tuple[Crawler, Collect]]:
    runs = []
    for _ in range(workers):
        collect = Collect()
        crawler = Crawler(Site(server.url("/")), {**FAST, "frontier": frontier, **settings}, pipelines=[collect])
        runs.append((crawler, collect))
    await asyncio.wait_for(asyncio.gather(*(crawler.run() for crawler, _ in runs)), timeout=60)
    return runs


async def test_workers_share_one_crawl_and_fetch_each_page_once(server, frontier):
    paths = web_of(server, 120, delay=0.005)
    runs = await crawl_together(server, frontier, 3, concurrency=8)

    items = Counter(item["url"] for _, collect in runs for item in collect.items)
    assert items == Counter({server.url(p): 1 for p in paths}), "every page's item exactly once, across workers"
    fetched = Counter(hit.path for hit in server.hits)
    assert fetched == Counter({p: 1 for p in paths}), "every page fetched once by the whole crawl"
    stats = [crawler.statistics() for crawler, _ in runs]
    assert all(s.close_reason == "finished" for s in stats)
    assert sum(1 for s in stats if s.pages) >= 2, "the work was shared"


class Begun(Site):
    """Site, begun by ``start()`` alone (no ``start_urls``): only one worker makes that request."""

    def __init__(self, start: str, **kwargs) -> None:
        super().__init__(start, **kwargs)
        self.start_urls = []
        self.start_at = start

    async def start(self):
        yield Request(self.start_at)


async def test_a_local_crawl_begun_by_start_is_local_for_every_worker(server, frontier):
    # block_private_addresses=auto is off when the crawl's start requests are local: decided
    # once for the whole crawl, though one worker alone runs start().
    paths = web_of(server, 60, delay=0.005)
    runs = [(Crawler(Begun(server.url("/")), {**FAST, "frontier": frontier, "concurrency": 4},
                     pipelines=[collect]), collect) for collect in (Collect(), Collect())]
    await asyncio.wait_for(asyncio.gather(*(crawler.run() for crawler, _ in runs)), timeout=60)
    stats = [crawler.statistics() for crawler, _ in runs]
    assert [s.failures for s in stats] == [{}, {}], "no worker refuses the local site"
    items = Counter(item["url"] for _, collect in runs for item in collect.items)
    assert items == Counter({server.url(p): 1 for p in paths})
    assert all(s.pages for s in stats), "both workers crawled"


async def test_politeness_holds_across_workers(server, frontier):
    paths = web_of(server, 14, delay=0.05)
    await crawl_together(
        server, frontier, 3, concurrency=4, rate_limit=8, domain_concurrency=1, obey_robots=False
    )
    hits = sorted(hit.at for hit in server.hits)
    assert len(hits) == len(paths)
    gaps = [b - a for a, b in itertools.pairwise(hits)]
    # 8 requests/s for the whole crawl: 125 ms apart at the send. On the server clock, which
    # runs in the crawlers' loop, 35 ms of slack; workers pacing alone would be ~50 ms apart
    # (one in flight at a time, 50 ms each).
    assert min(gaps) >= 0.09, gaps
    assert server.max_in_flight["127.0.0.1"] == 1, "domain_concurrency holds across workers"


class LateToLeave(BaseMiddleware):
    """Holds every odd page 0.15 s after its claim, as a busy event loop or a garbage
    collection would."""

    async def process_request(self, request: Request) -> None:
        if request.url.rstrip("/")[-1] in "13579":
            await asyncio.sleep(0.15)


async def test_a_request_that_leaves_late_does_not_crowd_the_next(server, frontier):
    paths = web_of(server, 12)
    runs = []
    for _ in range(2):
        settings = {**FAST, "frontier": frontier, "rate_limit": 4, "domain_concurrency": 1}
        runs.append(Crawler(Site(server.url("/")), settings, middlewares=[LateToLeave()]))
    await asyncio.wait_for(asyncio.gather(*(crawler.run() for crawler in runs)), timeout=60)

    hits = sorted(hit.at for hit in server.hits)
    assert len(hits) == len(paths)
    gaps = [b - a for a, b in itertools.pairwise(hits)]
    # 4 requests/s: 250 ms apart, counted from when a late request actually left (claimed on
    # time, the next page arrived 100 ms after a late one). The bound leaves the server clock,
    # in the crawlers' loop, 60 ms of jitter.
    assert min(gaps) >= 0.175, gaps


async def test_the_gap_after_a_late_request_is_the_throttled_one(server, frontier):
    paths = web_of(server, 8)
    answered_429: list[bool] = []

    async def throttled_once(request: web.Request) -> web.Response:
        if not answered_429:
            answered_429.append(True)
            return web.Response(status=429)  # autothrottle halves the host's rate: 4/s -> 2/s
        return web.Response(text=links(*paths[1:6]), content_type="text/html")

    server.route("/", throttled_once)
    runs = []
    for _ in range(2):
        settings = {**FAST, "frontier": frontier, "rate_limit": 4, "domain_concurrency": 1, "retries": 2}
        runs.append(Crawler(Site(server.url("/")), settings, middlewares=[LateToLeave()]))
    await asyncio.wait_for(asyncio.gather(*(crawler.run() for crawler in runs)), timeout=60)

    hits = sorted(hit.at for hit in server.hits)
    assert len(hits) == len(paths) + 1  # the 429 and its retry
    gaps = [b - a for a, b in itertools.pairwise(hits)]
    # 500 ms apart at 2/s (fewer than 10 answers after the 429: the rate does not recover).
    # A late page's next one, kept only at the configured 4/s, came 350 ms after it.
    assert min(gaps[1:]) >= 0.45, gaps


async def test_a_retry_after_seen_by_one_worker_pauses_the_host_for_all(server, frontier):
    paths = web_of(server, 40, delay=0.1)  # 2 s of work at 2 in flight: the pause comes early in it
    answered_429 = []

    async def busy(request: web.Request) -> web.Response:
        if not answered_429:
            answered_429.append(True)
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(text=links("/p1", "/p2"), content_type="text/html")

    server.route("/p0", busy)
    await crawl_together(server, frontier, 2, concurrency=4, retries=2, domain_concurrency=2)
    first_429 = next(hit.at for hit in server.hits if hit.path == "/p0")
    after = [hit.at - first_429 for hit in server.hits if hit.at > first_429]
    assert after, "the crawl went on"
    # Requests already on their way when the 429 came may land just after it; none is sent later
    # until the second is over.
    late = [t for t in after if 0.15 < t < 0.95]
    assert not late, f"requests sent during the pause: {late}"
    assert Counter(hit.path for hit in server.hits)["/p0"] == 2
    assert len({hit.path for hit in server.hits}) == len(paths)


async def test_max_pages_is_one_budget_for_the_whole_crawl(server, frontier):
    web_of(server, 80)
    runs = await crawl_together(server, frontier, 2, concurrency=4, max_pages=25)
    assert sum(crawler.statistics().pages for crawler, _ in runs) == 25
    assert {crawler.statistics().close_reason for crawler, _ in runs} == {"max_pages"}


class _Slow(Spider):
    name = "probe"

    async def parse(self, response):
        return None


async def _worker(frontier: str, exporters=(), **settings) -> SharedCrawl:
    loop = asyncio.get_running_loop()
    settings = {"frontier": frontier, "rate_limit": None, **settings}
    shared = SharedCrawl(_Slow(), Settings(**settings), exporters, loop.time)
    await shared.join()
    return shared


def _queued(store, url: str, now: float) -> Request:
    request = Request(url)
    request.domain = url.split("/")[2]
    store.push(request, now)
    return request


async def test_a_killed_workers_lease_expires_and_its_stale_ack_is_refused(frontier, tmp_path):
    loop = asyncio.get_running_loop()
    exporter = JsonLinesExporter(tmp_path / "a.jsonl")
    await exporter.open(_Slow())
    first = await _worker(frontier, [exporter], lease_timeout=0.5)
    first.outputs_opened()
    second = await _worker(frontier, lease_timeout=0.5)
    try:
        _queued(first.store, "http://h/1", loop.time())
        first.store.start_done()
        mine, _ = await first.store.lease(loop.time(), fresh=True)
        assert mine is not None
        assert (await second.store.lease(loop.time(), fresh=True))[0] is None, "leased to the first worker"

        await asyncio.sleep(0.7)  # the first worker stalls past its lease (no heartbeat here)
        second.store._last_sync = -1e9
        theirs, _ = await second.store.lease(loop.time(), fresh=True)
        assert theirs is not None and theirs.url == "http://h/1", "requeued when the lease expired"

        # The stalled worker comes back and writes the page's item, then acknowledges: refused,
        # and its output is cut back to what was committed.
        await exporter.process_item({"url": "http://h/1"}, _Slow())
        redone: list[tuple[int, int]] = []
        first.store.on_redone = lambda pages, items: redone.append((pages, items))
        first.store.done(mine, loop.time())
        first.store.finish(mine, page=True, items=1)
        await first.store.sync(0)
        assert (tmp_path / "a.jsonl").read_text() == ""
        assert redone == [(1, 1)], "the worker's counts lose the page others redo and the item its output lost"

        second.store.done(theirs, loop.time())
        second.store.finish(theirs, page=True, items=1)
        await second.store.sync(0)
        status = await second.status()
        assert status["totals"] == {"pages": 1, "items": 1, "requeued": 1}
        assert status["queued"] == status["leased"] == 0
    finally:
        await exporter.close(_Slow())
        await first.close(repair=False)
        await second.close(repair=False)


async def test_a_worker_whose_crawl_is_gone_from_redis_stops_and_writes_nothing_back(frontier, redis_server):
    # Redis restarted without persistence (or the crawl cleared) under a running worker: the
    # worker must not carry on in a crawl that no longer knows it (it hung, waiting for start
    # requests nobody would add), nor recreate keys of the old crawl beside a new one.
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier)
    _queued(worker.store, "http://h/1", loop.time())
    worker.store.start_done()
    mine, _ = await worker.store.lease(loop.time(), fresh=True)
    assert mine is not None
    redis_server.command("FLUSHALL")
    newcomer = await _worker(frontier)  # a new crawl of the same name begins meanwhile
    try:
        worker.store.done(mine, loop.time())
        worker.store.finish(mine, page=True, items=1)
        with pytest.raises(FrontierUnavailable, match="state is gone"):
            await worker.store.sync(0)
        await worker.store.call("renew", 60_000, str(mine.chain))
        await worker.store.call("release", 1, str(mine.chain))
        # Nor does it come back as the taker-over of the new crawl's start requests.
        with pytest.raises(FrontierUnavailable, match="state is gone"):
            await worker.join(rejoin=True)
        state = await newcomer.status()
        assert state["workers"] == [newcomer.worker], "the old worker's heartbeat did not rejoin it"
        assert state["totals"] == {} and state["queued"] == state["leased"] == 0, state
    finally:
        await worker.close(repair=False, frontier_failed=True)
        await newcomer.store.aclose()
        await newcomer.store.aclose()  # safe twice: it has left, and sends nothing more
        await newcomer.close(repair=False)


async def test_a_worker_whose_frontier_failed_keeps_only_its_committed_items(frontier, tmp_path):
    # Its uncommitted pages go back to the crawl when their leases expire: the items it wrote
    # for them would then be in two outputs.
    loop = asyncio.get_running_loop()
    exporter = JsonLinesExporter(tmp_path / "a.jsonl")
    await exporter.open(_Slow())
    worker = await _worker(frontier, [exporter])
    worker._joined = True
    worker.outputs_opened()
    try:
        for n in (1, 2):
            _queued(worker.store, f"http://h/{n}", loop.time())
        worker.store.start_done()
        first, _ = await worker.store.lease(loop.time(), fresh=True)
        second, _ = await worker.store.lease(loop.time(), fresh=True)
        await exporter.process_item({"url": first.url}, _Slow())
        worker.store.done(first, loop.time())
        worker.store.finish(first, page=True, items=1)
        await worker.store.sync(0)  # committed
        await exporter.process_item({"url": second.url}, _Slow())
        worker.store.done(second, loop.time())
        worker.store.finish(second, page=True, items=1)  # not committed: Redis fails now
        await worker.close(frontier_failed=True)
        assert [json.loads(line)["url"] for line in (tmp_path / "a.jsonl").read_text().splitlines()] == [first.url]
    finally:
        await exporter.close(_Slow())
        worker.release_outputs()


def _renewing() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if not t.done() and "_renew_forever" in repr(t.get_coro())]


async def test_an_embedded_crawl_whose_crawl_is_wiped_fails_and_leaves_no_heartbeat(server, frontier, redis_server):
    # In a long-lived host program, a heartbeat left running would rejoin the crawl and renew
    # its leases for ever once Redis answered again.
    web_of(server, 40, delay=0.3)
    crawler = Crawler(Site(server.url("/")), {**FAST, "frontier": frontier, "concurrency": 4, "lease_timeout": 3})
    task = asyncio.create_task(crawler.run())
    await asyncio.sleep(1.0)
    redis_server.command("FLUSHALL")
    with pytest.raises(BaseException) as raised:
        await asyncio.wait_for(task, 30)
    assert raised.group_contains(FrontierUnavailable, match="state is gone") if isinstance(
        raised.value, BaseExceptionGroup) else isinstance(raised.value, FrontierUnavailable)
    assert _renewing() == []
    assert redis_server.command("KEYS", "*") == []


class _DropSome(JsonLinesExporter):
    """An exporter that drops one item in ten (DropItem) and fails on another."""

    async def process_item(self, item, spider):
        number = int(item["url"].rpartition("/p")[2] or 0) if "/p" in item["url"] else 0
        if number % 10 == 3:
            raise DropItem("unlucky")
        if number % 10 == 7:
            raise RuntimeError("a full disk, say")
        return await super().process_item(item, spider)


async def test_max_items_stays_exact_when_an_exporter_drops_items(server, frontier, redis_server, tmp_path):
    web_of(server, 120)
    outputs = [tmp_path / f"{n}.jsonl" for n in range(3)]
    crawlers = [
        Crawler(Site(server.url("/")), {**FAST, "frontier": frontier, "concurrency": 4, "max_items": 30},
                exporters=[_DropSome(out)])
        for out in outputs
    ]
    await asyncio.wait_for(asyncio.gather(*(crawler.run() for crawler in crawlers)), timeout=60)
    written = sum(len(out.read_text().splitlines()) for out in outputs if out.exists())
    assert written == 30
    assert int(redis_server.command("HGET", "crawler:{site}:totals", "items")) == 30
    assert sum(crawler.statistics().items for crawler in crawlers) == 30, "each worker counts what it wrote"
    dropped = Counter()
    for crawler in crawlers:
        dropped.update(crawler.statistics().items_dropped)
    assert dropped["unlucky"] and dropped["exporter_error"]


async def test_the_seen_set_stays_exact_and_compact_as_it_grows(frontier, redis_server):
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier)
    rng = random.Random(5)
    urls = [f"http://h{rng.randrange(50)}/{rng.getrandbits(40)}" for _ in range(12_000)]
    try:
        for start in range(0, len(urls), 1000):
            for url in urls[start : start + 1000]:
                _queued(worker.store, url, loop.time())
            await worker.store.sync(0)
        assert (await worker.status())["queued"] == len(set(urls))
        # A second worker (an empty cache of its own) offers them all again: all duplicates.
        other = await _worker(frontier)
        found: list[int] = []
        other.store.on_duplicates = found.append
        for url in urls[:3000]:
            _queued(other.store, url, loop.time())
        await other.store.sync(0)
        assert sum(found) == 3000
        await other.close(repair=False)
        keys = [key for key in redis_server.command("KEYS", "crawler:{probe}:seen:*")]
        assert len(keys) > 16, "the seen-set split as it grew"
        assert {redis_server.command("OBJECT", "ENCODING", key) for key in keys} == {"intset"}
        size = sum(int(redis_server.command("MEMORY", "USAGE", key)) for key in keys)
        assert size / len(set(urls)) <= 16, f"{size / len(set(urls)):.1f} bytes per seen URL"
    finally:
        await worker.close(repair=False)


async def test_a_queue_entry_that_is_not_a_request_is_reported_never_run(server, frontier, redis_server, caplog):
    web_of(server, 5)
    # What scrapy-redis would have stored: a pickle. Nothing read back is unpickled or evaluated.
    redis_server.command("SET", "crawler:{site}:spider", "site")
    redis_server.command("SET", "crawler:{site}:format", "2")
    redis_server.command("HSET", "crawler:{site}:d:evil", "conc", "1", "crate", "0", "rate", "0", "ceil", "0",
                         "inflight", "0", "last", "0", "paused", "0", "floor", "0", "streak", "0", "step", "0",
                         "thr", "0", "gapavg", "0")
    redis_server.command("RPUSH", "crawler:{site}:q:evil", "cos\nsystem\n(S'touch /tmp/pwned'\ntR.")
    redis_server.command("HINCRBY", "crawler:{site}:n", "fresh", "1")
    redis_server.command("ZADD", "crawler:{site}:ready", "0", "evil")
    with caplog.at_level(logging.ERROR, logger="crawler"):
        runs = await crawl_together(server, frontier, 1)
    stats = runs[0][0].statistics()
    assert stats.failures["bad_stored_request"] == 1
    assert stats.pages == 6, "the crawl went on"
    assert "bad_stored_request" in caplog.text


async def test_a_crawl_of_another_spider_is_refused(server, frontier, redis_server):
    redis_server.command("SET", "crawler:{site}:spider", "someone-else")
    crawler = Crawler(Site(server.url("/")), {**FAST, "frontier": frontier})
    with pytest.raises(Exception, match="belongs to the spider 'someone-else'"):
        await crawler.run()


async def test_start_requests_are_taken_over_when_their_worker_leaves(server, frontier):
    paths = [f"/s{i}" for i in range(12)]
    server.route_pages(paths)

    class Seeds(Spider):
        name = "seeds"
        settings = {**FAST, "frontier": frontier}

        def __init__(self, pace: float, **kwargs) -> None:
            super().__init__(**kwargs)
            self.pace = pace

        async def start(self):
            for path in paths:
                await asyncio.sleep(self.pace)
                yield Request(server.url(path))

        async def parse(self, response):
            yield {"url": response.url}

    leaving, staying = Collect(), Collect()
    first = Crawler(Seeds(0.1), pipelines=[leaving])
    task = asyncio.create_task(first.run())
    await asyncio.sleep(0.45)  # a few start requests added, then the worker is stopped
    await first.aclose()
    await task
    second = Crawler(Seeds(0.0), pipelines=[staying])
    await asyncio.wait_for(second.run(), timeout=30)
    urls = Counter(item["url"] for item in [*leaving.items, *staying.items])
    assert urls == Counter({server.url(p): 1 for p in paths})


async def test_the_password_is_never_shown(server, caplog, tmp_path):
    redis = RedisServer("--requirepass", "s3cret-Pw", password="s3cret-Pw")
    redis.start()
    try:
        web_of(server, 5)
        with caplog.at_level(logging.DEBUG, logger="crawler"):
            crawler = Crawler(Site(server.url("/")), {**FAST, "frontier": redis.url})
            stats = await crawler.run()
        assert stats.pages == 6
        assert "s3cret-Pw" not in caplog.text
        assert "s3cret-Pw" not in json.dumps(stats.as_dict())

        wrong = redis.url.replace("s3cret-Pw", "wr0ng-Pw")
        with pytest.raises(Exception) as raised:
            await Crawler(Site(server.url("/")), {**FAST, "frontier": wrong}).run()
        text = "".join(map(str, getattr(raised.value, "exceptions", [raised.value])))
        assert "wr0ng-Pw" not in text and "s3cret-Pw" not in text
    finally:
        redis.stop()


async def test_an_unreachable_frontier_is_one_clear_error(server):
    with pytest.raises(FrontierUnavailable, match=r"redis://:\*\*\*@127.0.0.1:1/0 cannot be reached"):
        await Crawler(Site(server.url("/")), {**FAST, "frontier": "redis://:pw@127.0.0.1:1/0"}).run()


async def test_robots_txt_is_fetched_once_for_the_whole_crawl(server, frontier):
    paths = web_of(server, 40, delay=0.01)
    server.route("/robots.txt", "User-agent: *\nDisallow: /p7\n", content_type="text/plain")
    runs = await crawl_together(server, frontier, 3, concurrency=4, obey_robots=True)
    fetched = Counter(hit.path for hit in server.hits)
    assert fetched["/robots.txt"] == 1, "one robots.txt fetch for three workers"
    assert "/p7" not in fetched, "its rules apply in every worker"
    assert set(fetched) == {*paths, "/robots.txt"} - {"/p7"}
    assert sum(crawler.statistics().filtered.get("robots", 0) for crawler, _ in runs) >= 1


async def test_a_stopped_worker_hands_on_the_links_its_last_pages_found(server, frontier):
    server.route("/", links("/a"))
    server.route("/b", links())

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.Response(text=links("/b"), content_type="text/html")

    server.route("/a", slow)
    first = Crawler(Site(server.url("/")), {**FAST, "frontier": frontier})
    task = asyncio.create_task(first.run())
    while not server.hits_for("/a"):
        await asyncio.sleep(0.01)
    await first.stop()  # /a is in flight: it finishes, and its link to /b is the crawl's
    await task
    assert not server.hits_for("/b")
    second = Crawler(Site(server.url("/")), {**FAST, "frontier": frontier})
    await asyncio.wait_for(second.run(), timeout=30)
    assert [hit.path for hit in server.hits] == ["/", "/a", "/b"]


async def test_a_start_that_raises_still_lets_the_crawl_end(server, frontier):
    server.route_pages(["/s0", "/s1"])

    class Broken(Spider):
        name = "broken"
        settings = {**FAST, "frontier": frontier}

        async def start(self):
            yield Request(server.url("/s0"))
            yield Request(server.url("/s1"))
            raise RuntimeError("seed list unreadable")

        async def parse(self, response):
            yield {"url": response.url}

    stats = await asyncio.wait_for(Crawler(Broken()).run(), timeout=30)
    assert stats.pages == 2 and stats.close_reason == "finished"


async def test_a_repeated_sync_is_answered_not_applied_twice(frontier):
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier, max_pages=5)
    try:
        _queued(worker.store, "http://h/1", loop.time())
        worker.store.start_done()
        mine, _ = await worker.store.lease(loop.time(), fresh=True)
        worker.store.done(mine, loop.time())
        worker.store.finish(mine, page=True, items=2)
        ops = worker.store._outbox.take()
        worker.store._outbox.ops = list(ops)
        await worker.store.sync(0)
        # The reply was lost: the same batch (same sequence number) is sent again.
        worker.store._seq -= 1
        worker.store._outbox.ops = list(ops)
        await worker.store.sync(0)
        status = await worker.status()
        assert status["totals"] == {"pages": 1, "items": 2}
        assert status["pages_left"] == 4
        assert worker.store.remote["leased"] == 0
    finally:
        await worker.close(repair=False)


async def test_a_redirect_to_a_url_another_worker_has_is_a_duplicate(frontier):
    loop = asyncio.get_running_loop()
    first, second = await _worker(frontier), await _worker(frontier)
    try:
        _queued(first.store, "http://h/r", loop.time())
        first.store.start_done()
        bounce, _ = await first.store.lease(loop.time(), fresh=True)
        _queued(second.store, "http://h/p1", loop.time())
        await second.store.sync(0)
        first.store.done(bounce, loop.time())
        hop = bounce.replace(url="http://h/p1", redirects=1)
        found: list[int] = []
        first.store.on_duplicates = found.append
        # As Frontier.add adds it: seen (new to this worker), accepted, pushed.
        assert first.store.see(fingerprint(hop.url))
        first.store.accept(hop)
        first.store.push(hop, loop.time())
        await first.store.sync(0)
        assert found == [1], "the hop's target was already in the crawl"
        status = await first.status()
        assert status["queued"] == 1 and status["leased"] == 0
    finally:
        await first.close(repair=False)
        await second.close(repair=False)


async def test_a_worker_that_stalled_cannot_end_the_chain_it_claimed_again(frontier):
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier, lease_timeout=0.4)
    other = await _worker(frontier, lease_timeout=0.4)
    try:
        _queued(worker.store, "http://h/1", loop.time())
        worker.store.start_done()
        old, _ = await worker.store.lease(loop.time(), fresh=True)
        await asyncio.sleep(0.6)  # stalled past its lease (no heartbeat here)
        await other.status()  # another worker finds it presumed dead: its lease goes back
        worker.store._in_flight = 0
        new, _ = await worker.store.lease(loop.time(), fresh=True)
        assert new is not None and new.url == old.url and new.chain != old.chain, "a claim is a new lease"
        for request in (old, new):
            worker.store.done(request, loop.time())
            worker.store.finish(request, page=True, items=1)
        await worker.store.sync(0)  # the old claim's end is refused with its batch ...
        status = await worker.status()
        assert status["totals"].get("pages", 0) == 0 and status["queued"] == 1, "... and the page is done again"
    finally:
        await worker.close(repair=False)
        await other.close(repair=False)


async def test_a_worker_that_stalled_keeps_the_leases_no_one_took_back(frontier):
    # A lease lasts as long as its worker's heartbeat; past it, the requests are free to be
    # taken back, but until some call does, the worker that comes back still holds them
    # (nobody else is doing them), and its ends count.
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier, lease_timeout=0.4)
    try:
        _queued(worker.store, "http://h/1", loop.time())
        worker.store.start_done()
        mine, _ = await worker.store.lease(loop.time(), fresh=True)
        await asyncio.sleep(0.6)
        worker.store.done(mine, loop.time())
        worker.store.finish(mine, page=True, items=1)
        await worker.store.sync(0)
        status = await worker.status()
        assert status["totals"]["pages"] == 1 and status["queued"] == 0 and status["leased"] == 0
        assert "requeued" not in status["totals"]
    finally:
        await worker.close(repair=False)


async def test_a_dead_workers_leases_all_go_back_a_bounded_number_per_call(frontier):
    loop = asyncio.get_running_loop()
    dead = await _worker(frontier, lease_timeout=0.3, concurrency=300, domain_concurrency=300)
    for k in range(250):
        _queued(dead.store, f"http://h/{k}", loop.time())
    dead.store.start_done()
    await dead.store.sync(250)
    assert len(dead.store._claimed) == 250
    other = await _worker(frontier, lease_timeout=30, concurrency=300, domain_concurrency=300)
    try:
        assert (await other.status())["leased"] == 250
        await asyncio.sleep(0.5)  # killed: no heartbeat, no sync
        first = await other.status()  # (a call takes back at most 200: it keeps Redis from the others)
        assert (first["queued"], first["leased"]) == (200, 50)
        second = await other.status()
        assert (second["queued"], second["leased"]) == (250, 0)
        assert second["totals"]["requeued"] == 250
        taken = []
        while len(taken) < 250:
            other.store._in_flight = 0
            request, _ = await other.store.lease(loop.time(), fresh=True)
            assert request is not None
            taken.append(request.url)
        assert sorted(taken) == sorted(f"http://h/{k}" for k in range(250)), "each once, none lost"
    finally:
        await dead.close(repair=False)
        await other.close(repair=False)


async def test_a_worker_that_leaves_gives_back_every_request_it_holds(frontier):
    loop = asyncio.get_running_loop()
    leaving = await _worker(frontier, lease_timeout=30, domain_concurrency=8)
    other = await _worker(frontier, lease_timeout=30)
    try:
        for k in range(3):
            _queued(leaving.store, f"http://h/{k}", loop.time())
        leaving.store.start_done()
        await leaving.store.sync(3)
        assert (await other.status())["leased"] == 3
        await leaving.store.call("release", 1)  # leaving, naming none of them
        status = await other.status()
        assert (status["queued"], status["leased"]) == (3, 0)
        assert leaving.store.worker not in status["workers"]
    finally:
        leaving.store._left = True
        await leaving.close(repair=False)
        await other.close(repair=False)


async def test_a_worker_whose_outputs_fail_commits_nothing_more_and_hands_over_what_it_holds(frontier):
    # Its disk is full: the write before a sync fails. From then on nothing of this worker's
    # is committed (not even that its start requests are all added, which would leave the
    # rest of them to no one), and closing gives back everything it holds at once.
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier, domain_concurrency=4)  # a new crawl: it adds the start requests
    try:
        for k in range(3):
            _queued(worker.store, f"http://h/{k}", loop.time())
        await worker.store.sync(2)
        assert len(worker.store._claimed) == 2

        def disk_full() -> None:
            raise OSError(28, "No space left on device")

        worker.store.flush_outputs = disk_full
        with pytest.raises(OSError):
            await worker.store.sync(0)
        worker.store.start_done()  # (what the start feeder does when start() ends)
        with pytest.raises(OSError):
            await worker.store.sync(0)
        await worker.store.aclose()
        status = await worker.status()
        assert status["start"] != "done" and status["leased"] == 0 and status["queued"] == 3
        assert worker.store.worker not in status["workers"]
    finally:
        await worker.close(repair=False)
    other = SharedCrawl(_Slow(), Settings(frontier=frontier, rate_limit=None), (), loop.time)
    try:
        assert await other.join() == "takeover", "another worker adds the start requests"
    finally:
        await other.close(repair=False)


async def test_items_exported_after_an_output_failed_are_not_left_in_it(frontier, tmp_path):
    # The disk was full for one write, then had room again: what the worker exported after
    # the failure is not committed (its pages go back to the queue), so it must not reach
    # the file when the worker closes either.
    loop = asyncio.get_running_loop()
    out = tmp_path / "a.jsonl"
    exporter = JsonLinesExporter(out)
    await exporter.open(_Slow())
    settings = Settings(frontier=frontier, rate_limit=None, domain_concurrency=4)
    worker = SharedCrawl(_Slow(), settings, [exporter], loop.time)
    await worker.open()  # (joined, holding its output, as a crawl's worker)
    worker.outputs_opened()
    try:
        for k in range(3):
            _queued(worker.store, f"http://h/{k}", loop.time())
        worker.store.start_done()
        await worker.store.sync(3)
        first, second, third = list(worker.store._claimed)
        await exporter.process_item({"n": 1}, _Slow())
        worker.store.done(first, loop.time())
        worker.store.finish(first, page=True, items=1)
        await worker.store.sync(0)
        assert out.read_text() == '{"n": 1}\n', "committed"
        await exporter.process_item({"n": 2}, _Slow())
        worker.store.finish(second, page=True, items=1)
        flush = exporter.flush

        def full_once() -> None:
            exporter.flush = flush
            raise OSError(28, "No space left on device")

        exporter.flush = full_once
        with pytest.raises(OSError):
            await worker.store.sync(0)
        await exporter.process_item({"n": 3}, _Slow())  # (a page that ended as the crawl stopped)
        worker.store.finish(third, page=True, items=1)
    finally:
        await worker.close(repair=False)
        await exporter.close(_Slow())
    assert out.read_text() == '{"n": 1}\n', "only what was committed"
    other = await _worker(frontier)
    try:
        status = await other.status()
        assert status["totals"]["items"] == 1 and status["queued"] == 2 and status["leased"] == 0
    finally:
        await other.close(repair=False)


async def test_a_crawl_stored_by_another_version_is_not_joined(frontier, redis_server):
    loop = asyncio.get_running_loop()
    first = await _worker(frontier)
    await first.close(repair=False)
    redis_server.command("DEL", f"crawler:{{{first.crawl_id}}}:format")  # as a crawl of the first layout
    later = SharedCrawl(_Slow(), Settings(frontier=frontier, rate_limit=None), (), loop.time)
    try:
        with pytest.raises(SpiderLoadError, match="another version of the crawler"):
            await later.join()
    finally:
        await later.close(repair=False)


async def test_claims_wait_for_free_slots_so_pacing_holds_with_slow_callbacks(server, frontier):
    hosts = ["127.0.0.1", "127.0.0.2"]
    paths = [f"/p{i}" for i in range(12)]
    server.route("/", links(*paths))
    server.route_pages(paths)

    class Slow(Spider):
        name = "slowcb"
        settings = {**FAST, "frontier": frontier, "rate_limit": 2, "concurrency": 3, "domain_concurrency": 2}
        start_urls = [server.url("/", host=host) for host in hosts]

        async def parse(self, response):
            for request in response.follow_all(css="a"):
                yield request
            # Callbacks of different lengths hold their dispatch slots: a request claimed
            # while every slot is busy would wait, and leave too close to the next one.
            await asyncio.sleep(0.1 + zlib.crc32(response.url.encode()) % 7 * 0.125)

    await asyncio.wait_for(Crawler(Slow()).run(), timeout=60)
    for host in hosts:
        times = sorted(hit.at for hit in server.hits_for(host=host))
        assert len(times) == len(paths) + 1
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 0.45, f"{host}: requests {min(gaps):.2f} s apart at 2 per second"


async def test_robots_txt_answers_of_the_moment_are_not_shared(frontier, redis_server):
    from crawler._response import Response
    from crawler._shared import redis_client
    from crawler._shared_robots import SharedRobots

    client = redis_client(frontier)
    robots = SharedRobots(client, "crawler:{x}:", "w1")
    try:
        for status, kept in ((429, False), (408, False), (503, False), (404, True), (200, True)):
            request = Request("http://h/robots.txt", meta={"robots_origin": f"http://h{status}"})
            request.internal = True
            await robots.process_response(request, Response(request.url, status, {}, b"", request))
            assert (await client.hget("crawler:{x}:robots", f"http://h{status}") is not None) == kept, status
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:p@ss@h/0", "redis://user:***@h/0"),
        ("redis://h/0?password=s3cret&db=1", "redis://h/0?password=***&db=1"),
        ("rediss://user@h/0", "rediss://user@h/0"),
    ],
)
def test_a_password_in_the_frontier_url_is_redacted(url, shown):
    from crawler._settings import _redact

    assert _redact(url) == shown


async def test_a_tls_frontier_with_an_acl_user(server, tmp_path, caplog):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    # Only the ACL user "crawler" may connect (the default user is off), and only over TLS.
    redis = RedisServer("--user", "default", "off", "--user", "crawler", "on", ">Tls-s3cret", "~*", "&*", "+@all",
                        username="crawler", password="Tls-s3cret", tls=(cert, key))
    redis.start()
    try:
        paths = web_of(server, 10)
        assert redis.url.startswith("rediss://crawler:")
        with caplog.at_level(logging.DEBUG, logger="crawler"):
            runs = await crawl_together(server, redis.url, 2, concurrency=4)
        assert Counter(item["url"] for _, collect in runs for item in collect.items) == Counter(
            {server.url(p): 1 for p in paths}
        )
        assert "Tls-s3cret" not in caplog.text
    finally:
        redis.stop()


async def test_a_redirect_to_another_origin_waits_for_its_robots_txt_and_is_fetched(server, frontier):
    server.route("/", links("/r"))
    server.route("/target", links())

    async def bounce(request: web.Request) -> web.Response:
        raise web.HTTPFound(server.url("/target", host="127.0.0.2"))

    server.route("/r", bounce)
    server.route("/robots.txt", "User-agent: *\nDisallow: /private\n", content_type="text/plain")
    runs = await crawl_together(server, frontier, 1, obey_robots=True)
    assert server.hits_for("/target", host="127.0.0.2"), "the hop was fetched once its origin's rules came"
    assert runs[0][0].statistics().filtered.get("duplicate", 0) == 0


async def test_requests_robots_txt_ends_give_their_page_back_to_max_pages(server, frontier):
    paths = [f"/p{i}" for i in range(12)]
    server.route("/", links("/private/1", "/private/2", "/private/3", *paths))  # claimed first
    server.route_pages(paths)
    server.route("/robots.txt", "User-agent: *\nDisallow: /private\n", content_type="text/plain")
    runs = await crawl_together(server, frontier, 1, obey_robots=True, max_pages=7, concurrency=2)
    stats = runs[0][0].statistics()
    assert stats.filtered.get("robots") == 3
    assert stats.pages == 7, "the three disallowed requests did not use up pages"


async def test_a_queue_entry_that_is_not_utf8_is_reported_and_the_crawl_goes_on(server, frontier, redis_server):
    import redis as redis_py

    web_of(server, 5)
    raw = redis_py.Redis(port=redis_server.port)
    try:
        raw.set("crawler:{site}:spider", "site")
        raw.set("crawler:{site}:format", "2")
        raw.hset("crawler:{site}:d:bin", mapping={k: 0 for k in (
            "crate", "rate", "ceil", "inflight", "last", "paused", "floor", "streak", "step", "thr", "gapavg")})
        raw.hset("crawler:{site}:d:bin", "conc", 1)
        raw.rpush("crawler:{site}:q:bin", b'\xff\xfe{"url": "http://bin/\xc3"}')
        raw.hincrby("crawler:{site}:n", "fresh", 1)
        raw.zadd("crawler:{site}:ready", {"bin": 0})
    finally:
        raw.close()
    runs = await crawl_together(server, frontier, 1)
    stats = runs[0][0].statistics()
    assert stats.failures["bad_stored_request"] == 1
    assert stats.pages == 6


async def test_a_long_seed_list_reaches_redis_in_bounded_calls(frontier):
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier, domain_concurrency=100)
    try:
        for i in range(12_000):
            _queued(worker.store, f"http://h{i % 7}/{i}", loop.time())
        worker.store.start_done()
        await worker.store.sync(0)
        assert worker.store._seq >= 3, "more than one script call"
        assert (await worker.status())["queued"] == 12_000
        assert worker.store.remote["start"] == "done"
    finally:
        await worker.close(repair=False)


async def test_each_worker_sees_its_share_and_the_whole_crawl(server, frontier):
    paths = web_of(server, 60, delay=0.01)
    runs = await crawl_together(server, frontier, 2, concurrency=4, max_pages=40)
    progress = [crawler.progress() for crawler, _ in runs]
    assert all(p.whole_crawl is not None for p in progress)
    assert sum(p.pages for p in progress) == 40 < len(paths)
    # Each worker's last sync saw the whole crawl's totals (the last one to close, all of them).
    assert max(p.whole_crawl["pages"] for p in progress) == 40  # type: ignore[index]
    assert max(p.done for p in progress) == 1.0  # type: ignore[type-var]
    assert "crawl_pages" in progress[0].as_fields()


async def test_an_output_rewritten_as_it_opens_is_locked_again(frontier, tmp_path):
    # A torn JSON array is repaired through a new file when it opens: the lock taken on the
    # old one moves to it, so no other process can take the output meanwhile.
    from crawler._shared import _lock

    path = tmp_path / "items.json"
    path.write_text('[\n{"a": 1},\n{"a": 2', encoding="utf-8")  # torn by a crash
    exporter = JsonArrayExporter(path)
    worker = await _worker(frontier, [exporter])
    try:
        await worker._claim_outputs()
        before = path.stat().st_ino
        await exporter.open(_Slow())
        assert path.stat().st_ino != before, "repaired through a new file"
        worker.outputs_opened()
        assert _lock(path) is None, "still this worker's"
        await exporter.close(_Slow())
        worker.release_outputs()
        released = _lock(path)
        assert released is not None
        os.close(released)
    finally:
        await worker.close(repair=False)
        worker.release_outputs()


async def test_a_stalled_workers_file_is_cut_back_by_a_worker_closing_on_its_machine(frontier, tmp_path):
    # A worker stopped for good still holds its file's lock, but its heartbeat has expired and
    # its chains were redone: a worker closing on the same machine cuts the file back to what
    # it committed, as for a dead one (the stalled one would cut it to the same size).
    import socket

    from crawler._shared import _lock, crawl_prefix

    path = (tmp_path / "stalled.jsonl").resolve()
    path.write_text('{"a": 1}\n{"a": 2}\n', encoding="utf-8")  # the second item never committed
    held = _lock(path)
    assert held is not None
    worker = await _worker(frontier)
    try:
        outputs = crawl_prefix(worker.crawl_id) + "outputs"
        await worker._client.hset(outputs, f"{socket.gethostname()}:{path}", "stalled:1:abc\t9")
        await worker._repair_dead_outputs()
        assert path.read_text(encoding="utf-8") == '{"a": 1}\n'
    finally:
        os.close(held)
        await worker.close(repair=False)


async def test_many_robots_txt_lookups_at_once_share_a_bounded_set_of_connections(frontier, redis_server):
    # A broad crawl's worker asks Redis for the robots.txt answers of up to `concurrency`
    # origins at once. redis-py's pool refused calls past 100 connections (MaxConnectionsError:
    # robots_unavailable, the pages lost); they now wait for a connection of a bounded pool.
    from crawler._shared import crawl_prefix, redis_client
    from crawler._shared_robots import SharedRobots

    client = redis_client(frontier)
    before = int((await client.info("clients"))["connected_clients"])  # (other tests' clients too)
    prefix = crawl_prefix("many-origins")
    origins = [f"http://h{i}.test" for i in range(300)]
    await client.hset(prefix + "robots", mapping={o: json.dumps({"status": 404, "body": ""}) for o in origins})
    robots = SharedRobots(client, prefix, "w1")
    fetches = []
    for origin in origins:
        fetch = Request(origin + "/robots.txt", dont_filter=True, meta={"robots_origin": origin})
        fetch.internal = True
        fetches.append(fetch)
    answers = await asyncio.gather(*(robots.process_request(fetch) for fetch in fetches))
    assert [answer.status for answer in answers] == [404] * len(origins)
    connected = int((await client.info("clients"))["connected_clients"]) - before
    await client.aclose()
    assert connected <= 32, connected
