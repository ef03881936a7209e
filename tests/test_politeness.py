"""Politeness as the server sees it: Crawl-delay, autothrottle, per-domain settings, pauses that cost no worker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

import pytest
from aiohttp import web
from support import FAST, RecordingSpider, html

from crawler import BaseMiddleware, Crawler, Request, Settings, SettingsError
from crawler._frontier import registrable_domain_key

pytestmark = pytest.mark.usefixtures("steady_loop")  # gaps on the server clock

A, B = "127.0.0.1", "127.0.0.2"


def gaps(times: list[float]) -> list[float]:
    times = sorted(times)
    return [b - a for a, b in itertools.pairwise(times)]


def page_hits(server, host: str = A):
    return [h for h in server.hits_for(host=host) if h.path != "/robots.txt"]


def statuses_then_ok(*statuses: int, headers: dict[str, str] | None = None, on_call=None):
    """A handler answering each of ``statuses`` in turn, then 200; ``on_call()`` runs on every call."""
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if on_call is not None:
            on_call()
        if calls <= len(statuses):
            return web.Response(status=statuses[calls - 1], text="slow down", headers=headers)
        return web.Response(text=html("ok"), content_type="text/html")

    return handler


def current_rate(crawler: Crawler, host: str) -> float | None:
    domain = crawler.statistics().domains.get(host)
    return None if domain is None else domain.rate


class RateRecordingSpider(RecordingSpider):
    """Records ``stats.domains[A].rate`` as seen after each response reaches ``parse``."""

    crawler: Crawler
    rates: list

    async def parse(self, response):
        self.rates.append(self.crawler.statistics().domains[A].rate)
        async for item in super().parse(response):
            yield item


def rate_spider(urls: list[str], settings: dict) -> RateRecordingSpider:
    spider = RateRecordingSpider(urls)
    spider.rates = []
    spider.crawler = Crawler(spider, settings)
    return spider


# -- robots.txt Crawl-delay / Request-rate ----------------------------------------------------


@pytest.mark.parametrize(
    ("line", "interval"),
    [("Crawl-delay: 0.5", 0.5), ("Request-rate: 1/1s", 1.0)],
    ids=["crawl-delay", "request-rate"],
)
async def test_robots_interval_spaces_requests_even_with_a_higher_rate_limit(server, line, interval):
    server.route("/robots.txt", f"User-agent: *\n{line}\n", content_type="text/plain")
    for i in range(3):
        server.route(f"/p{i}", html(str(i)))
    spider = RecordingSpider([server.url(f"/p{i}") for i in range(3)])
    crawler = Crawler(spider, {**FAST, "obey_robots": True, "rate_limit": 20})

    stats = await crawler.run()

    assert stats.pages == 3
    spacing = gaps([h.at for h in page_hits(server)])
    assert len(spacing) == 2
    assert min(spacing) >= 0.9 * interval, f"spacing {spacing} with {line}"
    assert stats.domains[A].crawl_delay == interval
    assert stats.domains[A].configured_rate == 20


class HoldOddPages(BaseMiddleware):
    """Holds every odd page before it leaves (a middleware that looks something up)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def process_request(self, request: Request) -> None:
        if request.url[-1] in "13579":
            await asyncio.sleep(self.seconds)


@pytest.mark.parametrize(("domain_concurrency", "hold"), [(1, 0.15), (2, 0.15), (2, 0.3)])
async def test_a_page_a_middleware_held_does_not_crowd_the_next(server, domain_concurrency, hold):
    for i in range(8):
        server.route(f"/p{i}", html(str(i)))
    spider = RecordingSpider([server.url(f"/p{i}") for i in range(8)])
    settings = {**FAST, "rate_limit": 4, "domain_concurrency": domain_concurrency}

    stats = await Crawler(spider, settings, middlewares=[HoldOddPages(hold)]).run()

    assert stats.pages == 8
    spacing = gaps([h.at for h in page_hits(server)])
    # 250 ms apart at the send, not from when each page left the queue: a page held 0.15 s
    # arrived 90 ms before the next; held 0.3 s, 50 ms after the next (measured without
    # the door). The bound leaves the server clock, in the crawler's loop, 60 ms of jitter.
    assert min(spacing) >= 0.175, spacing


def test_the_door_keeps_a_pause_to_its_end():
    from crawler._pacer import Pace

    pace = Pace(None, 2)
    pace.floor = 10.0  # a long gap: its 5 % of slack must not shorten the pause
    pace.paused_until = 20.4
    assert pace.door(20.0) == pytest.approx(0.4)
    assert pace.door(20.4) == 0.0
    assert pace.door(21.0) == pytest.approx(9.4), "the next one keeps the gap after that send"


