"""Log events: one per request, response, retry and failure; links a page drops are counted
and summarised once per page, never logged one by one; a host program sees the events with
their fields through ``log_formatter()``."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from aiohttp import web
from support import FAST, links

import crawler
from crawler import BaseMiddleware, Crawler, IgnoreRequest, Spider
from crawler._stats import START_WARNINGS


@pytest.fixture
def debug_records():
    """Every record the crawler logs at DEBUG and above, restored afterwards."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("crawler")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def densely_linked(server, count: int) -> list[str]:
    """``count`` pages, each linking to every page, an offsite host and a mailto: link."""
    pages = [f"/p{i}" for i in range(count)]
    for path in pages:
        server.route(path, links(*pages, "http://elsewhere.example/", "mailto:a@b"))
    return pages


@pytest.mark.parametrize("idiom", ["follow_all", "follow"])
async def test_debug_logs_one_links_filtered_summary_per_page_not_one_event_per_link(server, debug_records, idiom):
    pages = densely_linked(server, 12)

    class S(Spider):
        start_urls = [server.url(pages[0])]
        allowed_domains = ["127.0.0.1"]
        settings = FAST

        async def parse(self, response):
            if idiom == "follow_all":
                for request in response.follow_all(css="a"):
                    yield request
            else:
                for href in response.css("a::attr(href)").getall():
                    yield response.follow(href)

    stats = await Crawler(S()).run()
    events = [r.getMessage() for r in debug_records]
    assert stats.pages == 12
    assert sum(stats.filtered.values()) >= 12 * 12  # every page's links were screened ...
    assert events.count("filtered") == 0  # ... and none was logged on its own
    summaries = [r for r in debug_records if r.getMessage() == "links_filtered"]
    assert len(summaries) == 12
    assert {r.url for r in summaries} == {server.url(p) for p in pages}
    totals: dict[str, int] = {}
    for record in summaries:
        for reason, count in record.filtered.items():
            totals[reason] = totals.get(reason, 0) + count
    assert totals == stats.filtered  # the summaries account for every filtered link
    assert events.count("response") == stats.requests  # one event per response, as before


@pytest.mark.parametrize("style", ["json", "console"])
async def test_a_host_program_sees_events_with_their_fields(server, style):
    server.route("/", links("/p"))
    server.route("/p", links("/"))

    class S(Spider):
        start_urls = [server.url("/"), server.url("/gone")]  # /gone answers 404
        settings = FAST

        async def parse(self, response):
            for request in response.follow_all(css="a"):
                yield request

    # The README's recipe, with a StringIO standing in for stderr.
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(crawler.log_formatter(style))
    logger = logging.getLogger("crawler")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        await Crawler(S()).run()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    lines = out.getvalue().splitlines()
    if style == "json":
        events = {e["event"]: e for e in map(json.loads, lines)}
        assert events["request_failed"]["url"] == server.url("/gone")
        assert events["request_failed"]["reason"] == "http_404"
        assert events["request_failed"]["level"] == "warning"
        assert events["crawl_finished"]["pages"] == 2
    else:
        failed = [line for line in lines if "request_failed" in line]
        assert len(failed) == 1
        assert f"url={server.url('/gone')}" in failed[0] and "reason=http_404" in failed[0]
        assert "warning" in failed[0]


async def test_requests_filtered_after_they_were_queued_are_one_debug_event_each(server, debug_records):
    """Filtered later than the page's own summary can see: by a middleware at download time,
    or by robots.txt once it arrives. Each still gets its event with its URL."""

    async def slow_robots(request):
        await asyncio.sleep(0.2)  # the page's links are queued (parked) before it arrives
        return web.Response(text="User-agent: *\nDisallow: /private\n")

    server.route("/robots.txt", slow_robots)
    server.route("/", links(server.url("/private/x", host="127.0.0.2"), "/blocked", "/ok"))
    server.route_pages(["/ok", "/blocked"])

    class Block(BaseMiddleware):
        async def process_request(self, request):
            if request.url.endswith("/blocked"):
                raise IgnoreRequest("blocked_by_middleware")
            return None

    class S(Spider):
        start_urls = [server.url("/")]
        middlewares = [Block]

        async def parse(self, response):
            for request in response.follow_all(css="a"):
                yield request

    stats = await Crawler(S(), {**FAST, "obey_robots": True}).run()
    assert stats.filtered == {"blocked_by_middleware": 1, "robots": 1}
    filtered = {(r.url, r.reason) for r in debug_records if r.getMessage() == "filtered"}
    assert filtered == {
        (server.url("/blocked"), "blocked_by_middleware"),
        (server.url("/private/x", host="127.0.0.2"), "robots"),
    }


async def test_the_first_start_requests_that_go_wrong_are_warnings_the_rest_debug(server, debug_records):
    bad = [f"htp://host/{i}" for i in range(START_WARNINGS + 5)]

    class S(Spider):
        start_urls = bad

        async def parse(self, response):
            yield {}

    stats = await Crawler(S(), FAST).run()
    assert stats.filtered == {"bad_url": len(bad)}
    events = [r for r in debug_records if r.getMessage() == "start_request_filtered"]
    assert [r.url for r in events] == bad  # every one is logged, with its URL ...
    levels = [r.levelno for r in events]
    assert levels == [logging.WARNING] * START_WARNINGS + [logging.DEBUG] * 5  # ... the first ones as warnings
    assert "more are DEBUG" in events[START_WARNINGS - 1].note
