"""What happens when a request or a callback goes wrong: errbacks, counted reasons, no lost pages."""

from __future__ import annotations

import logging
import resource
import zlib

from aiohttp import web
from support import FAST, Collect, RecordingSpider, html, links
from yarl import URL

from crawler import Crawler, Request, Response, Spider

RETRY = {**FAST, "retries": 2}






def paths(spider: RecordingSpider) -> list[str]:
    return [URL(r.url).path for r in spider.parsed]


# -- non-2xx statuses -----------------------------------------------------------------------


async def test_404_goes_to_errback_not_parse(server):
    server.route("/gone", "not here", status=404)
    spider = RecordingSpider([server.url("/gone")])

    stats = await Crawler(spider, RETRY).run()

    assert spider.parsed == []
    assert len(spider.failures) == 1
    failure = spider.failures[0]
    assert failure.reason == "http_404"
    assert failure.response is not None
    assert failure.response.status == 404
    assert failure.url == server.url("/gone")
    assert stats.failures == {"http_404": 1}
    assert stats.pages == 0
    assert stats.items == 0


async def test_handle_statuses_sends_404_to_callback(server):
    server.route("/gone", "not here", status=404)
    spider = RecordingSpider([server.url("/gone")])

    stats = await Crawler(spider, {**RETRY, "handle_statuses": [404]}).run()

    assert [r.status for r in spider.parsed] == [404]
    assert spider.failures == []
    assert stats.failures == {}
    assert stats.pages == 1
    assert stats.items == 1


# -- callbacks that go wrong ----------------------------------------------------------------


async def test_callback_error_is_counted_logged_and_crawl_goes_on(server, caplog):
    server.route("/boom", links("/after"))
    server.route("/after", html("after"))
    server.route("/other", html("other"))
    boom_url = server.url("/boom")

    class S(Spider):
        start_urls = [boom_url, server.url("/other")]

        async def parse(self, response: Response):
            yield {"path": URL(response.url).path}
            if URL(response.url).path == "/boom":
                yield response.follow("/after")
                raise RuntimeError("callback bug")

    collect = Collect()
    caplog.set_level(logging.ERROR, logger="crawler")

    stats = await Crawler(S(), FAST, pipelines=[collect]).run()

    assert stats.callback_errors == 1
    # The item yielded before the error is kept, and the crawl went on to the other pages.
    assert sorted(i["path"] for i in collect.items) == ["/after", "/boom", "/other"]
    assert stats.pages == 3
    assert stats.close_reason == "finished"
    errors = [r for r in caplog.records if r.name == "crawler" and r.levelno >= logging.ERROR]
    assert any(getattr(r, "url", None) == boom_url or boom_url in r.getMessage() for r in errors), [
        (r.getMessage(), r.__dict__) for r in errors
    ]


async def test_callback_yielding_junk_is_a_callback_error(server):
    server.route("/", links("/next"))
    server.route("/next", html("next"))

    class S(Spider):
        start_urls = [server.url("/")]

        async def parse(self, response: Response):
            if URL(response.url).path == "/":
                yield "not an item"
                yield 42
                yield response.follow("/next")
            yield {"path": URL(response.url).path}

    collect = Collect()

    stats = await Crawler(S(), FAST, pipelines=[collect]).run()

    assert stats.callback_errors == 2
    assert sorted(i["path"] for i in collect.items) == ["/", "/next"]
    assert len(server.hits_for("/next")) == 1
    assert stats.close_reason == "finished"


# -- bodies ---------------------------------------------------------------------------------


async def test_body_over_max_response_bytes_fails_too_large(server):
    server.route("/big", html("x" * 5000))

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(10):
            await resp.write(b"y" * 500)
        await resp.write_eof()
        return resp

    server.route("/big-chunked", chunked)
    spider = RecordingSpider([server.url("/big"), server.url("/big-chunked")])

    stats = await Crawler(spider, {**RETRY, "max_response_bytes": 1000}).run()

    assert spider.parsed == []
    assert stats.failures == {"too_large": 2}
    assert sorted(f.reason for f in spider.failures) == ["too_large", "too_large"]


def _gzip_zeros(size: int, chunk: int = 1 << 20) -> bytes:
    """gzip of ``size`` zero bytes, built chunk by chunk (never holding ``size`` bytes)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(chunk)
    parts = [compressor.compress(zeros) for _ in range(size // chunk)]
    parts.append(compressor.flush())
    return b"".join(parts)


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def _reset_peak_rss() -> None:
    """Reset the peak-RSS mark (Linux >= 4.0), so the next peak is this test's; harmless elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