class HoldFirstPage(BaseMiddleware):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.released = asyncio.Event()  # p0 is on its way to the downloader

    async def process_request(self, request: Request) -> None:
        if request.url.endswith("/p0"):
            await asyncio.sleep(self.seconds)
            self.released.set()


async def test_a_page_a_middleware_held_waits_out_a_pause_that_came_meanwhile(server):
    answered_429: list[bool] = []

    async def throttled_once(request: web.Request) -> web.Response:
        if not answered_429:
            answered_429.append(True)
            await asyncio.sleep(0.3)
            return web.Response(status=429, headers={"Retry-After": "2"})
        return web.Response(text=html("1"), content_type="text/html")

    server.route("/p0", html("0"))
    server.route("/p1", throttled_once)
    spider = RecordingSpider([server.url("/p0"), server.url("/p1")])
    settings = {**FAST, "rate_limit": 1, "domain_concurrency": 2, "retries": 2}

    # p0 leaves the queue first and is held 1.1 s; p1 goes at 1 s and is paused 2 s at 1.3 s.
    stats = await Crawler(spider, settings, middlewares=[HoldFirstPage(1.1)]).run()

    assert stats.pages == 2
    asked_to_wait = server.hits_for(path="/p1")[0].at
    sent = server.hits_for(path="/p0")[0].at
    assert sent - asked_to_wait >= 0.3 + 0.9 * 2, "p0 went during the Retry-After pause"


async def test_a_request_cancelled_while_it_waits_its_turn_is_not_counted_as_sent(server):
    server.route("/p0", html("0"))
    server.route("/p1", html("1"))
    spider = RecordingSpider([server.url("/p0"), server.url("/p1")])
    settings = {**FAST, "rate_limit": 1, "domain_concurrency": 2}
    hold = HoldFirstPage(1.2)
    crawler = Crawler(spider, settings, middlewares=[hold])

    # p1 goes 1 s after p0 left the queue; p0, held 1.2 s, then waits at the door until 2 s.
    task = asyncio.ensure_future(crawler.run())
    await asyncio.wait_for(hold.released.wait(), timeout=30)
    while not server.hits_for(path="/p1"):
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    assert [hit.path for hit in server.hits] == ["/p1"]
    assert crawler.statistics().requests == 1


async def test_crawl_delay_never_speeds_a_domain_past_its_rate_limit(server):
    server.route("/robots.txt", "User-agent: *\nCrawl-delay: 0.1\n", content_type="text/plain")
    for i in range(3):
        server.route(f"/p{i}", html(str(i)))

    stats = await Crawler(
        RecordingSpider([server.url(f"/p{i}") for i in range(3)]), {**FAST, "obey_robots": True, "rate_limit": 2}
    ).run()

    assert stats.pages == 3
    spacing = gaps([h.at for h in page_hits(server)])
    assert min(spacing) >= 0.45, f"spacing {spacing}: rate_limit=2 must still hold"
    assert stats.domains[A].crawl_delay == 0.1


async def test_crawl_delay_of_another_bots_group_does_not_apply(server):
    server.route(
        "/robots.txt",
        "User-agent: otherbot\nCrawl-delay: 30\n\nUser-agent: mybot\nDisallow: /nothing\n",
        content_type="text/plain",
    )
    server.route("/p", html("p"))

    stats = await Crawler(
        RecordingSpider([server.url("/p")]), {**FAST, "obey_robots": True, "user_agent": "mybot/2.0"}
    ).run()

    assert stats.pages == 1
    assert stats.domains[A].crawl_delay is None


# -- autothrottle -----------------------------------------------------------------------------


async def test_each_429_or_503_cuts_the_rate_multiplicatively_down_to_min_rate(server):
    seen: list[float | None] = []
    spider = RecordingSpider([server.url("/busy")])
    crawler = Crawler(spider, {**FAST, "rate_limit": 40, "min_rate": 8, "retries": 4})
    server.route("/busy", statuses_then_ok(429, 503, 429, on_call=lambda: seen.append(current_rate(crawler, A))))

    stats = await crawler.run()

    # The rate each attempt went out at: 40, halved by the 429, by the 503, then stopped by min_rate.
    assert seen == [40, 20, 10, 8]
    assert stats.domains[A].throttled == 3
    assert stats.domains[A].rate == 8
    assert stats.domains[A].configured_rate == 40
    assert stats.pages == 1


