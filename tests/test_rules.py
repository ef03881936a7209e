"""CrawlSpider with LinkRule: allow/deny, restricted regions, callbacks, follow, scope."""

from __future__ import annotations

import pytest
from support import FAST, Collect, html

from crawler import Crawler, CrawlSpider, LinkRule, Response


def shop(server) -> None:
    nav = '<nav><a href="/category/1">c1</a><a href="/category/2">c2</a><a href="/logout">out</a></nav>'
    ads = '<aside><a href="/product/99">ad</a></aside>'
    server.route("/", html(nav + ads + '<a href="/about">about</a>'))
    for c in (1, 2):
        products = "".join(f'<a href="/product/{c}{i}">p</a>' for i in range(3))
        other = f'<a href="http://127.0.0.2:{server.port}/product/77">other host</a>'
        server.route(f"/category/{c}", html(nav + f"<main>{products}{other}</main>"))
    for path in ("/product/10", "/product/11", "/product/12", "/product/20", "/product/21", "/product/22",
                 "/product/99", "/product/77", "/about", "/logout"):
        server.route(path, html(f'<h1>{path}</h1><a href="/product/10">again</a>', title=path))


async def test_rules_pick_links_route_them_and_follow_as_told(server):
    shop(server)

    class Shop(CrawlSpider):
        start_urls = [server.url("/")]
        rules = [
            LinkRule(restrict_css="nav", allow=r"/category/", deny=r"/logout"),  # follow, no callback
            LinkRule(restrict_css="main", allow=r"/product/", callback="parse_product", scope="host"),
        ]

        async def parse_product(self, response: Response):
            yield {"product": response.css("h1::text").get()}

    collect = Collect()
    await Crawler(Shop(), FAST, pipelines=[collect]).run()

    products = sorted(item["product"] for item in collect.items)
    assert products == [f"/product/{c}{i}" for c in (1, 2) for i in range(3)]
    fetched = {hit.path for hit in server.hits}
    assert "/logout" not in fetched  # denied
    assert "/product/99" not in fetched and "/about" not in fetched  # outside the regions the rules read
    assert "/product/77" not in fetched  # another host: out of the rule's scope
    assert {"/category/1", "/category/2"} <= fetched


async def test_a_rule_with_a_callback_and_follow_does_both(server):
    shop(server)

    class Shop(CrawlSpider):
        start_urls = [server.url("/about")]
        rules = [LinkRule(allow=r"/product/", callback="parse_product", follow=True)]

        async def parse_product(self, response: Response):
            return [{"product": response.css("h1::text").get()}]

    collect = Collect()
    await Crawler(Shop(), FAST, pipelines=[collect]).run()
    assert [item["product"] for item in collect.items] == ["/product/10"]  # /about isn't parsed; its link is


def test_a_rule_with_an_unknown_scope_is_refused():
    with pytest.raises(ValueError, match="scope"):
        LinkRule(scope="site")


async def test_a_catch_all_rule_after_a_specific_one_takes_only_what_that_one_left(server):
    shop(server)

    class Shop(CrawlSpider):
        start_urls = [server.url("/")]
        allowed_domains = ["127.0.0.1"]
        rules = [
            LinkRule(allow=r"/product/", callback="parse_product"),
            LinkRule(follow=True),  # every other link, as follow_all takes them
        ]

        async def parse_product(self, response: Response):
            yield {"product": response.css("h1::text").get()}

    collect = Collect()
    stats = await Crawler(Shop(), FAST, pipelines=[collect]).run()

    # Every product is parsed once, by the first rule, even where the catch-all also sees it.
    products = sorted(item["product"] for item in collect.items)
    assert products == sorted([f"/product/{c}{i}" for c in (1, 2) for i in range(3)] + ["/product/99"])
    paths = [hit.path for hit in server.hits]
    assert sorted(paths) == sorted(set(paths))  # nothing fetched twice
    assert set(paths) == {"/", "/category/1", "/category/2", "/logout", "/about", "/product/99"} | {
        f"/product/{c}{i}" for c in (1, 2) for i in range(3)
    }
    assert stats.filtered["offsite"] == 2  # /product/77 on the other host, from both categories


async def test_one_catch_all_rule_takes_every_link_once_and_counts_the_rest(server):
    shop(server)

    class Shop(CrawlSpider):
        start_urls = [server.url("/")]
        allowed_domains = ["127.0.0.1"]
        rules = [LinkRule(callback="parse_page", follow=True)]

        async def parse_page(self, response: Response):
            yield {"page": response.url.split(str(server.port), 1)[1]}

    collect = Collect()
    stats = await Crawler(Shop(), FAST, pipelines=[collect]).run()

    reached = {"/category/1", "/category/2", "/logout", "/about", "/product/99"} | {
        f"/product/{c}{i}" for c in (1, 2) for i in range(3)
    }
    assert sorted(item["page"] for item in collect.items) == sorted(reached)  # the start page has no rule
    paths = [hit.path for hit in server.hits]
    assert sorted(paths) == sorted(reached | {"/"})
    # 28 links on the pages fetched: 11 followed, 2 to the other host, the other 15 seen before.
    assert stats.filtered == {"duplicate": 15, "offsite": 2}


async def test_a_malformed_link_does_not_cost_a_scoped_rule_the_page(server):
    server.route("/", html('<a href="http://[::1/product/2">bad</a><a href="/product/1">p</a><a href="mailto:x">m</a>'))
    server.route("/product/1", html("<h1>one</h1>"))

    class Shop(CrawlSpider):
        start_urls = [server.url("/")]
        rules = [LinkRule(allow=r"/product/", callback="parse_product", scope="host")]

        async def parse_product(self, response: Response):
            yield {"product": response.css("h1::text").get()}

    collect = Collect()
    stats = await Crawler(Shop(), FAST, pipelines=[collect]).run()
    assert [item["product"] for item in collect.items] == ["one"]
    assert stats.callback_errors == 0
