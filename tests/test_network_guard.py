"""The private-network guard (``block_private_addresses``): a crawl of the public web is never
steered into private, loopback or link-local addresses, by a link, a redirect or a DNS answer.

"Public" hosts here are names that a fixed resolver (a real aiohttp resolver, standing in
for DNS on a machine without one) maps to 127.0.0.1, the address the test server listens on.
"""

from __future__ import annotations

import socket

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from support import DOWNLOADERS, FAST, RecordingSpider, TestServer, html

from crawler import Crawler, Request, Response, Settings, SettingsError, Spider
from crawler._addresses import AddressGuard, is_local_host, is_public_address
from crawler._aiohttp import AiohttpDownloader
from crawler._downloader import Network, load_downloader


class FixedResolver(AbstractResolver):
    """DNS as a table: each name resolves to the address given."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        if host not in self.table:
            raise OSError(f"no such host: {host}")
        address = self.table[host]
        return [
            {"hostname": host, "host": address, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}
        ]

    async def close(self) -> None:
        pass


class TrustingDownloader(AiohttpDownloader):
    """aiohttp with some hosts let through the guard whatever they resolve to: they play the
    public web (a real public host would resolve to a public address)."""

    def __init__(self, table: dict[str, str], trusted: list[str]) -> None:
        super().__init__(resolver=FixedResolver(table))
        self.trusted = trusted

    async def open(self, settings: Settings, network: Network | None = None) -> None:
        assert network is not None
        network.guard.trust_hosts(self.trusted)
        await super().open(settings, network)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # a cloud's metadata service
        ("100.64.0.1", False),  # shared address space (carrier NAT)
        ("0.0.0.0", False),  # reaches the local host on Linux
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped: judged as the IPv4 address
        ("::ffff:8.8.8.8", True),
    ],
)
def test_which_addresses_are_public(address, public):
    assert is_public_address(address) is public


@pytest.mark.parametrize(
    ("host", "local"),
    [("localhost", True), ("LOCALHOST.", True), ("app.localhost", True), ("127.0.0.1", True),
     ("[::1]", True), ("192.168.0.10", True), ("example.com", False), ("93.184.215.14", False)],
)
def test_which_start_hosts_make_auto_mode_trust_the_local_network(host, local):
    assert is_local_host(host) is local


def test_the_setting_takes_auto_true_and_false_only():
    assert Settings().block_private_addresses == "auto"
    assert Settings(block_private_addresses="false").block_private_addresses is False
    assert Settings(block_private_addresses=True).block_private_addresses is True
    with pytest.raises(SettingsError, match="block_private_addresses"):
        Settings(block_private_addresses="sometimes")


async def test_a_crawl_of_a_local_site_works_with_no_setting(server):
    server.route("/", html("home"))
    spider = RecordingSpider([server.url("/")])

    stats = await Crawler(spider, FAST).run()

    assert stats.pages == 1
    assert stats.failures == {}


async def test_turned_on_it_refuses_a_loopback_start_url_without_sending_anything(server):
    server.route("/", html("home"))
    spider = RecordingSpider([server.url("/")])

    stats = await Crawler(spider, {**FAST, "block_private_addresses": True}).run()

    assert stats.pages == 0
    assert stats.failures == {"blocked_address": 1}
    assert [f.reason for f in spider.failures] == ["blocked_address"]
    assert "127.0.0.1" in str(spider.failures[0].exception)
    assert server.hits == []


async def test_a_name_that_resolves_to_a_private_address_is_refused_at_connect_time(server):
    # DNS rebinding: a public-looking name whose answer is 127.0.0.1. Under auto (the
    # default) the start URL's host is a name, so the guard is on.
    server.route("/", html("admin panel"))
    url = f"http://rebind.example:{server.port}/"
    spider = RecordingSpider([url])
    downloader = AiohttpDownloader(resolver=FixedResolver({"rebind.example": "127.0.0.1"}))

    stats = await Crawler(spider, FAST, downloader=downloader).run()

    assert stats.failures == {"blocked_address": 1}
    assert "rebind.example resolved to 127.0.0.1" in str(spider.failures[0].exception)
    assert server.hits == []


async def test_the_same_name_is_fetched_when_the_guard_is_off(server):
    server.route("/", html("home"))
    spider = RecordingSpider([f"http://rebind.example:{server.port}/"])
    downloader = AiohttpDownloader(resolver=FixedResolver({"rebind.example": "127.0.0.1"}))

    stats = await Crawler(spider, {**FAST, "block_private_addresses": False}, downloader=downloader).run()

    assert stats.pages == 1
    assert len(server.hits) == 1


@pytest.mark.parametrize("target", ["127.0.0.1", "169.254.169.254", "[::1]", "0x7f.1"])
async def test_a_redirect_from_a_public_page_into_the_private_network_is_refused(server, target):
    port = server.port

    async def to_private(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://{target}:{port}/secret")

    server.route("/start", to_private)
    server.route("/secret", html("metadata credentials"))
    spider = RecordingSpider([f"http://public.example:{port}/start"])
    downloader = TrustingDownloader({"public.example": "127.0.0.1"}, ["public.example"])

    stats = await Crawler(spider, {**FAST, "retries": 0}, downloader=downloader).run()

    assert stats.failures == {"blocked_address": 1}
    assert stats.redirected == 1
    assert [hit.path for hit in server.hits] == ["/start"]  # /secret never reached


def public_site_linking_to_private(server: TestServer) -> Spider:
    """A public host (public.example, served from 127.0.0.1) whose home page links to itself
    and to 127.0.0.1's /admin; the spider that crawls it from its home page."""
    port = server.port

    class S(Spider):
        start_urls = [f"http://public.example:{port}/"]

        async def parse(self, response: Response):
            yield {"url": response.url}
            yield Request(f"http://127.0.0.1:{port}/admin")
            yield Request(f"http://public.example:{port}/about")

    server.route("/", html("home"))
    server.route("/about", html("about"))
    server.route("/admin", html("admin"))
    return S()


