"""Retries, backoff and Retry-After, as the server sees them (server-side timestamps)."""

from __future__ import annotations

import asyncio
import itertools
import time
from email.utils import formatdate

import aiohttp
import pytest
from aiohttp import web
from support import FAST, Collect, RecordingSpider, html, over_downloaders
from yarl import URL

from crawler import Crawler
from crawler._retry import parse_retry_after

pytestmark = pytest.mark.usefixtures("steady_loop")  # pauses measured on the server clock

RETRY = {**FAST, "retries": 2}






def limited_then_ok(status: int, retry_after, body: str = "ok"):
    """A handler answering ``status`` with ``Retry-After`` once, then 200."""
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            value = retry_after() if callable(retry_after) else retry_after
            return web.Response(status=status, text="slow down", headers={"Retry-After": value})
        return web.Response(text=html(body), content_type="text/html")

    return handler


def sleeper(seconds: float, body: str = "page"):
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(seconds)
        return web.Response(text=html(body), content_type="text/html")

    return handler


# -- Retry-After pauses the whole domain ----------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
@over_downloaders
async def test_retry_after_seconds_pauses_whole_domain(downloader, server, status):
    server.route("/limited", limited_then_ok(status, "1"))
    for name in ("p1", "p2", "p3"):
        server.route(f"/{name}", html(name))
    urls = [server.url("/limited"), server.url("/p1"), server.url("/p2"), server.url("/p3")]
    spider = RecordingSpider(urls)
    collect = Collect()

    stats = await Crawler(spider, {**RETRY, "domain_concurrency": 1}, pipelines=[collect]).run()

    limited_hits = server.hits_for("/limited")
    assert len(limited_hits) == 2
    paused_at = limited_hits[0].at
    later = [h for h in server.hits_for(host="127.0.0.1") if h.at > paused_at]
    # Every other path (not only the retried one) waited for the Retry-After deadline.
    assert sorted(h.path for h in later) == ["/limited", "/p1", "/p2", "/p3"]
    for hit in later:
        assert hit.at - paused_at >= 0.95, f"{hit.path} sent {hit.at - paused_at:.3f}s after the {status}"
    assert {"path": "/limited"} in collect.items
    assert stats.items == 4
    assert stats.retries == 1
    assert stats.failures == {}
    assert spider.failures == []


@over_downloaders
async def test_retry_after_http_date_pauses_domain(downloader, server):
    server.route("/limited", limited_then_ok(429, lambda: formatdate(time.time() + 2, usegmt=True)))
    server.route("/other", html("other"))
    spider = RecordingSpider([server.url("/limited"), server.url("/other")])

    stats = await Crawler(spider, {**RETRY, "domain_concurrency": 1}).run()

    limited_hits = server.hits_for("/limited")
    assert len(limited_hits) == 2
    paused_at = limited_hits[0].at
    later = [h for h in server.hits_for(host="127.0.0.1") if h.at > paused_at]
    assert sorted(h.path for h in later) == ["/limited", "/other"]
    # The date has a 1 s resolution: "now + 2 s" means at least ~1 s from now.
    for hit in later:
        assert hit.at - paused_at >= 0.9, f"{hit.path} sent {hit.at - paused_at:.3f}s after the 429"
    assert stats.items == 2
    assert stats.failures == {}


@over_downloaders
async def test_paused_domain_costs_no_worker(downloader, server):
    server.route("/a", limited_then_ok(429, "1"))
    b_urls = []
    for i in range(12):
        server.route(f"/b/{i}", sleeper(0.1, f"b{i}"))
        b_urls.append(server.url(f"/b/{i}", host="127.0.0.2"))
    spider = RecordingSpider([server.url("/a"), *b_urls])

    stats = await Crawler(spider, {**RETRY, "concurrency": 1}).run()

    a_hits = server.hits_for("/a", host="127.0.0.1")
    assert len(a_hits) == 2
    paused_at = a_hits[0].at
    assert a_hits[1].at - paused_at >= 0.95
    # With a single worker, B is fetched only if waiting for A holds no worker.
    b_during_pause = [h for h in server.hits_for(host="127.0.0.2") if paused_at < h.at < paused_at + 0.9]
    assert len(b_during_pause) >= 3, f"only {len(b_during_pause)} requests to B during A's pause"
    assert stats.items == 13
    assert stats.failures == {}


