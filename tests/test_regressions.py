"""Regressions found in review: each test names the behaviour it protects."""

import asyncio

import pytest
from aiohttp import web
from support import FAST, RecordingSpider, html, links

from crawler import Crawler, Request, Settings, SettingsError, Spider
from crawler._url import join


async def test_max_pages_with_a_pending_retry_finishes(server):
    """A retry needs no page budget: it must go out (and the crawl end) once max_pages is reached."""
    calls = {"n": 0}

    async def flaky(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return web.Response(status=500)
        return web.Response(text=html("<p>a</p>"), content_type="text/html")

    server.route("/a", flaky)
    server.route("/b", links("/c", "/d"))  # fresh links queued ahead of /a's retry
    server.route("/c", html("<p>c</p>"))
    server.route("/d", html("<p>d</p>"))

    class S(Spider):
        start_urls = [server.url("/a"), server.url("/b")]

        async def parse(self, response):
            for request in response.follow_all(css="a"):
                yield request

    stats = await asyncio.wait_for(Crawler(S(), {**FAST, "max_pages": 2, "concurrency": 1}).run(), timeout=20)
    assert stats.pages == 2 and stats.retries == 1
    assert stats.close_reason == "max_pages"


async def test_priority_survives_queueing_and_retries(server):
    seen: list[int] = []
    calls = {"n": 0}

    async def flaky(request: web.Request) -> web.Response:
        calls["n"] += 1
        return web.Response(status=503 if calls["n"] == 1 else 200, text="ok", content_type="text/html")

    server.route("/", links("/flaky"))
    server.route("/flaky", flaky)

    class S(Spider):
        start_urls = [server.url("/")]

        async def parse(self, response):
            if response.url.endswith("/flaky"):
                seen.append(response.request.priority)
                return
            yield response.follow("/flaky", priority=5)

    await Crawler(S(), FAST).run()
    assert seen == [5]


async def test_redirect_location_resolves_against_the_request_url_not_base_href(server):
    async def moved(request: web.Request) -> web.Response:
        body = "<html><head><base href='http://127.0.0.2:1/'></head></html>"
        return web.Response(status=302, headers={"Location": "/target"}, text=body, content_type="text/html")

    server.route("/moved", moved)
    server.route("/target", html("<p>t</p>"))
    spider = RecordingSpider([server.url("/moved")])
    stats = await Crawler(spider, FAST).run()
    assert [r.url for r in spider.parsed] == [server.url("/target")]
    assert stats.redirected == 1


async def test_robots_txt_redirecting_to_an_unusable_url_means_no_rules(server):
    async def robots(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "ftp://elsewhere/robots.txt"})

    server.route("/robots.txt", robots)
    server.route("/a", html("<p>a</p>"))
    spider = RecordingSpider([server.url("/a")])
    stats = await asyncio.wait_for(Crawler(spider, {**FAST, "obey_robots": True}).run(), timeout=20)
    assert stats.pages == 1 and not stats.failures


async def test_cancelling_records_an_outcome_for_requests_in_flight(server):
    started = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(10)
        return web.Response(text="late")

    server.route("/slow", slow)
    crawler = Crawler(RecordingSpider([server.url("/slow")]), FAST)
    task = asyncio.create_task(crawler.run())
    await asyncio.wait_for(started.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert crawler.statistics().filtered == {"cancelled": 1}


async def test_stop_before_run_starts_is_honoured(server):
    server.route("/", html("<p>x</p>"))
    crawler = Crawler(RecordingSpider([server.url("/")]), FAST)
    await crawler.stop()
    stats = await crawler.run()
    assert stats.close_reason == "stopped" and stats.pages == 0


def test_join_with_a_query_but_no_path_in_the_base():
    assert join("http://o.example?x=/a", "/r.html") == "http://o.example/r.html"
    assert join("http://o.example?x=/a", "r.html") == "http://o.example/r.html"


@pytest.mark.parametrize("name", ["rate_limit", "timeout", "min_rate", "backoff_max"])
def test_infinite_numbers_are_rejected(name):
    with pytest.raises(SettingsError, match=name):
        Settings().merge({name: float("inf")})


async def test_an_unhashable_callback_is_kept(server):
    server.route("/", links("/b"))
    server.route("/b", html("<p>b</p>"))
    got: list[str] = []

    class Cb:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self, response):
            got.append(response.url)
            return []

    class S(Spider):
        start_urls = [server.url("/")]

        async def parse(self, response):
            yield Request(server.url("/b"), callback=Cb())
            yield {"after": True}

    stats = await Crawler(S(), FAST).run()
    assert got == [server.url("/b")] and stats.items == 1 and stats.callback_errors == 0


async def test_a_request_subclass_survives_queueing_and_retries(server):
    calls = {"n": 0}

    async def flaky(request: web.Request) -> web.Response:
        calls["n"] += 1
        return web.Response(status=503 if calls["n"] == 1 else 200, text="ok", content_type="text/html")

    server.route("/flaky", flaky)

    class Tagged(Request):
        __slots__ = ()

    kinds: list[type] = []

    class S(Spider):
        async def start(self):
            yield Tagged(server.url("/flaky"))

        async def parse(self, response):
            kinds.append(type(response.request))
            return []

    await Crawler(S(), FAST).run()
    assert kinds == [Tagged]


async def test_handle_statuses_does_not_apply_to_robots_txt(server):
    server.route("/robots.txt", "oops", status=500)
    server.route("/a", html("<p>a</p>"))
    spider = RecordingSpider([server.url("/a")])
    settings = {**FAST, "obey_robots": True, "handle_statuses": [500], "retries": 0}
    stats = await Crawler(spider, settings).run()
    assert stats.failures == {"robots_unavailable": 1} and stats.pages == 0
