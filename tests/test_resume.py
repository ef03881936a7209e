"""Pause and resume (``--state``): real crawler subprocesses killed with SIGKILL at random
moments, then resumed to the end, against a site served from this test's process (so it
outlives every crawler and keeps its port)."""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web

from crawler import Crawler, Request, Spider

PAGES = 400
CONCURRENCY = 6

SPIDER = '''
import asyncio

from crawler import Spider

CONCURRENCY = @CONCURRENCY@


class ShopSpider(Spider):
    name = "shop"
    settings = {"rate_limit": 0, "domain_concurrency": CONCURRENCY, "concurrency": CONCURRENCY,
                "obey_robots": False, "retries": 0}

    def __init__(self, base, **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [base + "/"]

    async def parse(self, response):
        title = response.css("h1::text").get()
        if title:
            await asyncio.sleep(0.01)  # a callback that awaits: checkpoints happen meanwhile
            yield {"url": response.url, "title": title, "note": "é, \\"quoted\\", a,comma"}
        for request in response.follow_all(css="a"):
            yield request
'''.replace("@CONCURRENCY@", str(CONCURRENCY))


class ItemsAndLinks(Spider):
    """Follows every link from ``start``; an item for each page with an ``h1``."""

    name = "shop"

    def __init__(self, start: str, name: str = "shop", **kwargs) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.start_urls = [start]

    async def parse(self, response):
        if response.css("h1"):
            yield {"url": response.url}
        for request in response.follow_all(css="a"):
            yield request


def shop(server) -> list[str]:
    """A hub and PAGES product pages, each linking to a few others; pages answer in 20-60 ms.
    Every fifth product is linked only through a redirect (/r/N answers 302 to /p/N)."""
    rng = random.Random(3)
    paths = [f"/p/{i}" for i in range(PAGES)]

    def link(n: int) -> str:
        return f"/r/{n}" if n % 5 == 0 else paths[n]

    server.route("/", "".join(f'<a href="{link(n)}">{n}</a>' for n in range(10)))
    for n in range(0, PAGES, 5):

        async def bounce(request: web.Request, n: int = n) -> web.Response:
            await asyncio.sleep(rng.uniform(0.02, 0.06))
            raise web.HTTPFound(paths[n])

        server.route(f"/r/{n}", bounce)
    for i, path in enumerate(paths):
        targets = [link((i + k) % PAGES) for k in (1, 2, 7, 31)] + [link(rng.randrange(PAGES))]
        body = f"<h1>Product {i}</h1>" + "".join(f'<a href="{t}">{t}</a>' for t in targets)

        async def page(request: web.Request, body: str = body) -> web.Response:
            await asyncio.sleep(rng.uniform(0.02, 0.06))
            return web.Response(text=f"<html><body>{body}</body></html>", content_type="text/html")

        server.route(path, page)
    return paths


