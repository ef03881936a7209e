"""SitemapSpider: robots.txt Sitemap lines, index files, gzipped sitemaps, rules to callbacks."""

from __future__ import annotations

import gzip

from aiohttp import web
from support import FAST, Collect, html

from crawler import Crawler, Response, SitemapSpider

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(*urls: str) -> str:
    return f"<?xml version='1.0'?><urlset {NS}>" + "".join(f"<url><loc>{u}</loc></url>" for u in urls) + "</urlset>"


def index(*urls: str) -> str:
    body = "".join(f"<sitemap><loc>{u}</loc></sitemap>" for u in urls)
    return f"<?xml version='1.0'?><sitemapindex {NS}>{body}</sitemapindex>"


def shop(server) -> None:
    base = server.url("")
    robots = f"User-agent: *\nAllow: /\nSitemap: {base}/sitemap_index.xml\n"
    server.route("/robots.txt", robots, content_type="text/plain")
    server.route("/sitemap_index.xml", index(f"{base}/products.xml.gz", f"{base}/pages.xml", f"{base}/old.xml"),
                 content_type="application/xml")
    products = urlset(*(f"{base}/product/{i}" for i in range(5)), f"{base}/product/0")  # listed twice

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(products.encode()), content_type="application/octet-stream")

    server.route("/products.xml.gz", gzipped)
    server.route("/pages.xml", urlset(f"{base}/about", f"{base}/contact", "http://elsewhere.example/about"),
                 content_type="application/xml")
    server.route("/old.xml", urlset(f"{base}/old/1"), content_type="application/xml")
    for i in range(5):
        server.route(f"/product/{i}", html(f"product {i}", title=f"P{i}"))
    for path in ("/about", "/contact", "/old/1"):
        server.route(path, html(path, title=path))


async def test_sitemaps_from_robots_txt_an_index_and_a_gzipped_file_go_to_their_rules(server):
    shop(server)

    class Shop(SitemapSpider):
        sitemap_urls = [server.url("/robots.txt")]
        sitemap_follow = ["products", "pages"]  # not old.xml
        sitemap_rules = [("/product/", "parse_product"), ("/about", "parse_page")]  # /contact: no rule
        allowed_domains = ["127.0.0.1"]

        async def parse_product(self, response: Response):
            yield {"product": response.css("title::text").get()}

        async def parse_page(self, response: Response):
            yield {"page": response.url.rsplit("/", 1)[1]}

    collect = Collect()
    stats = await Crawler(Shop(), {**FAST, "obey_robots": True}, pipelines=[collect]).run()

    assert sorted(str(item) for item in collect.items) == sorted(
        [str({"product": f"P{i}"}) for i in range(5)] + [str({"page": "about"})]
    )
    fetched = [hit.path for hit in server.hits]
    assert "/old.xml" not in fetched and "/contact" not in fetched
    assert fetched.count("/product/0") == 1  # listed twice, fetched once
    assert stats.filtered.get("offsite") == 1  # elsewhere.example/about: its rule matches, its host does not


async def test_a_sitemap_that_is_not_xml_is_logged_and_the_crawl_goes_on(server, caplog):
    server.route("/sitemap.xml", "this is not xml", content_type="text/plain")

    class S(SitemapSpider):
        sitemap_urls = [server.url("/sitemap.xml")]

    stats = await Crawler(S(), FAST).run()

    assert stats.close_reason == "finished"
    assert any(r.getMessage() == "sitemap_unreadable" for r in caplog.records)


def test_a_rule_naming_a_missing_callback_fails_at_once():
    import pytest

    with pytest.raises(TypeError, match="parse_prodcut"):

        class Typo(SitemapSpider):
            sitemap_rules = [("/product/", "parse_prodcut")]
