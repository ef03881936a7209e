"""Cookies: one jar per crawl, scoped by host as a browser does, IP-address hosts included."""

from __future__ import annotations

import pytest
from aiohttp import web
from support import FAST, Collect, over_downloaders

from crawler import Crawler, Request, Spider

# Every downloader keeps cookies the same way (a host's session= is aiohttp's own).
pytestmark = [over_downloaders, pytest.mark.usefixtures("downloader")]


def login_site(server) -> None:
    """/login sets a session cookie; /account says whether the request carried it."""

    async def login(request: web.Request) -> web.Response:
        response = web.Response(text="<a href='/account'>account</a>", content_type="text/html")
        response.set_cookie("session", "s3cret", path="/")
        return response

    async def account(request: web.Request) -> web.Response:
        who = "member" if request.cookies.get("session") == "s3cret" else "stranger"
        return web.Response(text=f"<h1>{who}</h1>", content_type="text/html")

    server.route("/login", login)
    server.route("/account", account)


class LoginSpider(Spider):
    def __init__(self, server, **kwargs) -> None:
        super().__init__(**kwargs)
        self.server = server

    async def start(self):
        yield Request(self.server.url("/login"))

    async def parse(self, response):
        if response.url.endswith("/account"):
            yield {"who": response.css("h1::text").get()}
        for request in response.follow_all(css="a"):
            yield request


async def test_a_login_on_an_ip_address_host_is_remembered(server):
    login_site(server)
    sink = Collect()
    await Crawler(LoginSpider(server), FAST, pipelines=[sink]).run()
    assert server.url().startswith("http://127.0.0.1:")
    assert sink.items == [{"who": "member"}]


async def test_the_cookies_setting_off_keeps_no_jar(server):
    login_site(server)
    sink = Collect()
    await Crawler(LoginSpider(server), {**FAST, "cookies": False}, pipelines=[sink]).run()
    assert sink.items == [{"who": "stranger"}]


async def test_each_crawl_has_its_own_jar(server):
    login_site(server)

    class Visitor(Spider):
        start_urls = [server.url("/account")]

        async def parse(self, response):
            yield {"who": response.css("h1::text").get()}

    await Crawler(LoginSpider(server), FAST).run()  # logs in, in its own jar
    sink = Collect()
    await Crawler(Visitor(), FAST, pipelines=[sink]).run()
    assert sink.items == [{"who": "stranger"}]


def cookie_echo(server) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response(dict(request.cookies))

    for path in ("/first", "/second", "/deep/page"):
        server.route(path, echo)


@pytest.mark.parametrize(
    "cookies",
    [{"currency": "USD", "lang": "en"}, [{"name": "currency", "value": "USD"}, {"name": "lang", "value": "en"}]],
)
async def test_request_cookies_are_sent_and_kept_for_that_host(server, cookies):
    cookie_echo(server)

    class S(Spider):
        settings = FAST

        async def start(self):
            yield Request(server.url("/first"), cookies=cookies)

        async def parse(self, response):
            yield {"path": response.url.split(str(server.port), 1)[1], "cookies": response.json()}
            if response.url.endswith("/first"):
                yield Request(server.url("/deep/page"))
                yield Request(server.url("/second", host="127.0.0.2"))  # another host

    sink = Collect()
    await Crawler(S(), pipelines=[sink]).run()
    got = {item["path"]: item["cookies"] for item in sink.items}
    sent = {"currency": "USD", "lang": "en"}
    assert got == {"/first": sent, "/deep/page": sent, "/second": {}}


async def test_request_cookies_with_the_jar_off_go_with_that_request_only(server):
    cookie_echo(server)

    class S(Spider):
        settings = {**FAST, "cookies": False}

        async def start(self):
            yield Request(server.url("/first"), cookies={"currency": "USD"}, headers={"Cookie": "mine=1"})

        async def parse(self, response):
            yield {"url": response.url, "cookies": response.json()}
            if response.url.endswith("/first"):
                yield Request(server.url("/second"))

    sink = Collect()
    await Crawler(S(), pipelines=[sink]).run()
    got = {item["url"].rsplit("/", 1)[1]: item["cookies"] for item in sink.items}
    assert got == {"first": {"mine": "1", "currency": "USD"}, "second": {}}


@pytest.mark.parametrize("cookies", ["a=1", {"bad name": "1"}, [{"value": "1"}]])
def test_malformed_request_cookies_fail_at_once(cookies):
    with pytest.raises((TypeError, ValueError), match="cookie"):
        Request("http://example.com/", cookies=cookies)


