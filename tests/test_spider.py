"""The spider contract, end to end against a real loopback server: what a spider declares,
what its callbacks may produce, what a Request carries, and the limits that shape a crawl."""

from __future__ import annotations

import asyncio
import dataclasses

from aiohttp import web
from support import FAST, Collect, html, links

from crawler import Crawler, Failure, Pipeline, Request, Response, Spider


@dataclasses.dataclass
class Book:
    title: str
    price: float


# -- declaring a spider ------------------------------------------------------------------------


def test_name_defaults_to_class_name_and_can_be_set():
    class BookSpider(Spider):
        pass

    class Named(Spider):
        name = "shop"

    assert BookSpider().name == "BookSpider"
    assert Named().name == "shop"


def test_spider_kwargs_become_attributes():
    spider = Spider(category="books", limit=3)
    assert spider.category == "books"
    assert spider.limit == 3


async def test_start_urls_are_fetched_and_parsed(server):
    server.route("/one", html("<h1>One</h1>"))
    server.route("/two", html("<h1>Two</h1>"))

    class S(Spider):
        start_urls = [server.url("/one"), server.url("/two")]
        settings = FAST

        async def parse(self, response):
            yield {"title": response.css("h1::text").get()}

    sink = Collect()
    stats = await Crawler(S(), pipelines=[sink]).run()
    assert sorted(i["title"] for i in sink.items) == ["One", "Two"]
    assert stats.pages == 2
    assert stats.close_reason == "finished"


async def test_custom_start_yields_requests_with_their_own_callbacks(server):
    server.route("/list", html("<p>list</p>"))
    server.route("/detail", html("<p>detail</p>"))

    class S(Spider):
        settings = FAST

        async def start(self):
            yield Request(server.url("/list"))
            yield Request(server.url("/detail"), callback=self.parse_detail)

        async def parse(self, response):
            yield {"kind": "list", "url": response.url}

        async def parse_detail(self, response):
            yield {"kind": "detail", "url": response.url}

    sink = Collect()
    await Crawler(S(), pipelines=[sink]).run()
    assert sorted((i["kind"], i["url"]) for i in sink.items) == [
        ("detail", server.url("/detail")),
        ("list", server.url("/list")),
    ]


async def test_spider_settings_apply_and_crawler_settings_override_them(server):
    server.hub(8)

    class S(Spider):
        start_urls = [server.url("/")]
        settings = {**FAST, "max_pages": 2}

        async def parse(self, response):
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)

    from_spider = await Crawler(S()).run()
    assert from_spider.pages == 2

    server.hits.clear()
    overridden = await Crawler(S(), {"max_pages": 5}).run()
    assert overridden.pages == 5
    assert len(server.hits) == 5

    unlimited = await Crawler(S(), {"max_pages": None}).run()
    assert unlimited.pages == 9
    assert unlimited.close_reason == "finished"


# -- what a callback may be and may produce ----------------------------------------------------


async def _crawl_items(server, spider_cls) -> tuple[list, object]:
    sink = Collect()
    stats = await Crawler(spider_cls(), pipelines=[sink]).run()
    return sink.items, stats


async def test_parse_as_plain_generator(server):
    server.route("/", links("/next"))
    server.route("/next", html("<h1>next</h1>"))

    class S(Spider):
        start_urls = [server.url("/")]
        settings = FAST

        def parse(self, response):
            yield {"url": response.url}
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)

    items, stats = await _crawl_items(server, S)
    assert sorted(i["url"] for i in items) == [server.url("/"), server.url("/next")]
    assert stats.pages == 2
    assert stats.callback_errors == 0


async def test_parse_as_coroutine_returning_a_list(server):
    server.route("/", links("/next"))
    server.route("/next", html("<h1>next</h1>"))

    class S(Spider):
        start_urls = [server.url("/")]
        settings = FAST

        async def parse(self, response):
            await asyncio.sleep(0)
            out: list = [{"url": response.url}]
            out += [response.follow(href) for href in response.css("a::attr(href)").getall()]
            return out

    items, stats = await _crawl_items(server, S)
    assert sorted(i["url"] for i in items) == [server.url("/"), server.url("/next")]
    assert stats.pages == 2
    assert stats.callback_errors == 0