async def test_successes_raise_the_rate_back_additively_never_above_rate_limit(server):
    server.route("/busy", statuses_then_ok(429))
    n = 60
    for i in range(n):
        server.route(f"/p{i}", html(str(i)))
    urls = [server.url("/busy")] + [server.url(f"/p{i}") for i in range(n)]
    # min_rate=6 makes each step 6 (more than a tenth of 40): 20, 26, 32, 38, then capped at 40.
    spider = rate_spider(urls, {**FAST, "rate_limit": 40, "min_rate": 6, "domain_concurrency": 1, "retries": 2})

    stats = await spider.crawler.run()

    rates = spider.rates
    assert len(rates) == n + 1
    assert min(rates) == 20  # halved by the 429
    assert max(rates) == 40  # never above the configured rate...
    assert rates[-1] == 40  # ...and back to it
    assert rates == sorted(rates), f"the rate went down again without a 429: {rates}"
    levels = sorted(set(rates))
    assert levels[0] == 20 and levels[-1] == 40
    steps = {round(b - a, 6) for a, b in itertools.pairwise(levels[:-1])}
    assert len(levels) >= 4, f"went back up in one jump: {levels}"
    assert len(steps) == 1, f"rate rose by unequal steps (not additive): {levels}"
    # each raise takes a run of successes, not a single one
    for level in levels[1:-1]:
        assert rates.count(level) >= 5, f"rate {level} held for only {rates.count(level)} responses"
    assert stats.domains[A].throttled == 1


async def test_without_autothrottle_the_rate_stays_configured(server):
    server.route("/busy", statuses_then_ok(429, 503))
    for i in range(5):
        server.route(f"/p{i}", html(str(i)))
    urls = [server.url("/busy")] + [server.url(f"/p{i}") for i in range(5)]
    spider = rate_spider(urls, {**FAST, "rate_limit": 40, "retries": 3, "autothrottle": False})

    stats = await spider.crawler.run()

    assert spider.rates == [40] * 6
    assert stats.domains[A].rate == 40
    assert stats.domains[A].throttled == 2  # still counted


async def test_a_429_without_retry_after_widens_the_spacing_of_following_requests(server):
    server.route("/p0", statuses_then_ok(429))
    for i in range(1, 10):
        server.route(f"/p{i}", html(str(i)))
    urls = [server.url(f"/p{i}") for i in range(10)]

    await Crawler(RecordingSpider(urls), {**FAST, "rate_limit": 20, "domain_concurrency": 1, "retries": 2}).run()

    hits = server.hits_for(host=A)
    assert hits[0].path == "/p0"
    # rate_limit=20 alone spaces requests by 0.05 s; after the 429 autothrottle halves the rate.
    after = gaps([h.at for h in hits[:7]])
    assert sum(after) / len(after) >= 0.09, f"spacing after the 429: {after}"


# -- Retry-After pauses one domain, holding no worker -----------------------------------------


async def test_a_paused_domain_costs_no_worker(server):
    """A answers 429 + Retry-After: 3 once; B (10/s) keeps being fetched during A's pause, with 2 workers."""
    server.route("/a/0", statuses_then_ok(429, headers={"Retry-After": "3"}))
    a_pages = [f"/a/{i}" for i in range(6)]
    b_pages = [f"/b/{i}" for i in range(40)]
    server.route_pages(a_pages[1:] + b_pages)
    urls = [server.url(p, host=A) for p in a_pages] + [server.url(p, host=B) for p in b_pages]
    snapshots = []

    class Spider(RecordingSpider):
        async def parse(self, response):
            snapshots.append((time.monotonic(), crawler.statistics().domains.get(A)))
            async for item in super().parse(response):
                yield item

    settings = {**FAST, "rate_limit": 10, "concurrency": 2, "domain_concurrency": 2, "retries": 3}
    crawler = Crawler(Spider(urls), settings)

    try:
        async with asyncio.timeout(20):
            stats = await crawler.run()
    except TimeoutError:
        pytest.fail("the crawl stalled while A was paused")

    assert stats.pages == len(a_pages) + len(b_pages)
    limited = server.hits_for("/a/0", A)[0].at
    deadline = limited + 3
    # A receives nothing before its Retry-After deadline...
    a_later = [h for h in server.hits_for(host=A) if h.at > limited]
    assert a_later, "A was never fetched again"
    assert min(h.at for h in a_later) >= deadline - 0.1
    # ...while B goes on at (at least) half its rate during the whole pause.
    b_during = [h for h in server.hits_for(host=B) if limited < h.at < deadline]
    assert len(b_during) >= 0.5 * 10 * 3, f"only {len(b_during)} B requests during A's 3 s pause"
    # The pause, the 429 and A's waiting queue show in stats.domains while it lasts.
    mid_pause = [d for at, d in snapshots if limited + 0.5 < at < deadline - 0.5]
    assert mid_pause, "no snapshot taken during A's pause"
    for domain in mid_pause:
        assert 0 < domain.paused_for_s <= 3
        assert domain.throttled == 1
        assert domain.queued >= len(a_pages) - 1
        assert domain.rate == 5  # halved from 10 by autothrottle
    assert stats.domains[A].paused_for_s == 0
    assert stats.domains[A].queued == 0