@over_downloaders
async def test_retry_after_beyond_max_fails_request(downloader, server):
    server.route("/limited", limited_then_ok(429, "30"))
    spider = RecordingSpider([server.url("/limited")])

    stats = await Crawler(spider, {**RETRY, "retry_after_max": 1}).run()

    assert len(server.hits_for("/limited")) == 1  # no retry sent
    assert stats.failures == {"retry_after_too_long": 1}
    assert stats.retries == 0
    assert stats.items == 0
    assert [f.reason for f in spider.failures] == ["retry_after_too_long"]


# -- backoff and giving up ------------------------------------------------------------------


@over_downloaders
async def test_5xx_is_retried_with_backoff(downloader, server):
    calls = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls <= 2:
            return web.Response(status=500, text="oops")
        return web.Response(text=html("fine"), content_type="text/html")

    server.route("/flaky", flaky)
    spider = RecordingSpider([server.url("/flaky")])
    collect = Collect()

    stats = await Crawler(spider, {**RETRY, "backoff_base": 0.2, "backoff_max": 2}, pipelines=[collect]).run()

    assert collect.items == [{"path": "/flaky"}]
    assert stats.retries == 2
    assert stats.failures == {}
    hits = server.hits_for("/flaky")
    assert len(hits) == 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(hits)]
    assert all(gap >= 0.15 for gap in gaps), gaps


@over_downloaders
async def test_gives_up_after_retries(downloader, server):
    server.route("/down", "unavailable", status=503)
    spider = RecordingSpider([server.url("/down")])

    stats = await Crawler(spider, RETRY).run()

    assert len(server.hits_for("/down")) == 3
    assert stats.failures == {"http_503": 1}
    assert stats.retries == 2
    assert stats.pages == 0
    assert len(spider.failures) == 1
    failure = spider.failures[0]
    assert failure.reason == "http_503"
    assert failure.response is not None and failure.response.status == 503


async def test_connection_error_retried_then_failed(mocked):
    url = "http://unreachable.test/page"
    mocked.get(url, exception=aiohttp.ClientConnectionError("connection refused"), repeat=True)
    spider = RecordingSpider([url])

    stats = await Crawler(spider, RETRY).run()

    assert len(mocked.requests[("GET", URL(url))]) == 3
    assert stats.requests == 3
    assert stats.retries == 2
    assert stats.failures == {"connection_error": 1}
    assert [f.reason for f in spider.failures] == ["connection_error"]


@over_downloaders
async def test_timeout_retried_then_failed(downloader, server):
    server.route("/slow", sleeper(1.0))
    spider = RecordingSpider([server.url("/slow")])

    stats = await Crawler(spider, {**RETRY, "timeout": 0.3}).run()

    assert len(server.hits_for("/slow")) == 3
    assert stats.retries == 2
    assert stats.failures == {"timeout": 1}
    assert stats.pages == 0
    assert [f.reason for f in spider.failures] == ["timeout"]


@over_downloaders
async def test_404_is_not_retried(downloader, server):
    spider = RecordingSpider([server.url("/missing")])  # no route: the server answers 404

    stats = await Crawler(spider, RETRY).run()

    assert len(server.hits_for("/missing")) == 1
    assert stats.retries == 0
    assert stats.failures == {"http_404": 1}


# -- parse_retry_after ----------------------------------------------------------------------


def test_parse_retry_after_seconds():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 3 ") == 3.0
    assert parse_retry_after("0") == 0.0


def test_parse_retry_after_http_date():
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30.0)


def test_parse_retry_after_past_date_is_now():
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now - 600, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1e3x", "Wed, 99 Foo 2015 07:28:00 GMT"])
def test_parse_retry_after_unusable_is_none(value):
    assert parse_retry_after(value) is None