async def test_items_may_be_dicts_or_dataclass_instances(server):
    server.route("/", html("<h1>Dune</h1>"))

    class S(Spider):
        start_urls = [server.url("/")]
        settings = FAST

        async def parse(self, response):
            yield {"title": response.css("h1::text").get()}
            yield Book(title=response.css("h1::text").get(), price=9.5)

    items, stats = await _crawl_items(server, S)
    assert items == [{"title": "Dune"}, Book("Dune", 9.5)]
    assert stats.items == 2
    assert stats.callback_errors == 0


async def test_callback_can_be_unit_tested_without_a_network():
    class S(Spider):
        async def parse(self, response):
            for product in response.css("div.product"):
                yield {"name": product.css("h2::text").get(), "price": float(product.css(".price::text").get())}
            next_page = response.css("a.next::attr(href)").get()
            if next_page:
                yield response.follow(next_page, callback=self.parse)

    page = html(
        "<div class='product'><h2>Lamp</h2><span class='price'>12.50</span></div>"
        "<div class='product'><h2>Desk</h2><span class='price'>99</span></div>"
        "<a class='next' href='?page=2'>next</a>"
    )
    spider = S()
    response = Response.from_html("https://shop.example/catalog/", page)
    out = [x async for x in spider.parse(response)]

    items = [x for x in out if isinstance(x, dict)]
    requests = [x for x in out if isinstance(x, Request)]
    assert items == [{"name": "Lamp", "price": 12.5}, {"name": "Desk", "price": 99.0}]
    assert [r.url for r in requests] == ["https://shop.example/catalog/?page=2"]
    assert requests[0].callback == spider.parse


# -- what a Request carries --------------------------------------------------------------------


async def test_callback_gets_cb_kwargs_and_meta_and_depth_grows_per_link(server):
    server.route("/", links("/d1"))
    server.route("/d1", links("/d2"))
    server.route("/d2", html("<p>leaf</p>"))

    class S(Spider):
        start_urls = [server.url("/")]
        settings = FAST

        async def parse(self, response, **kwargs):
            yield {"url": response.url, "depth": response.depth, "meta": dict(response.meta), "kwargs": kwargs}
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href, meta={"from": response.url}, cb_kwargs={"parent_depth": response.depth})

    items, _ = await _crawl_items(server, S)
    by_url = {i["url"]: i for i in items}
    assert by_url[server.url("/")]["depth"] == 0
    assert by_url[server.url("/d1")]["depth"] == 1
    assert by_url[server.url("/d2")]["depth"] == 2
    assert by_url[server.url("/d1")]["meta"]["from"] == server.url("/")
    assert by_url[server.url("/d2")]["meta"]["from"] == server.url("/d1")
    assert by_url[server.url("/d1")]["kwargs"] == {"parent_depth": 0}
    assert by_url[server.url("/d2")]["kwargs"] == {"parent_depth": 1}


async def test_errback_receives_failure_of_a_failed_request(server):
    server.route("/", links("/missing"))  # /missing is not routed: the server answers 404

    class S(Spider):
        start_urls = [server.url("/")]
        settings = FAST

        async def parse(self, response):
            yield Request(response.urljoin("/missing"), callback=self.never, errback=self.failed, meta={"tag": "m"})

        async def never(self, response):
            yield {"unexpected": response.url}

        async def failed(self, failure):
            assert isinstance(failure, Failure)
            yield {"failed": failure.url, "reason": failure.reason, "tag": failure.request.meta["tag"]}

    items, stats = await _crawl_items(server, S)
    assert items == [{"failed": server.url("/missing"), "reason": "http_404", "tag": "m"}]
    assert stats.failures == {"http_404": 1}
    assert stats.callback_errors == 0


async def test_higher_priority_is_fetched_first_within_a_domain(server):
    order = [3, 1, 4, 0, 2]
    server.route("/", html("start"))
    for p in order:
        server.route(f"/p{p}", html(str(p)))

    class S(Spider):
        start_urls = [server.url("/")]
        settings = {**FAST, "concurrency": 1, "domain_concurrency": 1}

        async def parse(self, response):
            if response.url == server.url("/"):
                for p in order:
                    yield Request(server.url(f"/p{p}"), priority=p)

    await Crawler(S()).run()
    assert [h.path for h in server.hits] == ["/", "/p4", "/p3", "/p2", "/p1", "/p0"]


