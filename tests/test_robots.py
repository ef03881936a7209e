"""robots.txt (RFC 9309), as the server sees it: fetched first, once per origin, and obeyed."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiohttp import web
from support import FAST, RecordingSpider, html, links

from crawler import Crawler, Settings, Spider

pytestmark = pytest.mark.usefixtures("steady_loop")  # holds measured on the server clock

A, B = "127.0.0.1", "127.0.0.2"
ROBOTS = {**FAST, "obey_robots": True}


def host_of(request: web.Request) -> str:
    return request.host.rsplit(":", 1)[0]


def robots_per_host(**bodies: str):
    """A /robots.txt handler answering ``bodies[host]`` (keys: ``a``/``b``), 404 for other hosts."""
    by_host = {{"a": A, "b": B}[name]: body for name, body in bodies.items()}

    async def handler(request: web.Request) -> web.Response:
        body = by_host.get(host_of(request))
        if body is None:
            return web.Response(status=404, text="no robots here")
        return web.Response(text=body, content_type="text/plain")

    return handler


def statuses_then(statuses: list[int], final_body: str, *, host: str = A):
    """A /robots.txt handler: for ``host``, answers each of ``statuses`` in turn, then ``final_body``."""
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        if host_of(request) != host:
            return web.Response(status=404, text="none")
        calls += 1
        if calls <= len(statuses):
            return web.Response(status=statuses[calls - 1], text="try later")
        return web.Response(text=final_body, content_type="text/plain")

    return handler


@contextlib.asynccontextmanager
async def guard(message: str, seconds: float = 20):
    """Fail (rather than hang until pytest's timeout) when a crawl stalls."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        pytest.fail(f"{message}: no end after {seconds}s")


def page_paths(server, host: str = A) -> list[str]:
    return [h.path for h in server.hits_for(host=host) if h.path != "/robots.txt"]


class Follow(Spider):
    """Follows every link; one item per page."""

    def __init__(self, urls: list[str], settings: dict) -> None:
        super().__init__()
        self.start_urls = urls
        self.settings = settings

    async def parse(self, response):
        yield {"url": response.url}
        for request in response.follow_all(css="a"):
            yield request


# -- fetched once per origin, first -----------------------------------------------------------


def test_obey_robots_is_on_by_default():
    assert Settings().obey_robots is True


async def test_robots_fetched_first_and_once_per_origin_even_with_many_pages(server):
    n = 15
    server.route("/robots.txt", robots_per_host(a="User-agent: *\nDisallow: /nothing\n"))
    server.route("/", links(*[f"/p{i}" for i in range(n)], server.url("/", host=B)))
    for i in range(n):
        # every page links to every other page and to the other host's pages
        server.route(f"/p{i}", links(*[f"/p{j}" for j in range(n)], server.url(f"/p{i}", host=B)))
    # obey_robots left at its default
    settings = {k: v for k, v in FAST.items() if k != "obey_robots"}

    stats = await Crawler(Follow([server.url("/")], settings)).run()

    for host in (A, B):
        hits = server.hits_for(host=host)
        assert hits[0].path == "/robots.txt", f"{host}: first request was {hits[0].path}"
        assert len(server.hits_for("/robots.txt", host)) == 1
        assert sorted(page_paths(server, host)) == sorted(["/", *[f"/p{i}" for i in range(n)]])
    assert stats.pages == 2 * (n + 1)
    assert stats.robots_txt == {"fetched": 1, "http_404": 1}


async def test_obey_robots_false_never_requests_robots_txt(server):
    server.route("/robots.txt", "User-agent: *\nDisallow: /\n", content_type="text/plain")
    server.route("/", links("/a", server.url("/b", host=B)))
    server.route("/a", html("a"))
    server.route("/b", html("b"))

    stats = await Crawler(Follow([server.url("/")], {**FAST, "obey_robots": False})).run()

    assert server.hits_for("/robots.txt") == []
    assert stats.pages == 3
    assert stats.robots_txt == {}


# -- rules ------------------------------------------------------------------------------------


async def test_disallowed_urls_are_filtered_as_robots_and_never_requested(server):
    server.route("/robots.txt", "User-agent: *\nDisallow: /private\n", content_type="text/plain")
    server.route_pages(("/public", "/private", "/private/deep", "/privateer"))
    spider = RecordingSpider([server.url(p) for p in ("/public", "/private", "/private/deep", "/privateer")])

    stats = await Crawler(spider, ROBOTS).run()

    assert page_paths(server) == ["/public"]
    assert stats.filtered == {"robots": 3}
    assert stats.pages == 1
    assert spider.failures == []


async def test_allow_and_disallow_with_wildcards(server):
    server.route(
        "/robots.txt",
        "User-agent: *\nDisallow: /private/\nAllow: /private/public*\nDisallow: /*.pdf$\n",
        content_type="text/plain",
    )
    allowed = ["/private/public-page", "/files/a.pdf.html", "/files/a.pdf?download=1", "/open"]
    denied = ["/private/x", "/private/", "/files/a.pdf", "/deep/er/b.pdf"]
    for path in allowed + denied:
        server.route(path.split("?")[0], html(path))

    stats = await Crawler(RecordingSpider([server.url(p) for p in allowed + denied]), ROBOTS).run()

    assert sorted(page_paths(server)) == sorted(allowed)
    assert stats.filtered == {"robots": len(denied)}


async def test_rules_match_the_product_token_of_user_agent(server):
    server.route(
        "/robots.txt",
        "User-agent: otherbot\nDisallow: /other\n\n"
        "User-agent: mybot\nDisallow: /mine\n\n"
        "User-agent: *\nDisallow: /everyone\n",
        content_type="text/plain",
    )
    server.route_pages(("/other", "/mine", "/everyone"))
    spider = RecordingSpider([server.url(p) for p in ("/other", "/mine", "/everyone")])

    stats = await Crawler(spider, {**ROBOTS, "user_agent": "mybot/1.0 (+http://x)"}).run()

    # Our group (mybot) applies, and only it: not otherbot's, and not the * group either.
    assert sorted(page_paths(server)) == ["/everyone", "/other"]
    assert stats.filtered == {"robots": 1}
    assert {h.headers["User-Agent"] for h in server.hits} == {"mybot/1.0 (+http://x)"}


# -- robots.txt that cannot be read -----------------------------------------------------------


@pytest.mark.parametrize("status", [404, 403])
async def test_4xx_robots_txt_allows_everything(server, status):
    server.route("/robots.txt", "User-agent: *\nDisallow: /\n", status=status, content_type="text/plain")
    server.route("/a", html("a"))
    server.route("/b", html("b"))
    spider = RecordingSpider([server.url("/a"), server.url("/b")])

    stats = await Crawler(spider, {**ROBOTS, "retries": 3}).run()

    assert sorted(page_paths(server)) == ["/a", "/b"]
    assert len(server.hits_for("/robots.txt")) == 1  # a 4xx is an answer, not retried
    assert stats.pages == 2
    assert stats.failures == {}
    assert stats.robots_txt == {f"http_{status}": 1}


@pytest.mark.parametrize("status", [503, 429])
async def test_robots_txt_retried_until_it_answers_then_rules_apply(server, status):
    server.route("/robots.txt", statuses_then([status, status], "User-agent: *\nDisallow: /secret\n"))
    server.route("/open", html("open"))
    server.route("/secret", html("secret"))

    stats = await Crawler(RecordingSpider([server.url("/open"), server.url("/secret")]), {**ROBOTS, "retries": 3}).run()

    robots_hits = server.hits_for("/robots.txt", A)
    assert len(robots_hits) == 3
    # No page went out while robots.txt was unknown.
    assert all(h.at > robots_hits[-1].at for h in server.hits_for(host=A) if h.path != "/robots.txt")
    assert page_paths(server) == ["/open"]
    assert stats.filtered == {"robots": 1}
    assert stats.failures == {}


async def test_held_origin_holds_no_worker_while_robots_txt_is_retried(server):
    """A's robots.txt answers 503 twice (backoff ~0.3 s then ~0.6 s); B keeps being crawled meanwhile."""
    server.route("/robots.txt", statuses_then([503, 503], "User-agent: *\nDisallow: /a/secret\n"))
    a_pages = [f"/a/{i}" for i in range(4)] + ["/a/secret"]
    b_pages = [f"/b/{i}" for i in range(20)]
    server.route_pages(a_pages + b_pages)
    urls = [server.url(p, host=A) for p in a_pages] + [server.url(p, host=B) for p in b_pages]
    settings = {**ROBOTS, "rate_limit": 10, "concurrency": 2, "retries": 3, "backoff_base": 0.3, "backoff_max": 5}

    async with guard("a held origin stalled the crawl (workers waiting for robots.txt?)"):
        stats = await Crawler(RecordingSpider(urls), settings).run()

    robots_hits = server.hits_for("/robots.txt", A)
    assert len(robots_hits) == 3
    # retried with backoff, not hammered
    assert robots_hits[1].at - robots_hits[0].at >= 0.25
    assert robots_hits[2].at - robots_hits[1].at >= 0.5
    held_from, held_until = robots_hits[0].at, robots_hits[-1].at
    # A's pages waited for the rules...
    assert all(h.at >= held_until for h in server.hits_for(host=A) if h.path != "/robots.txt")
    assert "/a/secret" not in page_paths(server, A)
    # ...while B went on at (at least half) its own rate, with only 2 workers for the whole crawl.
    b_during = [h for h in server.hits_for(host=B) if held_from < h.at < held_until]
    assert len(b_during) >= 0.5 * 10 * (held_until - held_from), (
        f"{len(b_during)} B requests in {held_until - held_from:.2f}s of A being held"
    )
    assert stats.pages == len(a_pages) - 1 + len(b_pages)
    assert stats.filtered == {"robots": 1}


async def test_robots_txt_always_500_fails_that_origin_only(server):
    server.route("/robots.txt", statuses_then([500] * 100, "never"))
    a_pages = ["/a/1", "/a/2", "/a/3"]
    b_pages = ["/b/1", "/b/2", "/b/3", "/b/4"]
    server.route_pages(a_pages + b_pages)
    spider = RecordingSpider([server.url(p, host=A) for p in a_pages] + [server.url(p, host=B) for p in b_pages])

    stats = await Crawler(spider, {**ROBOTS, "retries": 2}).run()

    assert len(server.hits_for("/robots.txt", A)) == 3  # first try + 2 retries
    assert page_paths(server, A) == []
    assert stats.failures == {"robots_unavailable": len(a_pages)}
    assert sorted(page_paths(server, B)) == b_pages
    assert stats.pages == len(b_pages)
    assert stats.robots_txt.get("http_500") == 1


async def test_robots_unavailable_failures_reach_the_errback(server):
    """A failed request goes to its errback (README: "The errback receives a Failure")."""
    server.route("/robots.txt", statuses_then([500] * 100, "never"))
    server.route("/a/1", html("a1"))
    server.route("/a/2", html("a2"))
    spider = RecordingSpider([server.url("/a/1"), server.url("/a/2")])

    stats = await Crawler(spider, {**ROBOTS, "retries": 1}).run()

    assert stats.failures == {"robots_unavailable": 2}
    assert sorted(f.reason for f in spider.failures) == ["robots_unavailable", "robots_unavailable"]


# -- redirects and size -----------------------------------------------------------------------


def redirect(to: str):
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound(to)

    return handler


async def test_robots_txt_redirects_are_followed_across_hosts(server):
    # /robots.txt -> /r1 -> B/r2 -> A/r3 -> /r4 -> /rules.txt: five hops, the most allowed.
    server.route("/robots.txt", redirect("/r1"))
    server.route("/r1", redirect(server.url("/r2", host=B)))
    server.route("/r2", redirect(server.url("/r3", host=A)))
    server.route("/r3", redirect("/r4"))
    server.route("/r4", redirect("/rules.txt"))
    server.route("/rules.txt", "User-agent: *\nDisallow: /secret\n", content_type="text/plain")
    server.route("/open", html("open"))
    server.route("/secret", html("secret"))

    stats = await Crawler(RecordingSpider([server.url("/open"), server.url("/secret")]), ROBOTS).run()

    assert len(server.hits_for("/rules.txt")) == 1
    # the rules found at the end of the chain apply to the origin that asked
    assert [p for p in page_paths(server) if not p.startswith("/r")] == ["/open"]
    assert stats.filtered == {"robots": 1}
    assert stats.pages == 1


def redirect_chain(server, hops: int) -> None:
    """/robots.txt -> /r1 -> ... -> /r<hops>, which holds a disallow-all robots.txt."""
    server.route("/robots.txt", redirect("/r1"))
    for i in range(1, hops):
        server.route(f"/r{i}", redirect(f"/r{i + 1}"))
    server.route(f"/r{hops}", "User-agent: *\nDisallow: /\n", content_type="text/plain")


async def test_robots_txt_redirects_stop_after_five_hops(server):
    redirect_chain(server, 8)
    server.route("/page", html("page"))

    await Crawler(RecordingSpider([server.url("/page")]), ROBOTS).run()

    assert [h.path for h in server.hits_for(host=A) if h.path.startswith("/r")] == [
        "/robots.txt",
        "/r1",
        "/r2",
        "/r3",
        "/r4",
        "/r5",
    ]


async def test_robots_txt_with_too_many_redirects_means_no_rules(server):
    # RFC 9309 2.3.1.2: after more than five redirects a crawler MAY assume robots.txt is
    # "unavailable", which (2.3.1.3, like a 4xx) means no rules: the page is fetched.
    redirect_chain(server, 8)
    server.route("/page", html("page"))
    spider = RecordingSpider([server.url("/page")])

    stats = await Crawler(spider, ROBOTS).run()

    assert "/r8" not in [h.path for h in server.hits]
    assert stats.failures == {}
    assert [p for p in page_paths(server) if not p.startswith("/r")] == ["/page"]
    assert stats.pages == 1


def big_robots(rules: str, padding: int) -> str:
    comment = "# " + "x" * 1000 + "\n"
    return rules + comment * (padding // len(comment) + 1) + "Disallow: /late-rule\n"


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_robots_txt_over_500_kib_is_truncated_not_fatal(server, streamed):
    body = big_robots("User-agent: *\nDisallow: /private\n", 600 * 1024)
    assert len(body.encode()) > 500 * 1024

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        data = body.encode()
        for start in range(0, len(data), 64 * 1024):
            await response.write(data[start : start + 64 * 1024])
        await response.write_eof()
        return response

    server.route("/robots.txt", chunked if streamed else body, content_type="text/plain")
    server.route("/public", html("public"))
    server.route("/private", html("private"))

    stats = await Crawler(RecordingSpider([server.url("/public"), server.url("/private")]), ROBOTS).run()

    assert page_paths(server) == ["/public"]
    assert stats.filtered == {"robots": 1}
    assert stats.failures == {}
    assert stats.robots_txt == {"fetched": 1}


# -- robots.txt is not a page -----------------------------------------------------------------


async def test_robots_txt_is_counted_apart_and_does_not_use_max_pages(server):
    server.route("/robots.txt", robots_per_host(a="User-agent: *\nDisallow: /x\n", b="User-agent: *\nAllow: /\n"))
    for i in range(4):
        server.route(f"/p{i}", html(str(i)))
    spider = RecordingSpider([server.url("/p0"), server.url("/p1", host=B), server.url("/p2"), server.url("/p3")])

    stats = await Crawler(spider, {**ROBOTS, "max_pages": 2}).run()

    assert stats.pages == 2
    assert len(spider.parsed) == 2
    assert all(not r.url.endswith("/robots.txt") for r in spider.parsed)
    assert len(page_paths(server, A)) + len(page_paths(server, B)) == 2
    assert sum(stats.robots_txt.values()) == len(server.hits_for("/robots.txt")) >= 1
    assert stats.close_reason == "max_pages"


async def test_robots_txt_is_not_a_page_without_max_pages(server):
    server.route("/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    server.route("/a", html("a"))
    spider = RecordingSpider([server.url("/a")])

    stats = await Crawler(spider, ROBOTS).run()

    assert [h.path for h in server.hits] == ["/robots.txt", "/a"]
    assert stats.pages == 1
    assert [r.url for r in spider.parsed] == [server.url("/a")]
    assert stats.robots_txt == {"fetched": 1}


async def test_a_redirect_into_a_disallowed_path_gives_its_page_back_once(server):
    """Three links redirect into /private (disallowed): each chain ends without a page and
    refunds max_pages once, so the crawl still stops at exactly max_pages pages."""
    server.route("/robots.txt", "User-agent: *\nDisallow: /private\n", content_type="text/plain")
    server.route("/", links(*(f"/r{i}" for i in range(3)), *(f"/p{i}" for i in range(10))))
    for i in range(3):

        async def bounce(request: web.Request, i: int = i) -> web.Response:
            raise web.HTTPFound(f"/private/{i}")

        server.route(f"/r{i}", bounce)
    server.route_pages(f"/p{i}" for i in range(10))

    class S(Spider):
        start_urls = [server.url("/")]

        async def parse(self, response):
            for request in response.follow_all(css="a"):
                yield request

    stats = await Crawler(S(), {**ROBOTS, "max_pages": 5, "concurrency": 1, "domain_concurrency": 1}).run()
    assert stats.pages == 5
    assert stats.filtered.get("robots") == 3
    assert stats.close_reason == "max_pages"
    assert server.hits_for("/private/0") == []
