"""``python -m crawler``: the command line, run as a real subprocess.

Every spider file written here serves its own tiny shop on 127.0.0.1 from ``opened()``
(like ``examples/demo_shop.py``), so the child process needs nothing from the test's loop.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from crawler import Settings, __version__

ROOT = Path(__file__).resolve().parent.parent

# Shared by every spider file: a shop on 127.0.0.1 whose product pages show what the server
# saw (the User-Agent). Not a Spider subclass, so it never counts as a second spider.
SITE = '''
import asyncio

from aiohttp import web

from crawler import Request, Spider

CATEGORIES = ("books", "games", "music")


class Site:
    def __init__(self, products=6, delay=0.0, statuses=(), stuck=()):
        self.products = products
        self.delay = delay  # seconds each product page takes
        self.statuses = statuses  # linked pages that answer with these statuses
        self.stuck = stuck  # product pages that take a minute

    async def start(self):
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self):
        await self.runner.cleanup()

    async def handle(self, request):
        path = request.path
        if path == "/":
            body = "".join(f'<a href="/p/{i}">p{i}</a>' for i in range(self.products))
            body += "".join(f'<a href="/status/{s}">{s}</a>' for s in self.statuses)
        elif path.startswith("/p/"):
            i = int(path[3:])
            await asyncio.sleep(60 if i in self.stuck else self.delay)
            body = (
                f'<h1>Product {i}</h1><span class="category">{CATEGORIES[i % 3]}</span>'
                f'<span class="ua">{request.headers.get("User-Agent", "")}</span>'
            )
        elif path.startswith("/status/"):
            return web.Response(status=int(path[8:]), text="no")
        else:
            return web.Response(status=404, text="no")
        return web.Response(text=f"<html><body>{body}</body></html>", content_type="text/html")


class ShopMixin:
    site = Site()

    async def opened(self):
        self.base = await self.site.start()

    async def closed(self, reason):
        await self.site.stop()

    async def start(self):
        yield Request(self.base + "/")

    async def parse(self, response):
        for request in response.follow_all(css="a"):
            yield request
        title = response.css("h1::text").get()
        if title:
            category = response.css("span.category::text").get()
            if getattr(self, "category", None) in (None, category):
                yield {
                    "url": response.url,
                    "title": title,
                    "category": category,
                    "ua": response.css("span.ua::text").get(),
                }
'''

SHOP = """
class ShopSpider(ShopMixin, Spider):
    name = "shop"
    settings = {"rate_limit": 0, "domain_concurrency": 4, "retries": 0}
"""


def write_spider(directory: Path, code: str = SHOP, name: str = "spider.py") -> Path:
    path = directory / name
    path.write_text(SITE + textwrap.dedent(code), encoding="utf-8")
    return path


def run_cli(*args: object, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crawler", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def json_lines(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def summary_lines(stderr: str) -> list[str]:
    """The human lines of stderr (not JSON log events)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]


def summary_count(stderr: str, what: str) -> int:
    """The number before ``what`` ("pages", "items") in the printed summary."""
    for line in summary_lines(stderr):
        match = re.search(rf"(\d+) {what}\b", line)
        if match:
            return int(match.group(1))
    raise AssertionError(f"no '{what}' count in the summary:\n{stderr}")


# -- version, a finished crawl --------------------------------------------------------------


def test_version_prints_the_version_and_exits_0(tmp_path):
    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert __version__ in result.stdout + result.stderr


