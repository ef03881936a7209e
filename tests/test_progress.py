"""Seeing a crawl advance: ``Crawler.progress()``, the periodic ``progress`` event, and the
command line's live view on a terminal (driven in a real pseudo-terminal)."""

from __future__ import annotations

import asyncio
import logging
import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

from aiohttp import web
from support import FAST, RecordingSpider, html
from test_cli import SLOW_SHOP, run_cli, write_spider

from crawler import Crawler, Response, Spider


def slow_pages(server, count: int, delay: float) -> list[str]:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.Response(text=html(request.path), content_type="text/html")

    paths = [f"/p{i}" for i in range(count)]
    for path in paths:
        server.route(path, slow)
    return [server.url(path) for path in paths]


async def test_progress_events_come_while_the_crawl_runs(server, caplog):
    urls = slow_pages(server, 12, 0.1)
    spider = RecordingSpider(urls)
    caplog.set_level(logging.INFO, logger="crawler")

    stats = await Crawler(spider, {**FAST, "domain_concurrency": 2, "progress_interval": 0.15}).run()

    events = [r for r in caplog.records if r.getMessage() == "progress"]
    assert len(events) >= 2, [r.getMessage() for r in caplog.records]
    assert all(r.levelno == logging.INFO for r in events)
    pages = [r.pages for r in events]  # type: ignore[attr-defined]
    assert pages == sorted(pages) and 0 < pages[-1] <= 12
    last = events[-1]
    for name in ("items", "failures", "queued", "in_flight", "pages_per_s", "pages_per_s_now", "elapsed_s"):
        assert hasattr(last, name), name
    assert not hasattr(last, "eta_s")  # an unbounded crawl has no ETA
    assert stats.pages == 12


async def test_no_progress_events_when_the_interval_is_0(server, caplog):
    urls = slow_pages(server, 4, 0.1)
    caplog.set_level(logging.INFO, logger="crawler")

    await Crawler(RecordingSpider(urls), {**FAST, "progress_interval": 0}).run()

    assert not [r for r in caplog.records if r.getMessage() == "progress"]


async def test_progress_counts_and_bounds(server):
    urls = slow_pages(server, 20, 0.05)
    seen = []

    class S(Spider):
        start_urls = urls

        async def parse(self, response: Response):
            seen.append(crawler.progress())
            yield {"url": response.url}

    crawler = Crawler(S(), {**FAST, "domain_concurrency": 4, "max_pages": 10, "progress_interval": 0})
    stats = await crawler.run()

    final = crawler.progress()
    assert final.pages == stats.pages == 10
    assert final.done == 1.0
    assert final.in_flight == 0
    assert [p.pages for p in seen] == sorted(p.pages for p in seen)  # never goes back
    assert all(p.done is not None and 0 <= p.done <= 1 for p in seen)
    assert any(p.in_flight > 0 for p in seen)


def run_in_terminal(argv: list[str], cwd: Path, *, interrupt_after: float | None = None, timeout: float = 60):
    """Run ``argv`` with a pseudo-terminal as its stdin, stdout and stderr; (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child
        os.chdir(cwd)
        os.environ.update(COLUMNS="120", LINES="40", TERM="xterm-256color")
        os.execv(argv[0], argv)
    output = b""
    started = time.monotonic()
    interrupted = False
    try:
        while time.monotonic() - started < timeout:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if interrupt_after is not None and not interrupted and time.monotonic() - started > interrupt_after:
                os.kill(pid, signal.SIGINT)
                interrupted = True
    finally:
        if time.monotonic() - started >= timeout:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode("utf-8", "replace")


def test_the_live_view_shows_the_crawl_advancing_and_ends_cleanly_on_ctrl_c(tmp_path):
    spider = write_spider(tmp_path, SLOW_SHOP)

    code, output = run_in_terminal(
        [sys.executable, "-m", "crawler", "run", str(spider), "-o", "items.jsonl"], tmp_path, interrupt_after=3
    )

    assert code == 130, output[-2000:]
    assert "pages/s now" in output
    assert "in flight" in output
    assert "127.0.0.1" in output  # the per-domain table
    assert "stopping: finishing requests in flight" in output
    assert "crawl_finished" in output  # a log line while the view is up, printed above it
    assert "crawl stopped" in output  # the summary, after the view
    assert "Traceback" not in output
    assert "\x1b[?25h" in output  # the cursor is shown again


def test_no_progress_turns_the_live_view_off(tmp_path):
    spider = write_spider(tmp_path, SLOW_SHOP)

    code, output = run_in_terminal(
        [sys.executable, "-m", "crawler", "run", str(spider), "-o", "items.jsonl", "--no-progress"],
        tmp_path,
        interrupt_after=2,
    )

    assert code == 130
    assert "pages/s now" not in output
    assert "crawl stopped" in output


def test_the_report_is_one_self_contained_html_file_with_charts(tmp_path):
    from html.parser import HTMLParser

    spider = write_spider(tmp_path, SHOP_WITH_404)
    result = run_cli("run", spider, "-o", "items.jsonl", "--report", "out/report.html", cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    text = (tmp_path / "out" / "report.html").read_text()

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[tuple[str, dict]] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, dict(attrs)))

    parsed = Tags()
    parsed.feed(text)
    tags = [tag for tag, _ in parsed.tags]
    assert tags.count("svg") >= 3  # pages/s, items/s, failures/s (and the domains' rates)
    assert "script" not in tags and "link" not in tags and "img" not in tags  # nothing to fetch
    assert not any("src" in attrs or "href" in attrs for _, attrs in parsed.tags)
    assert "Crawl report: shop" in text
    assert "http_404" in text  # failures by reason
    assert "Filtered, by reason" in text
    assert "127.0.0.1" in text  # the per-domain table
    assert ">7<" in text  # the pages


SHOP_WITH_404 = """
class ShopSpider(ShopMixin, Spider):
    name = "shop"
    settings = {"rate_limit": 0, "domain_concurrency": 4, "retries": 0}
    site = Site(statuses=(404,))