async def test_gzip_bomb_fails_too_large_without_inflating(server):
    bomb = _gzip_zeros(50 * 1024 * 1024)
    assert len(bomb) < 200_000

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "text/html"})

    server.route("/bomb", handler)
    spider = RecordingSpider([server.url("/bomb")])
    _reset_peak_rss()
    before = _peak_rss_bytes()

    stats = await Crawler(spider, {**RETRY, "max_response_bytes": 1_000_000}).run()

    growth = _peak_rss_bytes() - before
    assert stats.failures == {"too_large": 1}
    assert spider.parsed == []
    assert growth < 30 * 1024 * 1024, f"peak RSS grew by {growth / 2**20:.1f} MB"


async def test_body_shorter_than_content_length_is_incomplete(server):
    async def short(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/html", "Content-Length": "1000"})
        await resp.prepare(request)
        await resp.write(b"<html>0123")
        assert request.transport is not None
        request.transport.close()
        return resp

    server.route("/short", short)
    spider = RecordingSpider([server.url("/short")])

    stats = await Crawler(spider, RETRY).run()

    assert spider.parsed == []
    assert stats.pages == 0
    assert stats.failures == {"incomplete_body": 1}
    assert [f.reason for f in spider.failures] == ["incomplete_body"]


# -- redirects ------------------------------------------------------------------------------


def redirect(location: str, status: int = 302):
    async def handler(request: web.Request) -> web.Response:
        target = location if "://" in location else f"http://{request.host}{location}"
        return web.Response(status=status, headers={"Location": target})

    return handler


async def test_redirects_followed_hop_by_hop(server):
    server.route("/r1", redirect("/r2", 301))
    server.route("/r2", redirect("/final", 307))
    server.route("/final", html("final"))
    spider = RecordingSpider([server.url("/r1")])

    stats = await Crawler(spider, RETRY).run()

    assert [h.path for h in server.hits] == ["/r1", "/r2", "/final"]
    assert paths(spider) == ["/final"]
    assert spider.parsed[0].url == server.url("/final")
    assert stats.items == 1
    assert stats.redirected == 2
    assert stats.failures == {}


async def test_offsite_redirect_is_filtered(server):
    server.route("/away", redirect(server.url("/target", host="127.0.0.2")))
    server.route("/target", html("offsite"))

    class S(RecordingSpider):
        allowed_domains = ["127.0.0.1"]

    spider = S([server.url("/away")])

    stats = await Crawler(spider, RETRY).run()

    assert server.hits_for(host="127.0.0.2") == []
    assert spider.parsed == []
    assert stats.filtered == {"offsite": 1}
    assert stats.items == 0


async def test_redirect_loop_ends_with_max_redirects(server):
    server.route("/loop/a", redirect("/loop/b"))
    server.route("/loop/b", redirect("/loop/a"))
    spider = RecordingSpider([server.url("/loop/a")])

    stats = await Crawler(spider, {**RETRY, "max_redirects": 3}).run()

    assert len(server.hits) == 4
    assert stats.failures == {"max_redirects": 1}
    assert [f.reason for f in spider.failures] == ["max_redirects"]
    assert spider.parsed == []


# -- malformed URLs -------------------------------------------------------------------------


async def test_malformed_urls_from_callback_are_filtered(server):
    server.route("/", html("root"))
    server.route_pages(("/good1", "/good2"))

    class S(Spider):
        start_urls = [server.url("/")]

        async def parse(self, response: Response):
            yield {"path": URL(response.url).path}
            if URL(response.url).path != "/":
                return
            yield Request("http://[::1")
            yield response.follow("javascript:void(0)")
            yield response.follow("/good1")
            yield Request("mailto:x@y")
            yield response.follow("http://bad host/")  # a space in a host: no URL (a NUL in a path is escaped)
            yield response.follow("/good2")

    collect = Collect()

    stats = await Crawler(S(), FAST, pipelines=[collect]).run()

    assert stats.filtered == {"bad_url": 4}
    assert sorted(i["path"] for i in collect.items) == ["/", "/good1", "/good2"]
    assert sorted(h.path for h in server.hits) == ["/", "/good1", "/good2"]
    assert stats.callback_errors == 0


async def test_malformed_hrefs_in_page_do_not_cost_the_good_links(server):
    server.route("/", links("http://[::1", "/good1", "javascript:void(0)", "mailto:x@y", "/good2"))
    server.route_pages(("/good1", "/good2"))

    class S(Spider):
        start_urls = [server.url("/")]

        async def parse(self, response: Response):
            yield {"path": URL(response.url).path}
            for request in response.follow_all(css="a"):
                yield request

    collect = Collect()

    stats = await Crawler(S(), FAST, pipelines=[collect]).run()

    assert sorted(h.path for h in server.hits) == ["/", "/good1", "/good2"]
    assert sorted(i["path"] for i in collect.items) == ["/", "/good1", "/good2"]
    assert stats.filtered == {"bad_url": 3}
    assert stats.callback_errors == 0
