"""Proxies: the ``proxy`` setting, ``meta["proxy"]``, credentials kept out of logs, a failing
proxy rested. Against a real proxy (Debian's tinyproxy) started on 127.0.0.1 and a free port;
a request that went through it carries its ``Via`` header at the test server.
"""

from __future__ import annotations

import logging

import pytest
from support import DOWNLOADERS, FAST, MicroSocks, RecordingSpider, TinyProxy, free_port, html

from crawler import Crawler, Request, Response, Settings, SettingsError, Spider
from crawler._proxies import REST_AFTER, ProxyRotation


@pytest.fixture
def tinyproxy(tmp_path):
    proxy = TinyProxy(str(tmp_path))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def tinyproxy_with_password(tmp_path):
    proxy = TinyProxy(str(tmp_path), auth=("crawler", "s3cret-pw"))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def proxied(server) -> list[str]:
    return [hit.path for hit in server.hits if "tinyproxy" in hit.headers.get("Via", "")]


@pytest.mark.parametrize("downloader", DOWNLOADERS)
async def test_every_request_goes_through_the_proxy_setting(server, tinyproxy, downloader):
    pages = server.hub(5)

    class Follow(RecordingSpider):
        async def parse(self, response: Response):
            async for out in super().parse(response):
                yield out
            for request in response.follow_all(css="a"):
                yield request

    spider = Follow([server.url("/")])
    stats = await Crawler(spider, {**FAST, "proxy": tinyproxy.url, "downloader": downloader}).run()

    assert stats.pages == 6
    assert sorted(proxied(server)) == sorted(["/", *pages])
    assert len(server.hits) == 6


async def test_meta_proxy_sends_one_request_through_a_proxy_and_none_turns_it_off(server, tinyproxy):
    server.route_pages(["/a", "/b", "/c"])

    class S(Spider):
        async def start(self):
            yield Request(server.url("/a"), meta={"proxy": tinyproxy.url})
            yield Request(server.url("/b"))
            yield Request(server.url("/c"), meta={"proxy": None})  # no proxy, whatever the setting

        async def parse(self, response: Response):
            yield {"url": response.url}

    stats = await Crawler(S(), FAST).run()

    assert stats.pages == 3
    assert proxied(server) == ["/a"]


async def test_a_proxy_that_needs_a_password_gets_it_from_the_url(server, tinyproxy_with_password):
    server.route("/", html("home"))
    spider = RecordingSpider([server.url("/")])

    stats = await Crawler(spider, {**FAST, "proxy": tinyproxy_with_password.url}).run()

    assert stats.pages == 1
    assert proxied(server) == ["/"]


async def test_a_proxy_password_never_reaches_a_log_line_or_an_error(server, caplog):
    server.route("/", html("home"))
    spider = RecordingSpider([server.url("/")])
    url = f"http://crawler:hunter2-secret@127.0.0.1:{free_port()}"
    caplog.set_level(logging.DEBUG, logger="crawler")

    stats = await Crawler(spider, {**FAST, "retries": 1, "proxy": url}).run()

    assert stats.pages == 0
    assert sum(stats.failures.values()) == 1
    assert server.hits == []
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "crawler:***@127.0.0.1" in text  # the settings are logged, redacted
    assert "hunter2" not in text
    assert "hunter2" not in str(spider.failures[0].exception)


async def test_a_failing_proxy_is_rested_and_its_domains_move_to_the_next(server, tinyproxy, caplog):
    # Two proxies, one of them dead: requests first sent through the dead one fail, are
    # retried, and once it has failed REST_AFTER times in a row it rests and every domain
    # goes through the live one.
    dead = f"http://127.0.0.1:{free_port()}"
    paths = [f"/p{i}" for i in range(12)]
    server.route_pages(paths)
    urls = [server.url(path, host=host) for path in paths for host in ("127.0.0.1", "127.0.0.2")]
    spider = RecordingSpider(urls)
    caplog.set_level(logging.WARNING, logger="crawler")

    stats = await Crawler(spider, {**FAST, "retries": 5, "proxy": [dead, tinyproxy.url]}).run()

    assert stats.pages == len(urls)  # nothing lost
    assert len(proxied(server)) == len(urls)
    assert stats.proxies_rested == {dead: 1}  # counted in the stats (and logged)
    assert any(r.getMessage() == "proxy_rested" or "proxy_rested" in str(r.msg) for r in caplog.records)


