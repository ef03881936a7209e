"""Hardening: crawls against a server that misbehaves, one bad case among good pages each time.

Every test checks the same things: the bad case ends in exactly one recorded outcome with a
clear reason, the crawl goes on to ``finished``, every item from the good pages arrives, and
the counters add up (:func:`assert_accounted`). The misbehaving server (:class:`HostileServer`)
is the support ``TestServer`` (aiohttp, for answers an HTTP server library can still be made
to send) plus a raw socket server for what aiohttp refuses to do: reset, fall silent, lie
about a length. Both listen on loopback only and are stopped by the fixture.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from email.utils import formatdate

import brotli
import pytest
from aiohttp import web
from support import FAST, Collect, TestServer, html, links, over_downloaders
from yarl import URL

from crawler import BaseMiddleware, Crawler, CrawlStats, Failure, IgnoreRequest, Request, Response, Spider
from crawler._url import join

RawHandler = Callable[[asyncio.StreamWriter], Awaitable[None]]
# The whole suite runs once per downloader (aiohttp, httpx): each meets the same contract.
pytestmark = [over_downloaders, pytest.mark.usefixtures("downloader")]

LOOPBACK = ("127.0.0.1", "127.0.0.2")
GOOD = ("/good/1", "/good/2", "/good/3")
MB = 1024 * 1024


# -- the hostile server ---------------------------------------------------------------------


class HostileServer(TestServer):
    """``TestServer`` on 127.0.0.1/.2 plus a raw ``asyncio`` server on 127.0.0.1 (another port).

    A raw route's handler gets the connection's writer after the request head was read (and
    counted in ``raw_hits`` by path); the connection is closed when the handler returns.
    """

    __test__ = False

    def __init__(self) -> None:
        super().__init__()
        self.raw_routes: dict[str, RawHandler] = {}
        self.raw_hits: Counter[str] = Counter()
        self.raw_port = 0
        self._raw_server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()

    def raw_route(self, path: str, handler: RawHandler) -> None:
        self.raw_routes[path] = handler

    def raw_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.raw_port}{path}"

    async def start(self) -> None:
        await super().start()
        self._raw_server = await asyncio.start_server(self._serve_raw, "127.0.0.1", 0)
        self.raw_port = self._raw_server.sockets[0].getsockname()[1]

    async def _serve_raw(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode("latin-1")
            self.raw_hits[path] += 1
            handler = self.raw_routes.get(path)
            if handler is None:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
            else:
                await handler(writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            self._connections.discard(task)

    async def close(self) -> None:
        if self._raw_server is not None:
            self._raw_server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._raw_server.wait_closed()
        await super().close()


@pytest.fixture
async def hostile():
    srv = HostileServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


# -- the crawling side ----------------------------------------------------------------------


class LoopbackOnly(BaseMiddleware):
    """Never let a test crawl leave loopback (a URL bug could otherwise reach DNS or the net)."""

    async def process_request(self, request: Request) -> None:
        if URL(request.url).host not in LOOPBACK:
            raise IgnoreRequest("left_loopback")


class Probe(Spider):
    """Fetches ``urls`` (errback recording failures); one item per page (path, title, links);
    with ``follow`` it also follows every ``<a>``. Counts every Request it issues."""

    def __init__(self, urls: list[str], *, follow: bool = False) -> None:
        super().__init__()
        self.urls = urls
        self.follow = follow
        self.issued = 0
        self.parsed: list[Response] = []
        self.failures: list[Failure] = []

    async def start(self):
        for url in self.urls:
            self.issued += 1
            yield Request(url, errback=self.on_error, dont_filter=True)

    async def parse(self, response: Response):
        self.parsed.append(response)
        yield {
            "path": raw_path(response.url),
            "title": response.css("title::text").get(),
            "links": len(response.css("a")),
            "text": response.text,
        }
        if self.follow:
            # Every distinct link counts as issued: follow_all hands the frontier the ones it
            # would drop (malformed, seen, offsite) as counted outcomes without building Requests.
            hrefs = [h for h in response.css("a::attr(href)").getall() if h]
            self.issued += len({join(response.base_url, h) for h in hrefs})
            for request in response.follow_all(css="a", errback=self.on_error):
                yield request

    async def on_error(self, failure: Failure):
        self.failures.append(failure)

    def failed(self) -> dict[str, str]:
        """Path -> reason of every failure; a request failing twice is itself a failure."""
        paths = [raw_path(f.url) for f in self.failures]
        assert len(paths) == len(set(paths)), f"a request ended twice: {paths}"
        return {raw_path(f.url): f.reason for f in self.failures}

    def parsed_paths(self) -> set[str]:
        paths = [raw_path(r.url) for r in self.parsed]
        assert len(paths) == len(set(paths)), f"a page was handed to the spider twice: {paths}"
        return set(paths)


def raw_path(url: str) -> str:
    """The path as sent on the wire (the crawler's URLs are already encoded)."""
    return URL(url, encoded=True).raw_path


def add_good_pages(srv: TestServer) -> list[str]:
    for path in GOOD:
        srv.route(path, html(f"content of {path}", title=f"good {path}"))
    return [srv.url(path) for path in GOOD]


def assert_good_items(collect: Collect) -> None:
    titles = [item["title"] for item in collect.items if item["path"] in GOOD]
    assert sorted(titles) == sorted(f"good {path}" for path in GOOD)


def assert_accounted(stats: CrawlStats, spider: Probe) -> None:
    failures, filtered = sum(stats.failures.values()), sum(stats.filtered.values())
    # Every download attempt ended one way: a page, a retry, a redirect hop, or a failure.
    assert stats.requests == stats.pages + stats.retries + stats.redirected + failures, stats
    # Every Request (the spider's, plus one per redirect hop) ended in exactly one outcome.
    assert stats.pages + failures + filtered + stats.redirected == spider.issued + stats.redirected, stats
    assert stats.queued == 0
    assert stats.close_reason == "finished"


async def crawl(spider: Probe, **settings) -> tuple[CrawlStats, Collect]:
    collect = Collect()
    crawler = Crawler(spider, {**FAST, "retries": 2, **settings}, middlewares=[LoopbackOnly()], pipelines=[collect])
    stats = await crawler.run()
    assert_accounted(stats, spider)
    return stats, collect


def raw_response(*headers: str, body: bytes = b"", status: str = "200 OK") -> bytes:
    head = "".join(f"{h}\r\n" for h in (f"HTTP/1.1 {status}", *headers))
    return head.encode("latin-1") + b"\r\n" + body


# -- connections dropped without an answer ----------------------------------------------------


async def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # SO_LINGER 0: the close is a TCP RST


async def _hang_up(writer: asyncio.StreamWriter) -> None:
    writer.close()  # a FIN, and not one byte of answer


async def _cut_in_headers(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/ht")
    await writer.drain()


@pytest.mark.parametrize(
    ("handler", "reasons"),
    [
        (_reset, {"connection_error", "server_disconnected"}),
        (_hang_up, {"server_disconnected"}),
        (_cut_in_headers, {"server_disconnected", "incomplete_body", "bad_response"}),
    ],
    ids=["reset", "closed-without-answer", "closed-mid-headers"],
)
async def test_dropped_connection_is_retried_then_failed(hostile, handler, reasons):
    hostile.raw_route("/drop", handler)
    spider = Probe([*add_good_pages(hostile), hostile.raw_url("/drop")])

    stats, collect = await crawl(spider, retries=2)

    [(reason, count)] = stats.failures.items()
    assert reason in reasons and count == 1
    assert spider.failed() == {"/drop": reason}
    assert "/drop" not in spider.parsed_paths()
    assert stats.pages == len(GOOD)
    assert_good_items(collect)
    assert stats.retries == 2
    assert hostile.raw_hits["/drop"] == 3, "retries=2 means exactly 3 attempts reach the server"


# -- bodies shorter than announced ------------------------------------------------------------


async def _short_content_length(writer: asyncio.StreamWriter) -> None:
    writer.write(raw_response("Content-Type: text/html", "Content-Length: 1000", body=b"<html><title>short"))
    await writer.drain()


async def _truncated_chunked(writer: asyncio.StreamWriter) -> None:
    body = b"40\r\n<html><title>chunked</title>"  # announces 0x40 bytes, sends 27, closes
    writer.write(raw_response("Content-Type: text/html", "Transfer-Encoding: chunked", body=body))
    await writer.drain()


async def test_bodies_shorter_than_announced_fail_incomplete_body(hostile):
    hostile.raw_route("/short", _short_content_length)
    hostile.raw_route("/chunked", _truncated_chunked)
    spider = Probe([*add_good_pages(hostile), hostile.raw_url("/short"), hostile.raw_url("/chunked")])

    stats, collect = await crawl(spider, retries=1)

    assert stats.failures == {"incomplete_body": 2}
    assert spider.failed() == {"/short": "incomplete_body", "/chunked": "incomplete_body"}
    assert hostile.raw_hits["/short"] == 2 and hostile.raw_hits["/chunked"] == 2  # retried once each
    assert spider.parsed_paths() == set(GOOD), "a truncated body must never reach the spider"
    assert_good_items(collect)


# -- silence and trickles ---------------------------------------------------------------------


async def _silent(writer: asyncio.StreamWriter) -> None:
    await asyncio.Event().wait()  # accepts, reads the request, never answers (cancelled at teardown)


async def _trickle(writer: asyncio.StreamWriter) -> None:
    writer.write(raw_response("Content-Type: text/html", "Content-Length: 100"))
    for _ in range(100):  # one byte a second: the whole answer would take 100 s
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(1)


async def test_server_that_never_answers_times_out(hostile):
    hostile.raw_route("/silent", _silent)
    spider = Probe([*add_good_pages(hostile), hostile.raw_url("/silent")])

    stats, collect = await crawl(spider, retries=1, timeout=0.5)

    assert stats.failures == {"timeout": 1}
    assert spider.failed() == {"/silent": "timeout"}
    assert hostile.raw_hits["/silent"] == 2
    assert stats.pages == len(GOOD)
    assert_good_items(collect)


async def test_server_trickling_a_byte_a_second_hits_read_timeout(hostile):
    hostile.raw_route("/trickle", _trickle)
    spider = Probe([*add_good_pages(hostile), hostile.raw_url("/trickle")])

    stats, collect = await crawl(spider, retries=1, read_timeout=0.3, timeout=10)

    assert stats.failures == {"timeout": 1}
    assert spider.failed() == {"/trickle": "timeout"}
    assert hostile.raw_hits["/trickle"] == 2
    assert stats.pages == len(GOOD)
    assert_good_items(collect)


# -- compression bombs ------------------------------------------------------------------------

BOMB_SIZE = 100 * MB
BOMB_CAP = 1 * MB


def _compress_zeros(encoding: str, size: int = BOMB_SIZE, chunk: int = MB) -> bytes:
    """``size`` zero bytes compressed with ``encoding``, built chunk by chunk (never ``size`` at once)."""
    if encoding == "br":
        br = brotli.Compressor(quality=5)
        process, finish = br.process, br.finish
    else:
        z = zlib.compressobj(9, zlib.DEFLATED, 31 if encoding == "gzip" else 15)  # 15: zlib-wrapped deflate
        process, finish = z.compress, z.flush
    zeros = bytes(chunk)
    return b"".join([*(process(zeros) for _ in range(size // chunk)), finish()])


def _peak_rss_bytes() -> int:
    """The process's RSS high-water mark. /proc's VmHWM is what clear_refs resets; getrusage's
    ru_maxrss also keeps the peak of exited threads (e.g. getaddrinfo workers), which it does not."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_compression_bomb_is_stopped_at_the_cap_while_inflating(hostile, encoding):
    bomb = _compress_zeros(encoding)
    assert len(bomb) < 200_000  # 100 MB of zeros

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": encoding, "Content-Type": "text/html"})

    hostile.route("/bomb", handler)
    spider = Probe([*add_good_pages(hostile), hostile.url("/bomb")])
    if not _reset_peak_rss():
        pytest.skip("cannot reset the RSS high-water mark here (/proc/self/clear_refs)")
    before = _peak_rss_bytes()

    stats, collect = await crawl(spider, max_response_bytes=BOMB_CAP)

    growth = _peak_rss_bytes() - before
    assert stats.failures == {"too_large": 1}
    assert spider.failed() == {"/bomb": "too_large"}
    assert len(hostile.hits_for("/bomb")) == 1, "too_large is not retried"
    assert spider.parsed_paths() == set(GOOD)
    assert_good_items(collect)
    assert stats.bytes < BOMB_CAP  # only the good pages' bytes are counted
    assert growth < 20 * MB, f"peak RSS grew by {growth / MB:.1f} MB for a {BOMB_CAP / MB:.0f} MB cap"


# -- endless and huge bodies ------------------------------------------------------------------


class Streamer:
    """An aiohttp handler streaming ``total`` bytes (None: forever) in 64 KiB writes; records
    how much it got out and whether the client hung up before the end."""

    def __init__(self, total: int | None, *, chunked: bool) -> None:
        self.total = total
        self.chunked = chunked
        self.sent = 0
        self.completed = False
        self.dropped = asyncio.Event()

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "text/html"}
        if not self.chunked:
            headers["Content-Length"] = str(self.total)
        resp = web.StreamResponse(headers=headers)
        if self.chunked:
            resp.enable_chunked_encoding()
        await resp.prepare(request)
        block = b"<p>" + b"x" * (64 * 1024 - 3)
        try:
            while self.total is None or self.sent < self.total:
                await resp.write(block)
                self.sent += len(block)
            await resp.write_eof()
            self.completed = True
        except (ConnectionError, RuntimeError):
            self.dropped.set()
        return resp


async def _close_delimited_huge(writer: asyncio.StreamWriter) -> None:
    # HTTP/1.0 style: no length, no chunking, the body ends when the connection does.
    writer.write(raw_response("Content-Type: text/html", "Connection: close"))
    block = b"y" * 64 * 1024
    for _ in range(64 * MB // len(block)):
        writer.write(block)
        await writer.drain()


async def test_endless_and_huge_bodies_stop_at_the_cap_and_drop_the_connection(hostile):
    endless = Streamer(None, chunked=True)
    huge = Streamer(64 * MB, chunked=False)
    huge_chunked = Streamer(64 * MB, chunked=True)
    hostile.route("/endless", endless)
    hostile.route("/huge", huge)
    hostile.route("/huge-chunked", huge_chunked)
    hostile.raw_route("/huge-raw", _close_delimited_huge)
    bad = [hostile.url("/endless"), hostile.url("/huge"), hostile.url("/huge-chunked"), hostile.raw_url("/huge-raw")]
    spider = Probe([*add_good_pages(hostile), *bad])

    stats, collect = await crawl(spider, max_response_bytes=BOMB_CAP)

    assert stats.failures == {"too_large": 4}
    assert spider.failed() == {p: "too_large" for p in ("/endless", "/huge", "/huge-chunked", "/huge-raw")}
    assert spider.parsed_paths() == set(GOOD)
    assert_good_items(collect)
    assert hostile.raw_hits["/huge-raw"] == 1
    for path in ("/endless", "/huge", "/huge-chunked"):
        assert len(hostile.hits_for(path)) == 1, path
    # The client hung up instead of draining: each stream was cut well before its end.
    for streamer in (endless, huge, huge_chunked):
        await asyncio.wait_for(streamer.dropped.wait(), timeout=10)  # deadlock guard only
        assert not streamer.completed
        assert streamer.sent < 64 * MB


# -- redirects --------------------------------------------------------------------------------


def _redirect_to(location: str | None, status: int = 302):
    async def handler(request: web.Request) -> web.Response:
        headers = {} if location is None else {"Location": location}
        return web.Response(status=status, headers=headers)

    return handler


async def test_bad_redirects_each_end_in_one_clear_outcome(hostile):
    for i in range(20):
        hostile.route(f"/chain/{i}", _redirect_to(f"/chain/{i + 1}", 301 if i % 2 else 302))
    hostile.route("/to-ftp", _redirect_to("ftp://127.0.0.1/file"))
    hostile.route("/to-js", _redirect_to("javascript:alert(1)"))
    hostile.route("/to-broken-ipv6", _redirect_to("http://[::1/x"))
    hostile.route("/no-location", _redirect_to(None))
    bad = ["/chain/0", "/to-ftp", "/to-js", "/to-broken-ipv6", "/no-location"]
    spider = Probe([*add_good_pages(hostile), *(hostile.url(p) for p in bad)])

    stats, collect = await crawl(spider, max_redirects=3)

    assert [h.path for h in hostile.hits_for() if h.path.startswith("/chain/")] == [f"/chain/{i}" for i in range(4)]
    assert stats.failures == {"max_redirects": 1, "http_302": 1}
    assert stats.filtered == {"bad_url": 3}  # ftp:, javascript: and the broken IPv6 target
    assert stats.redirected == 3 + 3
    assert spider.failed() == {"/chain/3": "max_redirects", "/no-location": "http_302"}
    assert spider.parsed_paths() == set(GOOD)
    assert_good_items(collect)


async def test_redirect_to_a_location_with_non_utf8_bytes_does_not_crash_the_crawl(hostile, downloader):
    # "Location: /caf\xe9" (Latin-1): aiohttp hands the byte over as the surrogate "\udce9".
    # The hop must end in one outcome: followed with the byte percent-encoded (what browsers
    # do) or filtered as bad_url, never an exception out of the crawl.
    async def latin1_location(writer: asyncio.StreamWriter) -> None:
        writer.write(raw_response("Location: /caf\xe9", "Content-Length: 0", "Connection: close", status="302 Found"))
        await writer.drain()

    async def target(writer: asyncio.StreamWriter) -> None:
        body = html("latin-1 target", title="target").encode()
        head = ("Content-Type: text/html", f"Content-Length: {len(body)}", "Connection: close")
        writer.write(raw_response(*head, body=body))
        await writer.drain()

    hostile.raw_route("/latin1-location", latin1_location)
    hostile.raw_route("/caf%E9", target)
    spider = Probe([*add_good_pages(hostile), hostile.raw_url("/latin1-location")])

    stats, collect = await crawl(spider)

    if downloader == "pyreqwest":  # it cannot read a header value that is not ASCII (its docstring)
        assert stats.failures == {"bad_response": 1}
        assert spider.failed() == {"/latin1-location": "bad_response"}
        assert spider.parsed_paths() == set(GOOD)
        assert_good_items(collect)
        return
    assert stats.redirected == 1
    assert stats.failures == {}
    if stats.filtered:
        assert stats.filtered == {"bad_url": 1}
        assert spider.parsed_paths() == set(GOOD)
    else:
        assert spider.parsed_paths() == {*GOOD, "/caf%E9"}
        assert hostile.raw_hits["/caf%E9"] == 1
    assert_good_items(collect)


# -- charsets ---------------------------------------------------------------------------------


def _page(title: str, next_path: str, meta: str = "") -> str:
    return f"<html><head>{meta}<title>{title}</title></head><body><a href='{next_path}'>next</a></body></html>"


CHARSET_CASES = {
    # path: (Content-Type, body, the title the spider must see)
    "/cs/invalid-utf8": (
        "text/html; charset=utf-8",
        _page("bad \udcff bytes", "/cs/next/1").encode("utf-8", "surrogateescape"),
        "bad \ufffd bytes",
    ),
    "/cs/no-charset": ("text/html", _page("naïve café", "/cs/next/2").encode("cp1252"), "naïve café"),
    "/cs/meta-lies": (
        "text/html",
        _page("café", "/cs/next/3", "<meta charset='utf-8'>").encode("cp1252"),
        "caf\ufffd",
    ),
    "/cs/meta-unknown": (
        "text/html",
        _page("plain", "/cs/next/4", "<meta charset='x-no-such-charset'>").encode(),
        "plain",
    ),
    "/cs/header-unknown": ("text/html; charset=bogus-9", _page("plain too", "/cs/next/5").encode(), "plain too"),
    "/cs/utf16-bom": (
        "text/html; charset=iso-8859-1",  # the header lies too: the BOM wins
        b"\xff\xfe" + _page("utf-16 é ✓", "/cs/next/6").encode("utf-16-le"),
        "utf-16 é ✓",
    ),
    "/cs/utf16be-bom-no-header-charset": (
        "text/html",
        b"\xfe\xff" + _page("big endian ✓", "/cs/next/7").encode("utf-16-be"),
        "big endian ✓",
    ),
}


def _bytes_route(srv: TestServer, path: str, content_type: str, body: bytes) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, headers={"Content-Type": content_type})

    srv.route(path, handler)


async def test_bad_charsets_never_raise_and_items_come_out(hostile):
    for path, (ctype, body, _) in CHARSET_CASES.items():
        _bytes_route(hostile, path, ctype, body)
    for i in range(1, len(CHARSET_CASES) + 1):
        hostile.route(f"/cs/next/{i}", html(f"next {i}", title=f"next {i}"))
    spider = Probe([*add_good_pages(hostile), *(hostile.url(p) for p in CHARSET_CASES)], follow=True)

    stats, collect = await crawl(spider)

    titles = {item["path"]: item["title"] for item in collect.items}
    assert {p: titles.get(p) for p in CHARSET_CASES} == {p: case[2] for p, case in CHARSET_CASES.items()}
    # Every page's link was found in its decoded text and followed.
    assert {f"/cs/next/{i}" for i in range(1, len(CHARSET_CASES) + 1)} <= set(titles)
    assert stats.callback_errors == 0
    assert stats.failures == {}
    assert_good_items(collect)


async def test_meta_charset_claiming_utf16_on_an_ascii_page_is_read_as_utf8(hostile):
    # An ASCII page whose <meta> says utf-16 (a common editor mistake). It cannot be: a <meta>
    # found by scanning bytes as ASCII is not UTF-16, and HTML's prescan maps it to UTF-8.
    body = _page("says utf-16", "/cs/next/after-utf16", "<meta charset='utf-16'>").encode()
    _bytes_route(hostile, "/cs/meta-utf16", "text/html", body)
    hostile.route("/cs/next/after-utf16", html("after", title="after utf-16"))
    spider = Probe([*add_good_pages(hostile), hostile.url("/cs/meta-utf16")], follow=True)

    stats, collect = await crawl(spider)

    assert stats.failures == {}
    titles = {item["path"]: item["title"] for item in collect.items}
    assert titles.get("/cs/meta-utf16") == "says utf-16"
    assert titles.get("/cs/next/after-utf16") == "after utf-16"
    assert_good_items(collect)


# -- content that is not HTML -----------------------------------------------------------------

ANCHOR = b'<html><a href="/x">x</a></html>'
NON_HTML = {
    "/doc.pdf": ("application/pdf", b"%PDF-1.4\n1 0 obj << /URI (" + ANCHOR + b") >>\n%%EOF"),
    "/img.png": ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + ANCHOR + b"\x00\xff\xfe"),
    "/data.json": ("application/json", b'{"html": "<a href=\\"/x\\">x</a>"}'),
    "/blob": ("application/octet-stream", b"\x00\x01" + ANCHOR),
    "/notes.txt": ("text/plain; charset=utf-8", ANCHOR),
}


async def test_non_html_content_yields_no_links_and_no_crash(hostile):
    for path, (ctype, body) in NON_HTML.items():
        _bytes_route(hostile, path, ctype, body)
    hostile.route("/x", html("must not be reached"))
    spider = Probe([*add_good_pages(hostile), *(hostile.url(p) for p in NON_HTML)], follow=True)

    stats, collect = await crawl(spider)

    assert hostile.hits_for("/x") == [], "a link inside a PDF/PNG/JSON body was followed"
    by_path = {item["path"]: item for item in collect.items}
    for path in NON_HTML:
        assert by_path[path]["links"] == 0, path
        assert by_path[path]["title"] is None, path
    assert spider.parsed_paths() == {*GOOD, *NON_HTML}
    assert stats.callback_errors == 0
    assert stats.failures == {} and stats.filtered == {}
    assert_good_items(collect)


# -- malformed hrefs --------------------------------------------------------------------------

# href as written in the page -> the path the server must see (followed), or None (bad_url)
HREFS = {
    "http://[::1": None,  # unclosed IPv6 bracket
    "http://[::1/x": None,
    "/with space": "/with%20space",  # valid once percent-encoded
    "/bad%zz": "/bad%zz",  # not a valid escape, but canonicalize keeps it as it is and so does the server
    "/nul\x00x": "/nulx",  # the HTML parser drops NUL before anyone sees the href
    "/ctl\x01x": "/ctl%01x",  # control characters: percent-encoded, as a browser does
    "/del\x7fx": "/del%7Fx",
    "/tab\tx": "/tabx",  # URL parsing strips tabs and newlines (as browsers do)
    "/" + "a" * 10_000: None,  # longer than any server accepts
    "javascript:alert(1)": None,
    "mailto:someone@example.com": None,
    "data:text/plain,hello": None,
    "tel:+1234": None,
    "ftp://127.0.0.1/file": None,
    "http://127.0.0.1:99999/": None,  # port out of range
    "http://:80/x": None,  # no host
    "/good/after-the-bad-ones": "/good/after-the-bad-ones",
}


async def test_malformed_hrefs_are_each_filtered_and_the_good_ones_followed(hostile):
    anchors = "".join(f'<a href="{href}">x</a>' for href in HREFS)
    body = f"<html><head><title>hrefs</title></head><body>{anchors}</body></html>".encode()
    _bytes_route(hostile, "/hrefs", "text/html; charset=utf-8", body)
    followed = {target for target in HREFS.values() if target is not None}
    for target in followed:
        hostile.route(URL(target, encoded=True).path, html(target, title=f"followed {target}"))
    spider = Probe([*add_good_pages(hostile), hostile.url("/hrefs")], follow=True)

    stats, collect = await crawl(spider)

    bad = sum(target is None for target in HREFS.values())
    assert stats.filtered == {"bad_url": bad}
    assert stats.failures == {}
    assert stats.callback_errors == 0
    assert {raw_path(r.url) for r in spider.parsed} == {*GOOD, "/hrefs", *followed}
    assert {item["title"] for item in collect.items} >= {f"followed {t}" for t in followed}
    assert_good_items(collect)


async def test_control_character_inside_a_tag_does_not_cost_the_page_its_links(hostile):
    # A stray control byte in a tag becomes an attribute *name* for the HTML parser; the
    # page's links, the broken tag's own href included, must still be followed.
    body = b'<html><title>ctl</title><a href="/good/1">1</a><a href="/good/2" \x01>2</a><a href="/good/3">3</a></html>'
    _bytes_route(hostile, "/ctl-tag", "text/html; charset=utf-8", body)
    add_good_pages(hostile)
    spider = Probe([hostile.url("/ctl-tag")], follow=True)

    stats, collect = await crawl(spider)

    assert stats.callback_errors == 0
    assert spider.parsed_paths() == {"/ctl-tag", *GOOD}
    assert_good_items(collect)


async def test_href_with_a_space_in_the_host_is_bad_url(hostile):
    # A space is never valid in a host name; percent-encoding cannot make it one.
    hostile.route("/space-host", links("http://exa mple.com/", "http://127.0.0.1 .evil/", *GOOD))
    spider = Probe([hostile.url("/space-host")], follow=True)
    add_good_pages(hostile)

    stats, collect = await crawl(spider)

    assert stats.filtered == {"bad_url": 2}
    assert spider.parsed_paths() == {"/space-host", *GOOD}
    assert_good_items(collect)


# -- Retry-After that cannot be taken at its word -----------------------------------------------


def _limited_once(retry_after: Callable[[], str], status: int = 503):
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=status, text="busy", headers={"Retry-After": retry_after()})
        return web.Response(text=html("ok", title=f"recovered {request.path}"), content_type="text/html")

    return handler


def _paused_events(caplog: pytest.LogCaptureFixture) -> dict[str, float]:
    return {
        URL(r.url).path: r.delay_s
        for r in caplog.records
        if r.name == "crawler" and r.getMessage() == "domain_paused" and hasattr(r, "url")
    }


async def test_unusable_retry_after_is_ignored_past_is_now_far_gives_up(hostile, caplog):
    retry_afters = {
        "/ra/garbage": lambda: "soon, maybe",
        "/ra/negative": lambda: "-5",
        "/ra/fraction": lambda: "1.5e3",
        "/ra/past-date": lambda: formatdate(time.time() - 3600, usegmt=True),
        "/ra/far-seconds": lambda: "86400",
        "/ra/far-date": lambda: "Fri, 01 Jan 2100 00:00:00 GMT",
        "/ra/absurd": lambda: "9" * 400,
    }
    for path, value in retry_afters.items():
        hostile.route(path, _limited_once(value))
    spider = Probe([*add_good_pages(hostile), *(hostile.url(p) for p in retry_afters)])
    caplog.set_level(logging.INFO, logger="crawler")

    stats, collect = await crawl(spider, retry_after_max=0.5)

    far = {"/ra/far-seconds", "/ra/far-date", "/ra/absurd"}
    retried = set(retry_afters) - far
    assert stats.failures == {"retry_after_too_long": len(far)}
    assert spider.failed() == dict.fromkeys(far, "retry_after_too_long")
    for path in far:
        assert len(hostile.hits_for(path)) == 1, f"{path}: nothing is sent after a too-long Retry-After"
    for path in retried:
        assert len(hostile.hits_for(path)) == 2, path
    assert stats.retries == len(retried)
    titles = {item["title"] for item in collect.items}
    assert titles >= {f"recovered {p}" for p in retried}
    paused = _paused_events(caplog)
    # Garbage and negative values pause nothing (plain backoff); a past date means "now".
    assert not paused.keys() & {"/ra/garbage", "/ra/negative", "/ra/fraction"}, paused
    assert paused.get("/ra/past-date") == 0.0
    assert_good_items(collect)


@pytest.mark.parametrize(
    "value", ["\u00b2", "\u0663", "\uff11\uff10"], ids=["superscript-two", "arabic-indic-three", "fullwidth-ten"]
)
async def test_retry_after_with_non_ascii_digits_is_garbage_and_ignored(hostile, value):
    # delay-seconds is 1*DIGIT, ASCII digits only (RFC 9110). The header arrives decoded as
    # text, where str.isdigit() is also True for "²" (which float() cannot read) and for
    # digits of other scripts: all of them are garbage, to be ignored like "soon".
    hostile.route("/ra/odd", _limited_once(lambda: value))
    spider = Probe([*add_good_pages(hostile), hostile.url("/ra/odd")])

    stats, collect = await crawl(spider, retry_after_max=0.5)

    assert len(hostile.hits_for("/ra/odd")) == 2
    assert stats.failures == {}
    assert stats.retries == 1
    assert spider.parsed_paths() == {*GOOD, "/ra/odd"}
    assert_good_items(collect)


# -- callbacks that misbehave -----------------------------------------------------------------


class Misbehaving(Probe):
    """Sends each ``/cb/<name>`` page to the callback method of that name."""

    async def start(self):
        async for request in super().start():
            path = URL(request.url).path
            if path.startswith("/cb/"):
                request.callback = getattr(self, path.removeprefix("/cb/").replace("-", "_"))
            yield request

    def raises(self, response: Response):
        raise ValueError("broken selector logic")

    def returns_42(self, response: Response):
        return 42

    async def async_returns_42(self, response: Response):
        return 42

    async def yields_a_set(self, response: Response):
        yield {"path", "not", "an", "item"}

    def generator_raises_midway(self, response: Response):
        yield {"path": URL(response.url).path, "title": "before the error", "links": 0, "text": ""}
        raise KeyError("missing field")


async def test_misbehaving_callbacks_are_counted_logged_and_the_crawl_goes_on(hostile, caplog):
    names = ["raises", "returns-42", "async-returns-42", "yields-a-set", "generator-raises-midway"]
    for name in names:
        hostile.route(f"/cb/{name}", html(name, title=name))
    bad_urls = [hostile.url(f"/cb/{name}") for name in names]
    spider = Misbehaving([*add_good_pages(hostile), *bad_urls])
    caplog.set_level(logging.ERROR, logger="crawler")

    stats, collect = await crawl(spider)

    assert stats.callback_errors == len(names)
    assert stats.pages == len(GOOD) + len(names)
    assert stats.failures == {}
    errors = [r for r in caplog.records if r.name == "crawler" and r.levelno >= logging.ERROR]
    logged = Counter(getattr(r, "url", None) for r in errors)
    assert {url: logged[url] for url in bad_urls} == dict.fromkeys(bad_urls, 1), [r.__dict__ for r in errors]
    # The item yielded before the generator raised is kept.
    assert {"path": "/cb/generator-raises-midway", "title": "before the error", "links": 0, "text": ""} in (
        collect.items
    )
    assert_good_items(collect)


# -- everything at once -----------------------------------------------------------------------


async def test_one_crawl_through_many_bad_cases_loses_no_good_page(hostile):
    """Bad cases mixed together (and linked from the good pages) still leave every good item."""
    hostile.raw_route("/drop", _hang_up)
    hostile.raw_route("/short", _short_content_length)
    hostile.route("/loop", _redirect_to("/loop"))
    hostile.route("/no-location", _redirect_to(None, 307))
    hostile.route("/ftp", _redirect_to("ftp://127.0.0.1/"))
    _bytes_route(hostile, "/pdf", "application/pdf", ANCHOR)
    hostile.route("/x", html("never"))
    add_good_pages(hostile)
    hostile.route("/hub", links("/good/1", "/good/2", "/good/3", "/loop", "/no-location", "/ftp", "/pdf", "mailto:x@y"))
    spider = Probe([hostile.url("/hub"), hostile.raw_url("/drop"), hostile.raw_url("/short")], follow=True)

    stats, collect = await crawl(spider, retries=1, max_redirects=2)

    assert_good_items(collect)
    assert hostile.hits_for("/x") == []
    assert stats.failures == {
        "server_disconnected": 1,
        "incomplete_body": 1,
        "max_redirects": 1,
        "http_307": 1,
    }
    assert stats.filtered == {"bad_url": 2}  # ftp: redirect target, mailto: link
    assert spider.parsed_paths() == {"/hub", *GOOD, "/pdf"}