# -- rate scope and per-domain settings -------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("a.b.example.co.uk", "example.co.uk"),
        ("www.example.com", "example.com"),
        ("example.com", "example.com"),
        ("127.0.0.1", "127.0.0.1"),
        ("localhost", "localhost"),
    ],
)
def test_registrable_domain_key(host, key):
    assert registrable_domain_key()(host) == key


@pytest.mark.parametrize("scope", ["domain", "", "HOST", 1])
def test_rate_scope_rejects_other_values(scope):
    with pytest.raises(SettingsError, match="rate_scope"):
        Settings(rate_scope=scope)


@pytest.mark.parametrize("scope", ["host", "registrable_domain"])
def test_rate_scope_values_are_accepted(scope):
    assert Settings(rate_scope=scope).rate_scope == scope


async def test_hosts_are_separate_domains_with_rate_scope_host(server):
    server.route("/p", html("p"))

    stats = await Crawler(
        RecordingSpider([server.url("/p", host=A), server.url("/p", host=B)]), {**FAST, "rate_scope": "host"}
    ).run()

    assert set(stats.domains) == {A, B}


async def test_hosts_sharing_a_registrable_domain_share_one_limiter(server, monkeypatch):
    # Loopback has no real registrable domain: map both hosts to one, as example.com would be.
    monkeypatch.setattr("crawler._crawler.registrable_domain_key", lambda: lambda host: "loopback.test")
    for i in range(3):
        server.route(f"/p{i}", html(str(i)))
    urls = [server.url(f"/p{i}", host=h) for i in range(3) for h in (A, B)]

    stats = await Crawler(RecordingSpider(urls), {**FAST, "rate_limit": 5, "rate_scope": "registrable_domain"}).run()

    assert stats.pages == 6
    assert set(stats.domains) == {"loopback.test"}
    spacing = gaps([h.at for h in server.hits])
    assert min(spacing) >= 0.18, f"both hosts together went faster than 5/s: {spacing}"


@pytest.mark.parametrize("pattern", ["127.0.0.2", "127.0.0.*"])
async def test_domain_settings_override_the_rate_of_matching_domains(server, pattern):
    for i in range(4):
        server.route(f"/p{i}", html(str(i)))
    urls = [server.url(f"/p{i}", host=h) for i in range(4) for h in (A, B)]
    settings = {**FAST, "rate_limit": 0, "domain_settings": {pattern: {"rate_limit": 5}}}

    stats = await Crawler(RecordingSpider(urls), settings).run()

    assert stats.pages == 8
    limited = [B] if pattern == "127.0.0.2" else [A, B]
    for host in limited:
        spacing = gaps([h.at for h in server.hits_for(host=host)])
        assert min(spacing) >= 0.18, f"{host}: {spacing}"
        assert stats.domains[host].configured_rate == 5
    if pattern == "127.0.0.2":
        assert stats.domains[A].configured_rate is None  # the override is for that domain only
        assert stats.domains[A].rate is None


@pytest.mark.parametrize(
    "domain_settings",
    [
        {"127.0.0.2": {"rate_limt": 5}},
        {"127.0.0.2": {"rate_limit": -1}},
        {"127.0.0.2": {"rate_limit": "fast"}},
        {"127.0.0.2": {"domain_concurrency": 0}},
        {"127.0.0.2": 5},
        {"127.0.0.2": None},
    ],
)
def test_invalid_domain_settings_name_the_entry(domain_settings):
    with pytest.raises(SettingsError) as raised:
        Settings(domain_settings=domain_settings)
    assert raised.value.name.startswith("domain_settings[")
    assert "127.0.0.2" in raised.value.name


def test_domain_settings_must_be_a_mapping():
    with pytest.raises(SettingsError, match="domain_settings"):
        Settings(domain_settings=[("127.0.0.2", {"rate_limit": 5})])