"""


async def test_prometheus_metrics_are_served_while_the_crawl_runs(server):
    import aiohttp

    from crawler._metrics import MetricsServer

    urls = slow_pages(server, 30, 0.05)
    server.route("/p-missing", "no", status=404)
    crawler = Crawler(RecordingSpider([*urls, server.url("/p-missing")]), {**FAST, "domain_concurrency": 2})
    metrics = MetricsServer(crawler.progress, crawler.statistics, crawler.busiest_domains, port=0)
    scraped: list[str] = []

    async def scrape_midway() -> None:
        async with aiohttp.ClientSession() as session:
            while crawler.progress().pages < 5:
                await asyncio.sleep(0.02)
            async with session.get(f"http://127.0.0.1:{metrics.port}/metrics") as response:
                assert response.status == 200
                scraped.append(await response.text())

    try:
        await asyncio.gather(crawler.run(), scrape_midway())
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{metrics.port}/metrics") as end:
            final = await end.text()
    finally:
        await metrics.aclose()
        await metrics.aclose()  # safe twice

    text = scraped[0]
    assert "crawler_pages_total" in text and "crawler_queued" in text
    assert 'crawler_domain_in_flight{domain="127.0.0.1"}' in text
    assert "crawler_pages_total 30.0" in final
    assert 'crawler_failures_total{reason="http_404"} 1.0' in final
    assert 'crawler_responses_total{status="200"} 30.0' in final
    async with aiohttp.ClientSession() as session:
        try:
            await session.get(f"http://127.0.0.1:{metrics.port}/metrics", timeout=aiohttp.ClientTimeout(total=2))
        except aiohttp.ClientError:
            pass  # closed
        else:
            raise AssertionError("the metrics server still answers after aclose()")


def test_the_command_line_serves_metrics_and_stops_them(tmp_path):
    spider = write_spider(tmp_path)
    result = run_cli("run", spider, "-o", "items.jsonl", "--metrics-port", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "metrics: http://127.0.0.1:" in result.stderr


def test_a_metrics_port_in_use_is_a_usage_error(tmp_path):
    import socket

    spider = write_spider(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_cli("run", spider, "-o", "items.jsonl", "--metrics-port", port, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "crawler: error: --metrics-port" in result.stderr
    assert "Traceback" not in result.stderr


FAILING_SHOP = """
class ShopSpider(ShopMixin, Spider):
    name = "shop"
    settings = {"rate_limit": 0, "retries": 0}

    async def opened(self):
        raise RuntimeError("cannot log in")
"""


def test_the_report_is_written_when_the_crawl_fails(tmp_path):
    spider = write_spider(tmp_path, FAILING_SHOP)
    result = run_cli("run", spider, "-o", "items.jsonl", "--report", "report.html", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "crawl failed" in result.stderr
    text = (tmp_path / "report.html").read_text()
    assert "Crawl report: shop" in text and "error" in text