async def test_a_link_from_a_public_page_into_the_private_network_is_refused(server):
    spider = public_site_linking_to_private(server)
    downloader = TrustingDownloader({"public.example": "127.0.0.1"}, ["public.example"])

    stats = await Crawler(spider, {**FAST, "retries": 0}, downloader=downloader).run()

    assert stats.pages == 2
    assert stats.failures == {"blocked_address": 1}
    assert sorted(hit.path for hit in server.hits) == ["/", "/about"]


class TrustLocalhost:
    """Any downloader, with ``localhost`` let through the guard: it plays a public host."""

    def __init__(self, name: str) -> None:
        self.inner = load_downloader(name)()

    async def open(self, settings: Settings, network: Network) -> None:
        network.guard.trust_hosts(["localhost"])
        await self.inner.open(settings, network)

    async def fetch(self, request, progress):
        return await self.inner.fetch(request, progress)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("name", DOWNLOADERS)
async def test_every_downloader_refuses_a_private_address_and_a_redirect_into_one(server, name):
    port = server.port

    async def to_private(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{port}/secret")

    server.route("/start", to_private)
    server.route("/secret", html("secret"))
    server.route("/direct", html("direct"))
    spider = RecordingSpider([f"http://localhost:{port}/start", f"http://127.0.0.2:{port}/direct"])

    stats = await Crawler(spider, {**FAST, "retries": 0, "block_private_addresses": True},
                          downloader=TrustLocalhost(name)).run()

    assert stats.failures == {"blocked_address": 2}
    assert sorted(f.url.rsplit("/", 1)[1] for f in spider.failures) == ["direct", "secret"]
    assert [hit.path for hit in server.hits] == ["/start"]


async def test_a_robots_txt_fetch_for_a_linked_private_origin_never_turns_auto_off(server):
    # The robots.txt of a linked origin is fetched before its page; it is no start request,
    # and must not be mistaken for one (which would switch the guard off for the crawl).
    spider = public_site_linking_to_private(server)
    server.route("/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    downloader = TrustingDownloader({"public.example": "127.0.0.1"}, ["public.example"])

    stats = await Crawler(spider, {**FAST, "retries": 0, "obey_robots": True}, downloader=downloader).run()

    assert stats.pages == 2
    assert stats.failures == {"blocked_address": 1}
    assert sorted(hit.path for hit in server.hits) == ["/", "/about", "/robots.txt"]
    assert {hit.host for hit in server.hits} == {"public.example"}


def test_a_proxy_is_trusted_on_its_own_port_only():
    guard = AddressGuard(True)
    guard.trust_proxies(["http://user:pw@127.0.0.1:3128", "socks5://10.0.0.9"])
    assert guard.allows("127.0.0.1", "127.0.0.1", 3128)
    assert not guard.allows("127.0.0.1", "127.0.0.1", 6379)
    assert guard.allows("10.0.0.9", "10.0.0.9", 1080)
    assert not guard.allows("10.0.0.9", "10.0.0.9", 80)
