"""The downloader protocol: choosing one, writing one, and what every one of them returns.

The misbehaving-server, timeout and Retry-After suites (test_hardening, test_deadlines,
test_retries) run over every downloader; this file covers the protocol itself.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
from aiohttp import web
from multidict import CIMultiDictProxy
from support import DOWNLOADERS, FAST, RecordingSpider, html, links, over_downloaders

from crawler import (
    Crawler,
    Downloader,
    Headers,
    ReadProgress,
    Request,
    Response,
    Settings,
    SettingsError,
    Spider,
    read_capped,
)
from crawler._downloader import Fetcher, Network, load_downloader


@over_downloaders
async def test_headers_are_the_same_type_and_keep_every_value(downloader, server):
    async def cookies(request: web.Request) -> web.Response:
        response = web.Response(text=html("set"), content_type="text/html")
        response.headers.add("X-Repeated", "one")
        response.headers.add("X-Repeated", "two")
        return response

    server.route("/", cookies)
    spider = RecordingSpider([server.url("/")])

    await Crawler(spider, FAST).run()

    headers = spider.parsed[0].headers
    assert isinstance(headers, CIMultiDictProxy)  # crawler.Headers
    assert Headers == CIMultiDictProxy[str]
    assert headers.getall("x-repeated") == ["one", "two"]
    assert headers["content-type"].startswith("text/html")


@over_downloaders
async def test_a_request_goes_out_once_with_its_own_headers_over_the_defaults(downloader, server):
    server.route("/", html("home"))

    class S(Spider):
        async def start(self):
            yield Request(server.url("/"), headers={"User-Agent": "mine/1.0", "X-Extra": "yes"})

        async def parse(self, response: Response):
            yield {"ok": True}

    stats = await Crawler(S(), FAST).run()

    assert stats.pages == 1
    [hit] = server.hits
    assert hit.headers["User-Agent"] == "mine/1.0"
    assert hit.headers["X-Extra"] == "yes"
    assert "gzip" in hit.headers["Accept-Encoding"]


@over_downloaders
async def test_a_redirect_comes_back_as_a_response_and_the_engine_follows_it(downloader, server):
    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/there")

    server.route("/here", moved)
    server.route("/there", html("there"))
    spider = RecordingSpider([server.url("/here")])

    stats = await Crawler(spider, FAST).run()

    assert stats.redirected == 1
    assert [r.url for r in spider.parsed] == [server.url("/there")]
    assert [hit.path for hit in server.hits] == ["/here", "/there"]


@pytest.mark.parametrize("name", DOWNLOADERS)
async def test_aclose_is_safe_twice_and_a_closed_downloader_refuses_to_fetch(name, server):
    server.route("/", html("home"))
    fetcher = Fetcher(load_downloader(name)(), Settings(**FAST))
    await fetcher.open()
    assert (await fetcher.fetch(Request(server.url("/")))).status == 200
    await fetcher.aclose()
    await fetcher.aclose()
    with pytest.raises(Exception, match="closed"):
        await fetcher.fetch(Request(server.url("/")))


def test_an_unknown_downloader_name_is_a_settings_error_naming_the_known_ones():
    with pytest.raises(SettingsError, match="no downloader named 'nope'") as caught:
        Crawler(RecordingSpider(["http://127.0.0.1:9/"]), {"downloader": "nope"})
    assert "aiohttp" in str(caught.value) and "httpx" in str(caught.value)


async def test_something_that_is_not_a_downloader_is_refused():
    with pytest.raises(TypeError, match="not a downloader"):
        await Crawler(RecordingSpider(["http://127.0.0.1:9/"]), FAST, downloader=object()).run()  # type: ignore[arg-type]


def test_session_and_downloader_together_are_refused():
    import aiohttp

    async def both() -> None:
        async with aiohttp.ClientSession() as session:
            Crawler(RecordingSpider(["http://127.0.0.1:9/"]), session=session, downloader=load_downloader("aiohttp")())

    with pytest.raises(TypeError, match="session= or downloader="):
        asyncio.run(both())


class Canned:
    """A downloader of one's own: answers from a dict, no network. The engine treats it as
    any other (robots, redirects, dedupe and limits all apply around it)."""

    def __init__(self, pages: dict[str, bytes]) -> None:
        self.pages = pages
        self.fetched: list[str] = []
        self.opened = self.closed = 0

    async def open(self, settings: Settings, network: Network) -> None:
        self.opened += 1

    async def fetch(self, request: Request, progress: ReadProgress) -> Response:
        self.fetched.append(request.url)
        body = self.pages.get(request.url)
        if body is None:
            return Response(request.url, 404, {}, b"", request)

        async def chunks():
            yield body

        data, _ = await read_capped(chunks(), request, 1 << 20, progress)
        return Response(request.url, 200, {"Content-Type": "text/html"}, data, request)

    async def aclose(self) -> None:
        self.closed += 1


async def test_a_downloader_of_ones_own_plugs_in():
    pages = {
        "http://canned.example/": links("/a", "/b").encode(),
        "http://canned.example/a": html("a").encode(),
        "http://canned.example/b": html("b").encode(),
    }
    canned = Canned(pages)
    assert isinstance(canned, Downloader)

    class S(Spider):
        start_urls = ["http://canned.example/"]
        allowed_domains = ["canned.example"]

        async def parse(self, response: Response):
            yield {"url": response.url, "headers": type(response.headers).__name__}
            for request in response.follow_all(css="a"):
                yield request

    stats = await Crawler(S(), {**FAST, "obey_robots": True}, downloader=canned).run()

    assert stats.pages == 3
    assert sorted(canned.fetched) == ["http://canned.example/", "http://canned.example/a",
                                      "http://canned.example/b", "http://canned.example/robots.txt"]
    assert (canned.opened, canned.closed) == (1, 1)


def test_the_httpx_downloader_exits_cleanly_from_the_command_line(tmp_path, server_process):
    spider = tmp_path / "spider.py"
    spider.write_text(textwrap.dedent(f"""
        from crawler import Spider

        class One(Spider):
            start_urls = ["{server_process}"]

            async def parse(self, response):
                yield {{"status": response.status}}
    """))
    out = tmp_path / "items.jsonl"

    done = subprocess.run(
        [sys.executable, "-m", "crawler", "run", str(spider), "-o", str(out), "-s", "downloader=httpx",
         "-s", "obey_robots=false"],
        capture_output=True, text=True, timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert out.read_text().strip() == '{"status": 200}'
    assert "Traceback" not in done.stderr and "Fatal" not in done.stderr


@pytest.fixture
def server_process(tmp_path):
    """A plain HTTP server in its own process (the crawl under test is a subprocess too)."""
    (tmp_path / "index.html").write_text(html("home"))
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N ..."
        port = int(line.split(" port ")[1].split()[0])
        yield f"http://127.0.0.1:{port}/index.html"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
