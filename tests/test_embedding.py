"""Running a crawl inside a host program's event loop: results, streaming, cancellation,
stopping, running twice, side by side, a shared session, and staying quiet."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import warnings

import aiohttp
import pytest
import structlog
from aiohttp import web
from crawler_plugins.exporters import JsonLinesExporter
from support import FAST, Collect, html, links

import crawler
from crawler import Crawler, CrawlStats, Spider


def slow_page(body: str, delay: float):
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.Response(text=body, content_type="text/html")

    return handler


def _is_server_task(task: asyncio.Task) -> bool:
    return getattr(task.get_coro(), "__qualname__", "").startswith("RequestHandler.")


def crawl_tasks() -> list[asyncio.Task]:
    """Unfinished tasks besides this one, leaving out the test server's own connection handlers."""
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done() and not _is_server_task(t)]


@pytest.fixture
async def server_drained():
    """After the test, let the server finish answers nobody waits for, so no_task_leaks sees only the crawl's tasks.

    Request it after ``no_task_leaks`` so that its teardown runs first.
    """
    yield
    async with asyncio.timeout(5):
        while any(_is_server_task(t) and not t.done() for t in asyncio.all_tasks()):
            await asyncio.sleep(0.01)


async def wait_until(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def site(server, n: int, *, host: str = "127.0.0.1", delay: float = 0.0) -> type[Spider]:
    """A start page linking ``n`` leaf pages (each ``delay`` s slow); every page yields one item."""
    leaves = [f"/leaf{i}" for i in range(n)]
    server.route("/", links(*leaves))
    for leaf in leaves:
        server.route(leaf, slow_page(html(f"<h1>{leaf}</h1>"), delay) if delay else html(f"<h1>{leaf}</h1>"))

    class SiteSpider(Spider):
        start_urls = [server.url("/", host=host)]
        settings = FAST

        async def parse(self, response):
            yield {"url": response.url}
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)

    return SiteSpider


async def test_run_inside_a_running_loop_returns_stats(server):
    spider_cls = site(server, 3)
    stats = await Crawler(spider_cls(), {"concurrency": 4}).run()
    assert isinstance(stats, CrawlStats)
    assert stats.pages == 4
    assert stats.items == 4
    assert stats.close_reason == "finished"
    assert stats.failures == {}


async def test_items_stream_while_the_crawl_runs(server):
    spider_cls = site(server, 5, delay=0.05)
    c = Crawler(spider_cls(), {"domain_concurrency": 1})
    received: list = []
    run_done_at_first_item: list[bool] = []

    async with asyncio.TaskGroup() as tg:

        async def consume():
            async for item in c.items():
                if not received:
                    run_done_at_first_item.append(run_task.done())
                received.append(item)

        tg.create_task(consume())
        run_task = tg.create_task(c.run())

    stats = run_task.result()
    assert len(received) == stats.items == 6
    assert sorted(i["url"] for i in received) == sorted({i["url"] for i in received})
    assert run_done_at_first_item == [False]  # the first item came while the crawl was still going