async def test_dont_filter_bypasses_dedupe(server):
    server.route("/", html("start"))
    server.route("/x", html("x"))

    class S(Spider):
        start_urls = [server.url("/")]
        settings = FAST

        async def parse(self, response):
            if response.url == server.url("/"):
                yield Request(server.url("/x"))
                yield Request(server.url("/x"))  # a duplicate: filtered
                yield Request(server.url("/x"), dont_filter=True)  # fetched again

    stats = await Crawler(S()).run()
    assert len(server.hits_for("/x")) == 2
    assert stats.filtered.get("duplicate") == 1


# -- lifecycle hooks ---------------------------------------------------------------------------


async def test_opened_before_first_request_and_closed_after_with_reason(server):
    server.route("/", links("/a"))
    server.route("/a", html("a"))
    events: list = []

    class S(Spider):
        start_urls = [server.url("/")]
        settings = FAST

        async def opened(self):
            events.append(("opened", len(server.hits)))

        async def closed(self, reason):
            events.append(("closed", reason, len(server.hits)))

        async def parse(self, response):
            events.append(("parse", response.url))
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)

    await Crawler(S()).run()
    assert events[0] == ("opened", 0)
    assert events[-1] == ("closed", "finished", 2)
    assert [e[0] for e in events].count("opened") == 1
    assert [e[0] for e in events].count("closed") == 1


# -- dedupe and canonicalisation ---------------------------------------------------------------


async def test_same_page_under_different_spellings_is_fetched_once(server):
    port = server.port
    spellings = ["/a", "/a#x", f"http://127.0.0.1:{port}/a", f"HTTP://127.0.0.1:{port}/a"]
    server.route("/", links(*spellings, "/a?x=1"))
    server.route("/a", html("a"))
    server.route("/a?x=1", html("a with query"))

    class S(Spider):
        start_urls = [server.url("/")]
        settings = FAST

        async def parse(self, response):
            # One Request per link, so the crawler's own dedupe is what is tested.
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)

    stats = await Crawler(S()).run()
    assert len(server.hits_for("/a")) == 1
    assert len(server.hits_for("/a?x=1")) == 1  # the query string makes it another page
    assert stats.filtered.get("duplicate") == 3
    assert stats.pages == 3


# -- limits ------------------------------------------------------------------------------------


async def test_max_depth_filters_deeper_links(server):
    server.route("/", links("/d1"))
    server.route("/d1", links("/d2"))
    server.route("/d2", links("/d3"))
    server.route("/d3", links("/d4"))

    class S(Spider):
        start_urls = [server.url("/")]
        settings = {**FAST, "max_depth": 2}

        async def parse(self, response):
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)

    stats = await Crawler(S()).run()
    assert [h.path for h in server.hits] == ["/", "/d1", "/d2"]
    assert stats.filtered.get("depth") == 1
    assert stats.close_reason == "finished"


async def test_max_pages_hands_exactly_n_pages_to_callbacks(server):
    server.hub(10)
    parsed: list = []

    class S(Spider):
        start_urls = [server.url("/")]
        settings = {**FAST, "max_pages": 4}

        async def parse(self, response):
            parsed.append(response.url)
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)

    stats = await Crawler(S()).run()
    assert len(parsed) == 4
    assert stats.pages == 4
    assert len(server.hits) == 4
    assert stats.close_reason == "max_pages"
    assert stats.filtered.get("max_pages") == 11 - 4  # 11 pages discovered, 4 crawled


async def test_requests_made_with_replace_from_a_redirected_page_count_in_max_pages(server):
    """A request built from a redirected one (``response.request.replace``) is a new chain:
    it takes its place in max_pages like any other page."""
    pages = server.hub(6)

    async def bounce(request: web.Request) -> web.Response:
        raise web.HTTPFound("/")

    server.route("/start", bounce)

    class S(Spider):
        settings = {**FAST, "max_pages": 3, "concurrency": 1}

        async def start(self):
            yield Request(server.url("/start"))

        async def parse(self, response):
            for path in pages if response.request.redirects else ():
                yield response.request.replace(url=server.url(path))

    stats = await Crawler(S()).run()
    assert stats.pages == 3
    assert stats.close_reason == "max_pages"