def test_rotation_keeps_a_domain_on_one_proxy_and_rests_a_failing_one():
    now = [0.0]
    rotation = ProxyRotation(["http://a:1", "http://b:2", "http://c:3"], clock=lambda: now[0])
    request = Request("http://site.example/")
    request.domain = "site.example"
    first = rotation.choose(request)
    assert all(rotation.choose(request) == first for _ in range(5))
    for _ in range(REST_AFTER):
        assert first is not None
        rotation.outcome(first, "proxy_error")
    moved = rotation.choose(request)
    assert moved != first
    assert rotation.rested == {first: 1}
    now[0] += 3600  # the rest is over
    assert rotation.choose(request) == first


def test_the_setting_takes_one_url_or_a_list_and_refuses_other_schemes():
    assert Settings(proxy="http://p:1").proxy == ("http://p:1",)
    assert Settings(proxy=["http://p:1", "socks5://q:2"]).proxy == ("http://p:1", "socks5://q:2")
    with pytest.raises(SettingsError, match="proxy") as caught:
        Settings(proxy="ftp://user:topsecret@p:1")
    assert "topsecret" not in str(caught.value)


# -- SOCKS5 -------------------------------------------------------------------------------------


@pytest.fixture
def microsocks(tmp_path):
    proxy = MicroSocks(str(tmp_path), auth=("crawler", "socks-pw"))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.mark.parametrize("downloader", DOWNLOADERS)
async def test_a_socks5_proxy_carries_every_request(server, microsocks, downloader):
    server.route_pages(["/a", "/b"])
    spider = RecordingSpider([server.url("/a"), server.url("/b", host="127.0.0.2")])

    stats = await Crawler(spider, {**FAST, "proxy": microsocks.url, "downloader": downloader}).run()

    assert stats.pages == 2
    assert stats.failures == {}
    assert sorted(hit.path for hit in server.hits if hit.remote == MicroSocks.OUTGOING) == ["/a", "/b"]
    assert len(server.hits) == 2


@pytest.mark.parametrize("downloader", DOWNLOADERS)
async def test_a_socks5_proxy_refusing_the_password_fails_as_proxy_error_without_the_password(
    server, microsocks, downloader
):
    server.route("/", html("home"))
    spider = RecordingSpider([server.url("/")])
    wrong = f"socks5://crawler:not-the-pw@127.0.0.1:{microsocks.port}"

    stats = await Crawler(spider, {**FAST, "retries": 1, "proxy": wrong, "downloader": downloader}).run()

    assert stats.failures == {"proxy_error": 1}
    assert server.hits == []
    assert "not-the-pw" not in str(spider.failures[0].exception)


def test_a_settings_repr_shows_no_password():
    settings = Settings(proxy=["http://u:proxy-pw@p:1"], frontier="redis://:redis-pw@127.0.0.1:6379/0")
    text = repr(settings)
    assert "proxy-pw" not in text and "redis-pw" not in text
    assert "u:***@p:1" in text


async def test_a_refused_tunnel_keeps_the_proxy_password_out_of_the_log(server, tinyproxy_with_password, caplog):
    # An https:// target goes through the proxy in a CONNECT tunnel; a wrong password is a
    # 407 to the CONNECT, which aiohttp reports with the proxy's whole URL in its message.
    wrong = f"http://crawler:hunter2-wrong@127.0.0.1:{tinyproxy_with_password.port}"
    spider = RecordingSpider([f"https://127.0.0.1:{server.port}/"])
    caplog.set_level(logging.DEBUG, logger="crawler")

    stats = await Crawler(spider, {**FAST, "retries": 0, "proxy": wrong}).run()

    assert stats.failures == {"proxy_error": 1}
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "request_failed" in text
    assert "hunter2" not in text
    assert "hunter2" not in repr(spider.failures[0].exception)


def test_a_site_the_proxy_cannot_reach_does_not_count_against_the_proxy():
    rotation = ProxyRotation(["http://a:1", "http://b:2"])
    request = Request("http://site.example/")
    request.domain = "site.example"
    first = rotation.choose(request)
    assert first is not None
    for _ in range(REST_AFTER * 2):
        rotation.outcome(first, "connection_error")  # e.g. the tunnel's 502 to a dead site
    assert rotation.choose(request) == first
    assert rotation.rested == {}
