"""The development HTTP cache: a second run of the same spider asks the site nothing."""

from __future__ import annotations

import time

import pytest
from support import DOWNLOADERS, FAST, Collect, links

from crawler import Crawler, Response, Spider


def site(server) -> None:
    server.route("/", links("/a", "/b", "/gone"))
    server.route("/a", links("/b"))
    server.route("/b", "<html><title>B</title></html>")
    server.route("/gone", "no", status=404)
    server.route("/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")


def spider_for(server) -> Spider:
    class S(Spider):
        start_urls = [server.url("/")]

        async def parse(self, response: Response):
            yield {"url": response.url, "status": response.status, "length": len(response.body)}
            for request in response.follow_all(css="a"):
                yield request

    return S()


async def crawl(server, **settings) -> list:
    collect = Collect()
    await Crawler(spider_for(server), {**FAST, "obey_robots": True, **settings}, pipelines=[collect]).run()
    return sorted(collect.items, key=lambda item: item["url"])


@pytest.mark.parametrize("downloader", DOWNLOADERS)
async def test_the_second_run_makes_no_request_to_the_site(server, tmp_path, downloader):
    site(server)
    first = await crawl(server, http_cache=str(tmp_path), downloader=downloader)
    hits = len(server.hits)
    assert hits == 5  # robots.txt, /, /a, /b, /gone

    second = await crawl(server, http_cache=str(tmp_path), downloader=downloader)

    assert second == first
    # Only the 404 was asked again: errors are not kept unless http_cache_errors says so.
    assert [hit.path for hit in server.hits[hits:]] == ["/gone"]


async def test_errors_are_kept_when_asked(server, tmp_path):
    site(server)
    await crawl(server, http_cache=str(tmp_path), http_cache_errors=True)
    hits = len(server.hits)
    await crawl(server, http_cache=str(tmp_path), http_cache_errors=True)
    assert len(server.hits) == hits


async def test_entries_expire(server, tmp_path):
    site(server)
    await crawl(server, http_cache=str(tmp_path), http_cache_expiry=0.2)
    hits = len(server.hits)
    time.sleep(0.3)
    await crawl(server, http_cache=str(tmp_path), http_cache_expiry=0.2)
    assert len(server.hits) == 2 * hits  # everything asked again


async def test_a_site_without_robots_txt_is_not_asked_for_it_again(server, tmp_path):
    server.route("/", links("/a"))
    server.route("/a", "<html><title>A</title></html>")  # and no /robots.txt: a 404
    await crawl(server, http_cache=str(tmp_path))
    assert [hit.path for hit in server.hits] == ["/robots.txt", "/", "/a"]
    await crawl(server, http_cache=str(tmp_path))
    assert len(server.hits) == 3