async def test_max_items_stops_after_exactly_n_items(server):
    server.hub(10)

    class S(Spider):
        start_urls = [server.url("/")]
        settings = {**FAST, "max_items": 5}

        async def parse(self, response):
            yield {"url": response.url, "n": 1}
            yield {"url": response.url, "n": 2}
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)

    items, stats = await _crawl_items(server, S)
    assert len(items) == 5
    assert stats.items == 5
    assert stats.close_reason == "max_items"


async def test_an_item_a_pipeline_fails_on_gives_its_max_items_place_back(server):
    server.hub(10)

    class FailsOnce(Pipeline):
        failed = False

        async def process_item(self, item, spider):
            if not self.failed:
                self.failed = True
                raise RuntimeError("pipeline bug")
            return item

    class S(Spider):
        start_urls = [server.url("/")]
        settings = {**FAST, "max_items": 2, "concurrency": 1}

        async def parse(self, response):
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)
            yield {"url": response.url}  # the first one fails in the pipeline: a callback error

    sink = Collect()
    stats = await Crawler(S(), pipelines=[FailsOnce(), sink]).run()

    assert len(sink.items) == 2  # the failed item's place went to the next one
    assert stats.items == 2
    assert stats.callback_errors == 1
    assert stats.close_reason == "max_items"
    assert len(server.hits) < 11  # the crawl stopped there, not after the whole site


async def test_offsite_links_are_filtered_and_never_requested(server):
    server.route("/", links("/in", server.url("/out", host="127.0.0.2"), server.url("/in2")))
    server.route("/in", html("in"))
    server.route("/in2", html("in2"))
    server.route("/out", html("out"))

    class S(Spider):
        start_urls = [server.url("/")]
        allowed_domains = ["127.0.0.1"]
        settings = FAST

        async def parse(self, response):
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)

    stats = await Crawler(S()).run()
    assert server.hits_for(host="127.0.0.2") == []
    assert sorted(h.path for h in server.hits) == ["/", "/in", "/in2"]
    assert stats.filtered.get("offsite") == 1


# -- per-domain politeness ---------------------------------------------------------------------


async def test_rate_limit_spaces_requests_to_one_domain(server):
    n = 6
    for i in range(n):
        server.route(f"/r{i}", html(str(i)))

    class S(Spider):
        start_urls = [server.url(f"/r{i}") for i in range(n)]
        settings = {**FAST, "rate_limit": 10}

        async def parse(self, response):
            yield {"url": response.url}

    stats = await Crawler(S()).run()
    assert stats.pages == n
    times = sorted(h.at for h in server.hits)
    assert len(times) == n
    assert times[-1] - times[0] >= 0.8 * (n - 1) / 10


async def test_domain_concurrency_caps_each_host_independently(server):
    snapshots: list[dict[str, int]] = []

    async def slow(request):
        snapshots.append(dict(server.in_flight))
        await asyncio.sleep(0.2)
        return web.Response(text=html("slow"), content_type="text/html")

    for i in range(4):
        server.route(f"/s{i}", slow)

    class S(Spider):
        start_urls = [server.url(f"/s{i}", host=h) for h in ("127.0.0.1", "127.0.0.2") for i in range(4)]
        settings = {**FAST, "concurrency": 16, "domain_concurrency": 2}

        async def parse(self, response):
            yield {"url": response.url}

    stats = await Crawler(S()).run()
    assert stats.pages == 8
    assert server.max_in_flight["127.0.0.1"] <= 2
    assert server.max_in_flight["127.0.0.2"] <= 2
    # Both hosts had their two requests in flight at the same moment: one host's cap never held the other back.
    assert any(s.get("127.0.0.1") == 2 and s.get("127.0.0.2") == 2 for s in snapshots)


async def test_a_link_back_to_a_start_page_is_a_duplicate(server):
    server.route("/", links("/a"))
    server.route("/a", links("/", "/a"))

    class Back(Spider):
        start_urls = [server.url("/")]
        settings = FAST

        async def parse(self, response):
            for request in response.follow_all(css="a"):
                yield request

    stats = await Crawler(Back()).run()
    assert [h.path for h in server.hits] == ["/", "/a"]
    assert stats.filtered["duplicate"] == 2