async def run_crawler(tmp_path: Path, *args: str, kill_after: float | None = None, sigint_after: float | None = None):
    """Run the CLI; with ``kill_after``, SIGKILL it then. Returns (exit code, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", "run", str(tmp_path / "spider.py"), *args,
        cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    signal_after = kill_after if kill_after is not None else sigint_after
    if signal_after is not None:
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=signal_after)
        except TimeoutError:
            proc.send_signal(signal.SIGKILL if kill_after is not None else signal.SIGINT)
    stderr = await asyncio.wait_for(proc.stderr.read(), timeout=90)  # type: ignore[union-attr]
    code = await asyncio.wait_for(proc.wait(), timeout=90)
    return code, stderr.decode("utf-8", "replace")


def run_to_end(tmp_path: Path, spider: str, base: str, state: str) -> subprocess.CompletedProcess[str]:
    """The CLI on the spider file ``spider`` (in ``tmp_path``) with ``-a base=`` and ``--state``."""
    return subprocess.run(
        [sys.executable, "-m", "crawler", "run", spider, "-a", f"base={base}", "--state", state],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )


def read_items(path: Path, fmt: str) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), "the last line is whole"
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines()]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert all(set(row) == {"url", "title", "note"} for row in rows), "one header, whole rows"
    return rows


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_kill_9_at_random_moments_then_resume_gives_every_item_exactly_once(server, tmp_path, fmt):
    paths = shop(server)
    (tmp_path / "spider.py").write_text(SPIDER, encoding="utf-8")
    out = tmp_path / f"items.{fmt}"
    args = ["-a", f"base={server.url('').rstrip('/')}", "-o", str(out), "--state", "crawl.db",
            "--stats", "stats.json", "--log-level", "WARNING"]
    rng = random.Random(11)
    kills = 0
    for _ in range(4):
        code, stderr = await run_crawler(tmp_path, *args, kill_after=rng.uniform(0.5, 1.0))
        if code == 0:  # finished before the kill
            break
        assert code == -signal.SIGKILL, stderr
        kills += 1
    code, stderr = await run_crawler(tmp_path, *args)
    assert code == 0, stderr
    assert kills >= 3, "the kills came before the crawl could finish"

    items = read_items(out, fmt)
    urls = Counter(item["url"] for item in items)
    assert urls == Counter({server.url(p): 1 for p in paths}), "every product exactly once"
    assert all(item["note"] == 'é, "quoted", a,comma' for item in items)
    fetches = Counter(hit.path for hit in server.hits)
    redirects = {f"/r/{n}" for n in range(0, PAGES, 5)}
    assert set(fetches) == {"/", *paths, *redirects}, "nothing queued before a kill was lost"
    refetched = sum(fetches.values()) - len(fetches)
    # Fetched again: only what was in flight at a kill, or ended after the last checkpoint
    # (one per CONCURRENCY // 4 ended chains); a redirect chain may cost its two requests.
    assert refetched <= kills * 2 * (CONCURRENCY + max(1, CONCURRENCY // 4)), (kills, refetched)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["items"] == PAGES and stats["pages"] == PAGES + 1  # totals across all runs
    assert stats["close_reason"] == "finished"

    # Run again: finished, nothing fetched, exit 0.
    before = len(server.hits)
    code, stderr = await run_crawler(tmp_path, *args)
    assert code == 0 and "already finished" in stderr, stderr
    assert len(server.hits) == before
    assert read_items(out, fmt) == items


async def test_ctrl_c_pauses_and_the_same_command_resumes(server, tmp_path):
    paths = shop(server)
    (tmp_path / "spider.py").write_text(SPIDER, encoding="utf-8")
    args = ["-a", f"base={server.url('').rstrip('/')}", "-o", "items.jsonl", "--state", "crawl.db",
            "--stats", "stats.json", "--log-level", "WARNING"]
    code, stderr = await run_crawler(tmp_path, *args, sigint_after=0.8)
    assert code == 130, stderr
    paused = json.loads((tmp_path / "stats.json").read_text())
    assert 0 < paused["items"] < PAGES
    code, stderr = await run_crawler(tmp_path, *args)
    assert code == 0, stderr
    items = read_items(tmp_path / "items.jsonl", "jsonl")
    assert sorted(i["url"] for i in items) == sorted(server.url(p) for p in paths)
    fetches = Counter(hit.path for hit in server.hits)
    assert max(fetches.values()) == 1, "a clean pause refetches nothing"
    assert {f"/r/{n}" for n in range(0, PAGES, 5)} <= set(fetches)
    assert json.loads((tmp_path / "stats.json").read_text())["items"] == PAGES


def test_a_state_file_of_another_spider_is_refused(tmp_path):
    spider = tmp_path / "spider.py"
    spider.write_text(SPIDER, encoding="utf-8")
    other = tmp_path / "other.py"
    other.write_text(SPIDER.replace('name = "shop"', 'name = "other"'), encoding="utf-8")
    # No pages (a bad URL), but the state file is now the shop's.
    assert run_to_end(tmp_path, "spider.py", "htp://nowhere", "crawl.db").returncode == 1
    result = run_to_end(tmp_path, "other.py", "htp://nowhere", "crawl.db")
    assert result.returncode == 2
    assert "holds a crawl of the spider 'shop', not 'other'" in result.stderr


async def test_changed_settings_apply_when_a_crawl_resumes(server, tmp_path):
    paths = shop(server)

    S = functools.partial(ItemsAndLinks, server.url("/"))

    state = str(tmp_path / "crawl.db")
    base = {"rate_limit": 0, "domain_concurrency": 4, "obey_robots": False, "state": state}
    first = await Crawler(S(), {**base, "max_pages": 20}).run()
    assert first.close_reason == "max_pages" and first.pages == 20
    second = await Crawler(S(), {**base, "max_pages": 50}).run()  # a higher limit: 30 more pages
    assert second.pages == 50 and second.close_reason == "max_pages"
    third = await Crawler(S(), base).run()  # no limit: to the end
    assert third.close_reason == "finished" and third.pages == PAGES + 1
    redirects = {f"/r/{n}": 1 for n in range(0, PAGES, 5)}
    assert Counter(hit.path for hit in server.hits) == Counter({"/": 1, **{p: 1 for p in paths}, **redirects})


async def test_a_request_that_cannot_be_stored_fails_at_enqueue_naming_it(server, tmp_path, caplog):
    server.route("/", "<a href='/next'>next</a>")
    server.route("/next", "<h1>next</h1>")

    class S(Spider):
        start_urls = [server.url("/")]

        async def parse(self, response):
            yield Request(server.url("/next"), callback=lambda r: None)  # not a spider method
            yield Request(server.url("/next?2"), meta={"when": object()})

    stats = await Crawler(S(), {"rate_limit": 0, "obey_robots": False, "state": str(tmp_path / "c.db")}).run()
    assert stats.filtered == {"unstorable": 2} and stats.pages == 1
    messages = [r for r in caplog.records if r.getMessage() == "unstorable_request"]
    assert len(messages) == 2
    assert "is not a method of the spider" in messages[0].reason
    assert "meta['when']" in messages[1].reason


def test_bad_state_path_is_a_usage_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "spider.py").write_text(SPIDER, encoding="utf-8")
    result = run_to_end(tmp_path, "spider.py", "http://x", "afile/c.db")
    assert result.returncode == 2 and "afile is not a directory" in result.stderr


async def test_a_resumed_crawl_that_already_has_max_items_fetches_nothing(server, tmp_path):
    shop(server)

    S = functools.partial(ItemsAndLinks, server.url("/"))

    settings = {"rate_limit": 0, "obey_robots": False, "state": str(tmp_path / "c.db"), "max_items": 5}
    first = await Crawler(S(), settings).run()
    assert first.items == 5 and first.close_reason == "max_items"
    fetched = len(server.hits)
    second = await Crawler(S(), settings).run()
    assert second.items == 5 and second.close_reason == "max_items"
    assert len(server.hits) == fetched  # nothing fetched only to drop its items


async def test_a_redirect_answered_after_stop_is_followed_when_the_crawl_resumes(server, tmp_path):
    async def slow_bounce(request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)
        raise web.HTTPFound("/target")

    server.route("/", "<a href='/r'>r</a>")
    server.route("/r", slow_bounce)
    server.route("/target", "<h1>target</h1>")

    S = functools.partial(ItemsAndLinks, server.url("/"), name="bounce")

    settings = {"rate_limit": 0, "obey_robots": False, "state": str(tmp_path / "c.db")}
    first = Crawler(S(), settings)
    run = asyncio.create_task(first.run())
    while not any(hit.path == "/r" for hit in server.hits):
        await asyncio.sleep(0.01)
    await first.stop()  # the redirect answers after this
    assert (await run).close_reason == "stopped"
    second = await Crawler(S(), settings).run()
    assert second.close_reason == "finished" and second.items == 1
    assert [hit.path for hit in server.hits].count("/target") == 1


async def test_a_start_url_that_bounces_back_to_itself_survives_a_resume(server, tmp_path):
    """/bounce -> /login -> /bounce (a login dance). Stopped mid-chain while start() was not
    exhausted, the resumed run calls start() again: the chain's hop back to the start URL is
    part of the chain, not a start request seen before."""
    visits = {"n": 0}

    async def bounce(request: web.Request) -> web.Response:
        visits["n"] += 1
        if visits["n"] == 1:
            await asyncio.sleep(0.3)  # in flight when the crawl is stopped
            raise web.HTTPFound("/login")
        return web.Response(text="<h1>in</h1>", content_type="text/html")

    async def login(request: web.Request) -> web.Response:
        raise web.HTTPFound("/bounce")

    server.route("/bounce", bounce)
    server.route("/login", login)

    class S(Spider):
        name = "bounce"

        async def start(self):
            yield Request(server.url("/bounce"))
            await asyncio.sleep(0.5)
            yield Request(server.url("/bounce"))  # start() goes on after the stop

        async def parse(self, response):
            yield {"url": response.url}

    settings = {"rate_limit": 0, "obey_robots": False, "state": str(tmp_path / "c.db")}
    first = Crawler(S(), settings)
    run = asyncio.create_task(first.run())
    while not server.hits:
        await asyncio.sleep(0.01)
    await first.stop()
    assert (await run).pages == 0
    stats = await Crawler(S(), settings).run()
    assert stats.pages == 1 and stats.items == 1, stats.filtered


async def test_links_refused_by_known_robots_rules_leave_nothing_queued(server, tmp_path):
    import sqlite3

    server.route("/robots.txt", "User-agent: *\nDisallow: /private\n", content_type="text/plain")
    server.route("/", "<a href='/a'>a</a><a href='/private/1'>p</a>")
    server.route("/a", "<a href='/private/2'>p</a><a href='/private/3'>p</a><h1>a</h1>")

    class S(Spider):
        name = "robots"
        start_urls = [server.url("/")]

        async def parse(self, response):
            for request in response.follow_all(css="a"):
                yield request

    settings = {"rate_limit": 0, "state": str(tmp_path / "c.db")}
    stats = await Crawler(S(), settings).run()
    assert stats.filtered.get("robots") == 3 and stats.close_reason == "finished"
    db = sqlite3.connect(tmp_path / "c.db")
    assert db.execute("SELECT count(*) FROM queue").fetchone() == (0,)
    db.close()


@pytest.mark.parametrize("content", [b"not a database at all, just some bytes" * 100, None])
def test_a_file_that_is_not_a_state_file_is_refused_and_left_alone(tmp_path, content):
    import sqlite3

    state = tmp_path / "other.db"
    if content is None:  # another program's SQLite database
        db = sqlite3.connect(state)
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        db.commit()
        db.close()
    else:
        state.write_bytes(content)
    before = state.read_bytes()
    (tmp_path / "spider.py").write_text(SPIDER, encoding="utf-8")
    result = run_to_end(tmp_path, "spider.py", "http://127.0.0.1:9", str(state))
    assert result.returncode == 2, result.stderr
    assert "state file" in result.stderr.splitlines()[-1]
    assert state.read_bytes() == before


def test_a_finished_crawl_exits_0_even_if_it_had_no_page(tmp_path):
    (tmp_path / "spider.py").write_text(SPIDER, encoding="utf-8")
    first = run_to_end(tmp_path, "spider.py", "htp://x", "c.db")
    assert first.returncode == 1 and "no pages crawled" in first.stderr
    again = run_to_end(tmp_path, "spider.py", "htp://x", "c.db")
    assert again.returncode == 0 and "already finished" in again.stderr, again.stderr


async def test_an_item_an_exporter_drops_is_not_counted_as_an_item(tmp_path, server):
    from crawler import DropItem, Pipeline

    server.route("/", "<h1>x</h1>")

    class Picky(Pipeline):
        async def process_item(self, item, spider):
            raise DropItem("picky")

    class S(Spider):
        start_urls = [server.url("/")]

        async def parse(self, response):
            yield {"a": 1}
            yield {"b": 2}

    for state in (None, str(tmp_path / "c.db")):
        stats = await Crawler(S(), {"obey_robots": False, "state": state}, exporters=[Picky]).run()
        assert stats.items == 0 and stats.items_dropped == {"picky": 2}, state


async def test_a_retry_after_pause_outlives_a_restart(server, tmp_path):
    """The server asked for 2 s of rest; the crawl is paused and resumed at once: the
    resumed run still waits out the rest before it asks that server again."""
    answers = {"n": 0}

    async def busy(request: web.Request) -> web.Response:
        answers["n"] += 1
        if answers["n"] == 1:
            return web.Response(status=429, headers={"Retry-After": "2"})
        return web.Response(text="<h1>ok</h1>", content_type="text/html")

    server.route("/busy", busy)

    class S(Spider):
        name = "busy"
        start_urls = [server.url("/busy")]

        async def parse(self, response):
            yield {"url": response.url}

    settings = {"rate_limit": 0, "obey_robots": False, "state": str(tmp_path / "c.db")}
    first = Crawler(S(), settings)
    run = asyncio.create_task(first.run())
    while not server.hits:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the 429 is in: the domain is paused
    await first.stop()
    await run
    second = await Crawler(S(), settings).run()
    assert second.items == 1
    first_hit, second_hit = server.hits_for("/busy")[:2]
    assert second_hit.at - first_hit.at >= 1.9, "the resumed run asked before the pause ended"


class Begun(Spider):
    """ItemsAndLinks begun by ``start()`` alone: no ``start_urls``."""

    name = "shop"

    def __init__(self, start: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.start_at = start

    async def start(self):
        yield Request(self.start_at)

    parse = ItemsAndLinks.parse


async def test_a_local_crawl_begun_by_start_stays_local_when_it_resumes(server, tmp_path):
    # block_private_addresses=auto is off for a crawl whose start requests are local. A resumed
    # run does not call start() again and may hold no start request: the decision is the crawl's.
    paths = shop(server)
    settings = {"rate_limit": 0, "domain_concurrency": 4, "obey_robots": False, "state": str(tmp_path / "c.db")}
    first = await Crawler(Begun(server.url("/")), {**settings, "max_pages": 20}).run()
    assert first.close_reason == "max_pages" and first.failures == {}
    second = await Crawler(Begun(server.url("/")), settings).run()
    assert second.failures == {}, "no page of the local site is refused on resume"
    assert second.close_reason == "finished" and second.pages == PAGES + 1
    assert {hit.path for hit in server.hits} >= set(paths)