def test_finished_crawl_exits_0_writes_items_stats_and_summary(tmp_path):
    spider = write_spider(tmp_path)
    result = run_cli("run", spider, "-o", "items.jsonl", "--stats", "stats.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    items = read_jsonl(tmp_path / "items.jsonl")
    assert sorted(item["title"] for item in items) == [f"Product {i}" for i in range(6)]

    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["items"] == 6
    assert stats["pages"] == 7  # the index and six products
    assert stats["failures"] == {}
    assert stats["close_reason"] == "finished"

    assert summary_count(result.stderr, "pages") == 7
    assert summary_count(result.stderr, "items") == 6


def test_summary_and_stats_count_failures_by_reason(tmp_path):
    code = """
    class ShopSpider(ShopMixin, Spider):
        name = "shop"
        settings = {"rate_limit": 0, "domain_concurrency": 4, "retries": 0}
        site = Site(products=2, statuses=(404, 410, 500))
    """
    spider = write_spider(tmp_path, code)
    result = run_cli("run", spider, "--stats", "stats.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["failures"] == {"http_404": 1, "http_410": 1, "http_500": 1}
    assert stats["items"] == 2
    summary = "\n".join(summary_lines(result.stderr))
    for reason in ("http_404", "http_410", "http_500"):
        assert re.search(rf"{reason}\D*1\b", summary), summary
    assert summary_count(result.stderr, "items") == 2


def test_demo_shop_example_gives_60_products(tmp_path):
    out = tmp_path / "items.jsonl"
    out.write_text('{"stale": true}\n', encoding="utf-8")  # -O replaces what was there
    result = run_cli("run", ROOT / "examples" / "demo_shop.py", "-O", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    items = read_jsonl(out)
    assert len(items) == 60
    assert len({item["url"] for item in items}) == 60
    for item in items:
        assert set(item) == {"url", "title", "price", "category"}
        assert item["title"].startswith("Product ")
        assert isinstance(item["price"], float)
        assert item["category"] in {"books", "games", "music"}


# -- crawls that do nothing exit non-zero and say why ------------------------------------------

PLAIN = """
class Plain(Spider):
    settings = {"backoff_base": 0.01, "backoff_max": 0.02}

    async def parse(self, response):
        yield {"url": response.url}
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["-a", "start_urls=htp://x"], "no pages crawled: 1 start request filtered (bad_url=1)"),
        ([], "no pages crawled: the spider made no start requests (start_urls is empty and start() yielded nothing)"),
        (
            ["-a", "start_urls=http://127.0.0.1:{port}/", "-s", "obey_robots=false"],
            "no pages crawled: 1 start request failed (connection_error=1)",
        ),
        (
            ["-a", "start_urls=http://127.0.0.1:{port}/"],
            "no pages crawled: 1 start request failed (robots_unavailable=1)",
        ),
    ],
)
def test_a_crawl_with_no_page_exits_1_with_one_line_saying_why(tmp_path, args, why):
    spider = write_spider(tmp_path, PLAIN)
    port = closed_port()
    result = run_cli("run", spider, *(a.format(port=port) for a in args), "--log-format", "json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    errors = [line for line in summary_lines(result.stderr) if line.startswith("crawler: error:")]
    assert errors == [f"crawler: error: {why}"]
    events = json_lines(result.stderr)
    if args:  # the start request's own fate is a WARNING with its URL and reason
        url = args[1].partition("=")[2].format(port=port)
        warned = [e for e in events if e["level"] == "warning" and e.get("url") == url]
        assert warned and warned[0]["event"] in ("start_request_filtered", "request_failed"), events
        assert warned[0]["reason"] in why
    assert [e["event"] for e in events if e["event"] == "no_pages_crawled"] == ["no_pages_crawled"]


def test_a_start_url_answering_404_is_a_warning_and_exit_1(tmp_path):
    code = """
    class ShopSpider(ShopMixin, Spider):
        settings = {"rate_limit": 0, "obey_robots": False}

        async def start(self):
            yield Request(self.base + "/status/404")

        async def parse(self, response):
            yield {"url": response.url}
    """
    result = run_cli("run", write_spider(tmp_path, code), "--log-format", "json", cwd=tmp_path)
    assert result.returncode == 1
    failed = [e for e in json_lines(result.stderr) if e["event"] == "request_failed"]
    assert [(e["level"], e["reason"]) for e in failed] == [("warning", "http_404")]
    assert "crawler: error: no pages crawled: 1 start request failed (http_404=1)" in result.stderr


@pytest.mark.parametrize("option", ["-O", "-o", "--stats"])
def test_an_unwritable_output_path_is_a_usage_error_before_the_crawl(tmp_path, option):
    spider = write_spider(tmp_path)
    (tmp_path / "afile").write_text("a file, not a directory")
    name = "afile/out.json" if option == "--stats" else "afile/out.jsonl"
    result = run_cli("run", spider, option, name, cwd=tmp_path)
    assert_usage_error(result, name, "afile is not a directory")
    (tmp_path / "adir.jsonl").mkdir()
    result = run_cli("run", spider, option, "adir.jsonl", cwd=tmp_path)
    assert_usage_error(result, "adir.jsonl", "is a directory")


def test_output_and_stats_go_into_new_directories(tmp_path):
    spider = write_spider(tmp_path)
    result = run_cli("run", spider, "-o", "out/items.jsonl", "--stats", "out/run/stats.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(tmp_path / "out" / "items.jsonl")) == 6
    assert json.loads((tmp_path / "out" / "run" / "stats.json").read_text())["items"] == 6


def test_custom_settings_is_a_usage_error_naming_settings(tmp_path):
    code = """
    class ShopSpider(ShopMixin, Spider):
        custom_settings = {"CONCURRENT_REQUESTS": 4, "DOWNLOAD_DELAY": 0.25}
    """
    result = run_cli("run", write_spider(tmp_path, code), cwd=tmp_path)
    assert_usage_error(result, "custom_settings", "`settings = {'concurrency': 4, 'rate_limit': 4.0}`")


def test_a_crawl_from_the_command_line_runs_with_the_garbage_collector_tuned(tmp_path):
    # The CLI owns its process: start-up objects frozen, young threshold raised (see
    # tune_garbage_collector; the bench measures what it is worth). The spider reports both.
    code = """
    import gc

    class ShopSpider(ShopMixin, Spider):
        name = "shop"
        settings = {"rate_limit": 0, "retries": 0}

        async def parse(self, response):
            yield {"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()}
    """
    spider = write_spider(tmp_path, code)
    result = run_cli("run", spider, "-O", "items.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (item,) = read_jsonl(tmp_path / "items.jsonl")
    assert item["threshold"] == 5000
    assert item["frozen"] > 10_000  # every module the crawl imported


# -- spider arguments, settings, choosing a spider --------------------------------------------


def test_spider_argument_arrives_as_attribute(tmp_path):
    spider = write_spider(tmp_path)
    result = run_cli("run", spider, "-a", "category=books", "-O", "items.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    items = read_jsonl(tmp_path / "items.jsonl")
    assert sorted(item["title"] for item in items) == ["Product 0", "Product 3"]
    assert {item["category"] for item in items} == {"books"}


def test_settings_values_parse_as_json_else_string(tmp_path):
    # The spider keeps the default rate limit; -s rate_limit=0 must turn it off (None).
    code = """
    class ShopSpider(ShopMixin, Spider):
        name = "shop"
        settings = {"domain_concurrency": 1, "retries": 0}
    """
    spider = write_spider(tmp_path, code)
    result = run_cli(
        "run", spider,
        "-s", "rate_limit=0",
        "-s", "max_pages=3",  # JSON: the number 3 (a string "3" would be rejected)
        "-s", "user_agent=probe-bot/1.0",  # not JSON: kept as the string
        "--log-format", "json", "--stats", "stats.json", "-O", "items.jsonl",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    started = [e for e in json_lines(result.stderr) if e["event"] == "crawl_started"]
    assert len(started) == 1
    settings = started[0]["settings"]
    assert "rate_limit" in settings
    assert settings["rate_limit"] is None
    assert settings["max_pages"] == 3
    assert settings["user_agent"] == "probe-bot/1.0"

    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["pages"] == 3
    assert stats["close_reason"] == "max_pages"
    items = read_jsonl(tmp_path / "items.jsonl")
    assert len(items) == 2
    assert {item["ua"] for item in items} == {"probe-bot/1.0"}


def test_rate_limit_zero_parses_to_no_limit():
    name, value = Settings.parse_assignment("rate_limit=0")
    assert Settings().merge({name: value}).rate_limit is None
    assert Settings.parse_assignment("handle_statuses=[404, 410]") == ("handle_statuses", [404, 410])
    assert Settings.parse_assignment("user_agent=my bot") == ("user_agent", "my bot")
    assert Settings.parse_assignment("backoff_base=0.25") == ("backoff_base", 0.25)


TWO_SPIDERS = """
class ShopSpider(ShopMixin, Spider):
    name = "shop"
    settings = {"rate_limit": 0, "domain_concurrency": 4, "retries": 0}


class BooksSpider(ShopMixin, Spider):
    name = "books"
    category = "books"
    settings = {"rate_limit": 0, "domain_concurrency": 4, "retries": 0}
"""


def test_spider_option_picks_one_of_several(tmp_path):
    spider = write_spider(tmp_path, TWO_SPIDERS)
    result = run_cli("run", spider, "--spider", "books", "-O", "items.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {item["category"] for item in read_jsonl(tmp_path / "items.jsonl")} == {"books"}


# -- usage errors: exit 2 and one line naming the problem --------------------------------------


def assert_usage_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""


def test_missing_spider_file(tmp_path):
    result = run_cli("run", "no_such_spider.py", cwd=tmp_path)
    assert_usage_error(result, "no_such_spider.py")
    assert "not found" in result.stderr


def test_file_without_spider_subclass(tmp_path):
    (tmp_path / "plain.py").write_text("from crawler import Spider\n\nVALUE = 1\n", encoding="utf-8")
    result = run_cli("run", "plain.py", cwd=tmp_path)
    assert_usage_error(result, "plain.py")
    assert "Spider" in result.stderr


def test_spider_file_that_fails_to_import(tmp_path):
    (tmp_path / "broken.py").write_text("import no_such_module_anywhere\n", encoding="utf-8")
    result = run_cli("run", "broken.py", cwd=tmp_path)
    assert_usage_error(result, "broken.py", "no_such_module_anywhere")


def test_several_spiders_need_the_spider_option(tmp_path):
    spider = write_spider(tmp_path, TWO_SPIDERS)
    result = run_cli("run", spider, "-o", "items.jsonl", cwd=tmp_path)
    assert_usage_error(result, "shop", "books", "--spider")
    assert not (tmp_path / "items.jsonl").exists()


def test_unknown_spider_name(tmp_path):
    spider = write_spider(tmp_path, TWO_SPIDERS)
    result = run_cli("run", spider, "--spider", "nosuch", cwd=tmp_path)
    assert_usage_error(result, "nosuch")


@pytest.mark.parametrize(
    ("assignment", "needles"),
    [
        ("concurency=4", ["concurency", "unknown", "did you mean 'concurrency'?"]),
        ("CONCURRENT_REQUESTS=4", ["CONCURRENT_REQUESTS", "Scrapy's name", "'concurrency'"]),
        ("max_pages=-1", ["max_pages", ">= 0 (0 means no limit)"]),
        ("concurrency=abc", ["concurrency", "abc"]),
        ("concurrency=0", ["concurrency"]),
        ("rate_limit=-1", ["rate_limit"]),
        ("handle_statuses=[999]", ["handle_statuses", "999"]),
        ("timeout", ["timeout"]),
    ],
)
def test_bad_setting(tmp_path, assignment, needles):
    spider = write_spider(tmp_path)
    result = run_cli("run", spider, "-s", assignment, "-o", "items.jsonl", cwd=tmp_path)
    assert_usage_error(result, *needles)
    assert not (tmp_path / "items.jsonl").exists()


def test_bad_spider_argument(tmp_path):
    spider = write_spider(tmp_path)
    result = run_cli("run", spider, "-a", "category", cwd=tmp_path)
    assert_usage_error(result, "category")


def test_unknown_output_extension(tmp_path):
    spider = write_spider(tmp_path)
    result = run_cli("run", spider, "-o", "items.xml", cwd=tmp_path)
    assert_usage_error(result, "items.xml", "jsonl", "csv")
    assert not (tmp_path / "items.xml").exists()


# -- output files ------------------------------------------------------------------------------


def test_output_flags_append_and_overwrite(tmp_path):
    spider = write_spider(tmp_path)
    out = tmp_path / "items.jsonl"
    for _ in range(2):
        result = run_cli("run", spider, "-o", out, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert len(read_jsonl(out)) == 12  # -o appends

    result = run_cli("run", spider, "-O", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(item["title"] for item in read_jsonl(out)) == [f"Product {i}" for i in range(6)]


def test_several_outputs_each_get_every_item(tmp_path):
    spider = write_spider(tmp_path)
    result = run_cli("run", spider, "-o", "items.jsonl", "-o", "items.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    titles = sorted(item["title"] for item in read_jsonl(tmp_path / "items.jsonl"))
    assert titles == [f"Product {i}" for i in range(6)]
    rows = (tmp_path / "items.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 + 6


def test_one_output_named_twice_is_a_usage_error(tmp_path):
    spider = write_spider(tmp_path)
    result = run_cli("run", spider, "-o", "items.jsonl", "-o", "./items.jsonl", cwd=tmp_path)
    assert_usage_error(result, "named twice")
    assert not (tmp_path / "items.jsonl").exists()


def test_csv_output_appends_without_a_second_header(tmp_path):
    spider = write_spider(tmp_path)
    out = tmp_path / "items.csv"
    for _ in range(2):
        result = run_cli("run", spider, "-o", out, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].split(",") == ["url", "title", "category", "ua"]
    assert lines.count(lines[0]) == 1
    assert len(lines) == 1 + 12


# -- logging -----------------------------------------------------------------------------------


# A one-product shop that also links to a page answering 500, without retries: one warning to log.
ONE_PRODUCT_AND_A_500 = """
class ShopSpider(ShopMixin, Spider):
    name = "shop"
    settings = {"rate_limit": 0, "domain_concurrency": 4, "retries": 0}
    site = Site(products=1, statuses=(500,))
"""


def test_json_log_format_gives_json_lines(tmp_path):
    spider = write_spider(tmp_path, ONE_PRODUCT_AND_A_500)
    result = run_cli("run", spider, "--log-format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    events = json_lines(result.stderr)  # raises if a "{" line is not JSON
    assert all("event" in e and "level" in e and "timestamp" in e for e in events)
    names = [e["event"] for e in events]
    assert names[0] == "crawl_started"
    assert names[-1] == "crawl_finished"
    failed = [e for e in events if e["event"] == "request_failed"]
    assert len(failed) == 1
    assert failed[0]["reason"] == "http_500"
    assert failed[0]["url"].endswith("/status/500")
    assert failed[0]["level"] == "warning"
    # Apart from the JSON events, stderr only holds the short summary.
    assert 1 <= len(summary_lines(result.stderr)) <= 5


def test_console_log_format_and_log_level(tmp_path):
    spider = write_spider(tmp_path, ONE_PRODUCT_AND_A_500)
    result = run_cli("run", spider, "--log-format", "console", "--log-level", "warning", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stderr) == []
    failed = [line for line in result.stderr.splitlines() if "request_failed" in line]
    assert len(failed) == 1
    assert "http_500" in failed[0]
    assert summary_count(result.stderr, "items") == 1
    assert "crawl_started" not in result.stderr  # an INFO event, below --log-level warning


# -- Ctrl-C ------------------------------------------------------------------------------------

SLOW_SHOP = """
class SlowShopSpider(ShopMixin, Spider):
    name = "slow"
    settings = {"rate_limit": 0, "domain_concurrency": 8, "retries": 0}
    site = Site(products=400, delay=0.2)
"""

# Product 3 takes a minute: after a first Ctrl-C the crawl would wait for it, so only the
# second Ctrl-C can end the crawl within the test's timeout.
STUCK_SHOP = SLOW_SHOP.replace("delay=0.2)", "delay=0.2, stuck=(3,))")


def whole_lines(path: Path) -> list[str]:
    """The complete (newline-terminated) lines of a file another process may be writing."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return text.splitlines()[: text.count("\n")]


def start_slow_crawl(tmp_path: Path, code: str) -> tuple[subprocess.Popen[str], Path]:
    spider = write_spider(tmp_path, code)
    out = tmp_path / "items.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler", "run", str(spider), "-O", str(out), "--stats", "stats.json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, out


def wait_for_items(proc: subprocess.Popen[str], out: Path, count: int, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = whole_lines(out)
        if len(lines) >= count:
            return lines
        assert proc.poll() is None, f"crawl ended early: {proc.communicate()}"
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} items after {timeout}s")


def check_interrupted_output(tmp_path: Path, out: Path, before: list[str], stderr: str) -> list[dict]:
    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n"), "the last line is cut"
    lines = text.splitlines()
    items = [json.loads(line) for line in lines]  # every line whole JSON
    assert lines[: len(before)] == before  # nothing written before the signal is lost
    assert len(items) < 400, "the crawl was not stopped"
    assert len({item["url"] for item in items}) == len(items)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["items"] == len(items)  # every counted item reached the file
    assert summary_count(stderr, "items") == len(items)
    return items


def test_ctrl_c_stops_cleanly(tmp_path):
    proc, out = start_slow_crawl(tmp_path, SLOW_SHOP)
    try:
        before = wait_for_items(proc, out, 5)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr
        check_interrupted_output(tmp_path, out, before, stderr)
        stats = json.loads((tmp_path / "stats.json").read_text())
        assert stats["close_reason"] == "stopped"
        # Requests in flight at the signal finished: every request sent (but robots.txt) became a page.
        assert stats["failures"] == {}
        assert stats["pages"] == stats["requests"] - sum(stats["robots_txt"].values())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_ctrl_c_twice_stops_at_once_with_whole_lines(tmp_path):
    proc, out = start_slow_crawl(tmp_path, STUCK_SHOP)
    try:
        before = wait_for_items(proc, out, 5)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)  # two separate presses (signals sent back to back can merge into one)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr
        check_interrupted_output(tmp_path, out, before, stderr)
        assert json.loads((tmp_path / "stats.json").read_text())["close_reason"] == "cancelled"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()



@pytest.mark.parametrize("downloader", ["aiohttp", "httpx"])
def test_run_on_uvloop_crawls_the_same(tmp_path, downloader):
    spider = write_spider(tmp_path)
    result = run_cli("run", spider, "-o", "items.jsonl", "--loop", "uvloop", "-s", f"downloader={downloader}",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    items = read_jsonl(tmp_path / "items.jsonl")
    assert sorted(item["title"] for item in items) == [f"Product {i}" for i in range(6)]
    assert "Traceback" not in result.stderr