async def test_a_redirect_or_retry_never_undoes_a_cookie_the_server_set(server):
    """A login answering 302 + Set-Cookie: the hop must not put the request's old cookie back."""
    seen: list[tuple[str, str | None]] = []
    attempts = {"/flaky": 0}

    async def login(request: web.Request) -> web.Response:
        seen.append((request.path, request.cookies.get("session")))
        response = web.HTTPFound("/account")
        response.set_cookie("session", "authenticated", path="/")
        raise response

    async def account(request: web.Request) -> web.Response:
        seen.append((request.path, request.cookies.get("session")))
        return web.Response(text="<a href='/later'>later</a>", content_type="text/html")

    async def flaky(request: web.Request) -> web.Response:
        seen.append((request.path, request.cookies.get("session")))
        attempts["/flaky"] += 1
        if attempts["/flaky"] == 1:
            response = web.Response(status=503)
            response.set_cookie("session", "refreshed", path="/")
            return response
        return web.Response(text="ok", content_type="text/html")

    server.route("/login", login)
    server.route("/account", account)
    server.route("/later", account)
    server.route("/flaky", flaky)

    class S(Spider):
        settings = FAST

        async def start(self):
            yield Request(server.url("/login"), cookies={"session": "anonymous"})

        async def parse(self, response):
            for request in response.follow_all(css="a"):
                yield request
            if response.url.endswith("/later"):  # a retried request carrying the old cookie
                yield Request(server.url("/flaky"), cookies={"session": "anonymous"})

    await Crawler(S()).run()
    assert seen == [
        ("/login", "anonymous"),
        ("/account", "authenticated"),
        ("/later", "authenticated"),
        ("/flaky", "anonymous"),  # its own cookies, set on the first attempt ...
        ("/flaky", "refreshed"),  # ... and not again on the retry: the server's new one stands
    ]


@pytest.mark.parametrize("jar", [True, False])
async def test_request_cookies_never_follow_a_redirect_to_another_host(server, jar):
    seen: dict[str, dict[str, str]] = {}

    async def bounce(request: web.Request) -> web.Response:
        seen[request.host] = dict(request.cookies)
        raise web.HTTPFound(server.url("/landing", host="127.0.0.2"))

    async def landing(request: web.Request) -> web.Response:
        seen[request.host] = dict(request.cookies)
        return web.Response(text="landed", content_type="text/html")

    server.route("/bounce", bounce)
    server.route("/landing", landing)

    class S(Spider):
        settings = {**FAST, "cookies": jar}

        async def start(self):
            yield Request(server.url("/bounce"), cookies={"token": "secret"})

        async def parse(self, response):
            yield {"url": response.url}

    stats = await Crawler(S()).run()
    assert stats.pages == 1
    assert seen == {f"127.0.0.1:{server.port}": {"token": "secret"}, f"127.0.0.2:{server.port}": {}}


async def test_a_host_session_keeps_its_jar_and_request_cookies_go_in_the_header(server):
    import aiohttp

    cookie_echo(server)

    class S(Spider):
        settings = FAST

        async def start(self):
            yield Request(server.url("/first"), cookies={"token": "secret"})

        async def parse(self, response):
            yield {"cookies": response.json()}

    sink = Collect()
    async with aiohttp.ClientSession() as session:  # aiohttp's default jar (no IP-address hosts)
        await Crawler(S(), pipelines=[sink], session=session).run()
        assert sink.items == [{"cookies": {"token": "secret"}}]  # sent although the host is an IP
        assert len(session.cookie_jar) == 0  # and the host program's jar was not touched
        async with session.get(server.url("/second")) as response:
            assert await response.json() == {}


async def test_a_request_made_with_replace_from_a_redirected_one_sends_its_cookies(server):
    cookie_echo(server)

    async def bounce(request: web.Request) -> web.Response:
        raise web.HTTPFound("/first")

    server.route("/start", bounce)

    class S(Spider):
        settings = FAST

        async def start(self):
            yield Request(server.url("/start"))

        async def parse(self, response):
            yield {"url": response.url, "cookies": response.json()}
            if response.url.endswith("/first"):  # reached through a redirect: redirects == 1
                yield response.request.replace(url=server.url("/second"), cookies={"token": "t1"})

    sink = Collect()
    await Crawler(S(), pipelines=[sink]).run()
    assert [item["cookies"] for item in sink.items] == [{}, {"token": "t1"}]


async def test_a_request_cookie_wins_over_a_host_session_jar(server):
    import aiohttp
    from yarl import URL

    cookie_echo(server)

    class S(Spider):
        settings = FAST

        async def start(self):
            yield Request(server.url("/first"), cookies={"session": "new"})

        async def parse(self, response):
            yield {"cookies": response.json()}

    sink = Collect()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        session.cookie_jar.update_cookies({"session": "old", "other": "kept"}, URL(server.url("/")))
        await Crawler(S(), pipelines=[sink], session=session).run()
        assert sink.items == [{"cookies": {"session": "new", "other": "kept"}}]
        assert {c.key: c.value for c in session.cookie_jar} == {"session": "old", "other": "kept"}


async def test_credential_headers_never_follow_a_redirect_to_another_host(server):
    seen: list[tuple[str, str | None, str | None]] = []

    def record(request: web.Request) -> None:
        seen.append((request.path, request.headers.get("Cookie"), request.headers.get("Authorization")))

    async def bounce(request: web.Request) -> web.Response:
        record(request)
        target = "/same" if request.path == "/first" else server.url("/away", host="127.0.0.2")
        raise web.HTTPFound(target)

    async def landing(request: web.Request) -> web.Response:
        record(request)
        return web.Response(text="landed", content_type="text/html")

    server.route("/first", bounce)
    server.route("/same", bounce)  # then on to the other host
    server.route("/away", landing)

    class S(Spider):
        settings = FAST

        async def start(self):
            yield Request(server.url("/first"), headers={"cookie": "sid=1", "Authorization": "Bearer x"})

        async def parse(self, response):
            yield {"url": response.url}

    await Crawler(S()).run()
    assert seen == [("/first", "sid=1", "Bearer x"), ("/same", "sid=1", "Bearer x"), ("/away", None, None)]