async def test_cancelling_the_run_task_closes_everything_and_keeps_items(
    server, no_task_leaks, server_drained, tmp_path, monkeypatch
):
    sessions: list[aiohttp.ClientSession] = []
    real_session = aiohttp.ClientSession

    def tracking_session(*args, **kwargs):
        session = real_session(*args, **kwargs)
        sessions.append(session)
        return session

    monkeypatch.setattr(aiohttp, "ClientSession", tracking_session)
    spider_cls = site(server, 40, delay=0.2)
    sink = Collect()
    out = tmp_path / "items.jsonl"
    exporter = JsonLinesExporter(out)
    c = Crawler(spider_cls(), {"domain_concurrency": 2}, pipelines=[sink], exporters=[exporter])

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        streamed: list = []

        async def stream(source: Crawler):
            async for item in source.items():
                streamed.append(item)

        consumer = asyncio.create_task(stream(c))
        task = asyncio.create_task(c.run())
        await wait_until(lambda: len(sink.items) >= 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(5):
            await consumer  # the items() stream ends with the crawl
        stats = c.statistics()
        del c, task, consumer  # drop our references, so a session left open would also complain when collected
        gc.collect()

    assert crawl_tasks() == []  # nothing of the crawl's is left running
    assert len(sessions) == 1 and sessions[0].closed  # the session the crawler opened is closed
    unclosed = [str(w.message) for w in caught if "Unclosed" in str(w.message)]
    assert unclosed == []
    assert stats.close_reason == "cancelled"
    assert stats.pages < 41  # it really was cut short
    assert sink.closed
    assert len(sink.items) == stats.items >= 3
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert exported == sink.items
    assert streamed == sink.items


async def test_stop_lets_in_flight_requests_finish_and_filters_queued_ones(server):
    spider_cls = site(server, 10, delay=0.3)
    parsed: list = []

    class S(spider_cls):
        async def parse(self, response):
            parsed.append(response.url)
            async for out in super().parse(response):
                yield out

    c = Crawler(S(), {"domain_concurrency": 2})
    task = asyncio.create_task(c.run())
    await wait_until(lambda: len(server.hits) >= 3)  # "/" done, two leaves in flight
    await c.stop()
    stats = await task

    assert stats.close_reason == "stopped"
    assert len(server.hits) == 3
    assert stats.pages == 3  # the two in flight were handed to the callback
    assert sorted(parsed) == sorted(server.url(h.path) for h in server.hits)
    assert stats.filtered.get("stopped") == 8


async def test_a_crawler_runs_only_once(server):
    spider_cls = site(server, 1)
    c = Crawler(spider_cls())
    await c.run()
    with pytest.raises(crawler.CrawlStateError):
        await c.run()
    assert len(server.hits) == 2  # the refused second run fetched nothing


async def test_a_running_crawler_refuses_a_second_run(server):
    spider_cls = site(server, 3, delay=0.1)
    c = Crawler(spider_cls())
    task = asyncio.create_task(c.run())
    await wait_until(lambda: len(server.hits) >= 1)
    with pytest.raises(crawler.CrawlStateError):
        await c.run()
    stats = await task
    assert stats.pages == 4


async def test_async_with_stops_the_crawl_and_waits_until_everything_is_closed(server):
    spider_cls = site(server, 20, delay=0.2)
    sink = Collect()
    async with asyncio.TaskGroup() as tasks:
        async with Crawler(spider_cls(), {"concurrency": 2}, pipelines=[sink]) as c:
            assert c.state is crawler.CrawlerState.NEW
            run = tasks.create_task(c.run())
            await wait_until(lambda: len(server.hits) >= 2)
            assert c.state is crawler.CrawlerState.RUNNING
        # Leaving the block stopped the crawl and waited for it: all closed, nothing pending.
        assert c.state is crawler.CrawlerState.CLOSED
        assert sink.closed
        assert run.done()
    stats = run.result()
    assert stats.close_reason == "stopped" and stats.pages < 21
    assert len(sink.items) == stats.items
    await c.aclose()  # safe twice
    with pytest.raises(crawler.CrawlStateError):
        await c.run()


async def test_aclose_before_run_means_it_never_runs(server):
    c = Crawler(site(server, 1)())
    await c.aclose()
    await c.aclose()
    assert c.state is crawler.CrawlerState.CLOSED
    with pytest.raises(crawler.CrawlStateError):
        await c.run()
    assert server.hits == []


async def test_two_crawlers_with_different_settings_run_side_by_side(server):
    a = Crawler(site(server, 5, delay=0.05)(), {"max_pages": 2, "user_agent": "bot-a"})
    b = Crawler(site(server, 5, host="127.0.0.2", delay=0.05)(), {"user_agent": "bot-b"})
    items_a: list = []
    items_b: list = []

    async def drain(c, into):
        async for item in c.items():
            into.append(item)

    _, _, stats_a, stats_b = await asyncio.gather(drain(a, items_a), drain(b, items_b), a.run(), b.run())

    assert stats_a.pages == 2
    assert stats_a.close_reason == "max_pages"
    assert stats_b.pages == 6
    assert stats_b.close_reason == "finished"
    assert len(items_a) == 2
    assert all(i["url"].startswith("http://127.0.0.1:") for i in items_a)
    assert len(items_b) == 6
    assert all(i["url"].startswith("http://127.0.0.2:") for i in items_b)
    assert {h.headers["User-Agent"] for h in server.hits_for(host="127.0.0.1")} == {"bot-a"}
    assert {h.headers["User-Agent"] for h in server.hits_for(host="127.0.0.2")} == {"bot-b"}


async def test_a_user_supplied_session_is_used_and_left_open(server):
    spider_cls = site(server, 2)
    async with aiohttp.ClientSession(headers={"X-From-Host-Session": "yes"}) as session:
        stats = await Crawler(spider_cls(), session=session).run()
        assert stats.pages == 3
        assert [h.headers.get("X-From-Host-Session") for h in server.hits] == ["yes"] * 3
        assert not session.closed
        async with session.get(server.url("/leaf0")) as resp:  # still usable by its owner
            assert resp.status == 200


async def test_library_configures_no_logging_prints_nothing_and_leaves_the_collector_alone(server, capsys):
    server.route("/", links("/ok", "/missing", "/boom"))
    server.route("/ok", html("ok"))
    server.route("/boom", html("boom"))

    class S(Spider):
        start_urls = [server.url("/")]
        settings = {**FAST, "retries": 0}

        async def parse(self, response):
            if response.url.endswith("/boom"):
                raise ValueError("callback error on purpose")
            yield {"url": response.url}
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)

    root = logging.getLogger()
    root_handlers = list(root.handlers)
    root_level = root.level
    structlog_configured = structlog.is_configured()
    collector = (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled())

    stats = await Crawler(S()).run()

    assert stats.callback_errors == 1 and stats.failures == {"http_404": 1}  # warnings and errors were logged
    # Only the stdlib's NullHandler for libraries: with no configuration nothing is printed
    # (Python's last-resort handler would print bare event names without their fields).
    assert [type(h) for h in logging.getLogger("crawler").handlers] == [logging.NullHandler]
    assert root.handlers == root_handlers
    assert root.level == root_level
    assert structlog.is_configured() == structlog_configured
    # The garbage collector is the host program's: only the command line tunes it.
    assert (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()) == collector
    assert capsys.readouterr() == ("", "")
