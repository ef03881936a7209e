"""Item pipelines: plain objects with async open/process_item/close, run in list order."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from support import FAST, html, links

import crawler
from crawler import Crawler, Pipeline, Spider


class Recorder(Pipeline):
    """Records every call into a shared log, tagged with its own name."""

    def __init__(self, name: str, log: list) -> None:
        self.name = name
        self.log = log
        self.seen: list = []

    async def open(self, spider):
        self.log.append((self.name, "open", spider.name))

    async def process_item(self, item, spider):
        self.log.append((self.name, "item", dict(item)))
        self.seen.append(item)
        return item

    async def close(self, spider):
        self.log.append((self.name, "close", spider.name))


def one_page_spider(server, *items, pipelines=()) -> Spider:
    server.route("/", html("<h1>only page</h1>"))

    class S(Spider):
        name = "one-page"
        start_urls = [server.url("/")]
        settings = FAST

        async def parse(self, response):
            for item in items:
                yield dict(item)

    spider = S()
    spider.pipelines = list(pipelines)
    return spider


async def collect_items(c: Crawler) -> tuple[list, crawler.CrawlStats]:
    """Run ``c`` while streaming its items."""
    streamed: list = []

    async def drain():
        async for item in c.items():
            streamed.append(item)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(drain())
        run = tg.create_task(c.run())
    return streamed, run.result()


async def test_pipelines_open_process_and_close_around_the_crawl(server):
    log: list = []
    spider = one_page_spider(server, {"n": 1}, {"n": 2})
    stats = await Crawler(spider, pipelines=[Recorder("p", log)]).run()

    assert log == [
        ("p", "open", "one-page"),
        ("p", "item", {"n": 1}),
        ("p", "item", {"n": 2}),
        ("p", "close", "one-page"),
    ]
    assert stats.items == 2


async def test_spider_pipelines_run_before_crawler_pipelines_in_list_order(server):
    log: list = []
    first, second, third = Recorder("spider-1", log), Recorder("spider-2", log), Recorder("crawler-1", log)
    spider = one_page_spider(server, {"n": 1}, pipelines=[first, second])
    await Crawler(spider, pipelines=[third]).run()

    item_calls = [name for name, what, _ in log if what == "item"]
    assert item_calls == ["spider-1", "spider-2", "crawler-1"]
    opens = [name for name, what, _ in log if what == "open"]
    assert opens == ["spider-1", "spider-2", "crawler-1"]
    closes = [name for name, what, _ in log if what == "close"]
    assert sorted(closes) == ["crawler-1", "spider-1", "spider-2"]


async def test_a_pipeline_can_change_the_item(server):
    class AddCurrency(Pipeline):
        async def process_item(self, item, spider):
            return {**item, "currency": "EUR", "price": round(item["price"] * 1.2, 2)}

    log: list = []
    after = Recorder("after", log)
    spider = one_page_spider(server, {"price": 10.0}, {"price": 2.5})
    streamed, stats = await collect_items(Crawler(spider, pipelines=[AddCurrency(), after]))

    expected = [{"price": 12.0, "currency": "EUR"}, {"price": 3.0, "currency": "EUR"}]
    assert streamed == expected  # what items() yields is the changed item
    assert after.seen == expected  # and so is what later pipelines see
    assert stats.items == 2


async def test_a_pipeline_can_replace_a_dict_with_a_dataclass(server):
    @dataclasses.dataclass
    class Product:
        name: str

    class ToProduct(Pipeline):
        async def process_item(self, item, spider):
            return Product(**item)

    spider = one_page_spider(server, {"name": "lamp"})
    streamed, _ = await collect_items(Crawler(spider, pipelines=[ToProduct()]))
    assert streamed == [Product("lamp")]


async def test_drop_item_discards_and_counts_by_reason(server):
    class DropCheap(Pipeline):
        async def process_item(self, item, spider):
            if item["price"] < 5:
                raise crawler.DropItem("too cheap")
            if item.get("name") is None:
                raise crawler.DropItem("no name")
            return item

    log: list = []
    after = Recorder("after", log)
    spider = one_page_spider(
        server,
        {"name": "a", "price": 10},
        {"name": "b", "price": 1},
        {"name": "c", "price": 2},
        {"price": 50},
        {"name": "d", "price": 7},
    )
    streamed, stats = await collect_items(Crawler(spider, pipelines=[DropCheap(), after]))

    assert [i["name"] for i in streamed] == ["a", "d"]
    assert [i["name"] for i in after.seen] == ["a", "d"]  # later pipelines never see a dropped item
    assert stats.items == 2
    assert stats.items_dropped == {"too cheap": 2, "no name": 1}


class MissingClose:
    async def open(self, spider):
        pass

    async def process_item(self, item, spider):
        return item


class OnlyProcess:
    async def process_item(self, item, spider):
        return item


@pytest.mark.parametrize("bogus", [MissingClose(), OnlyProcess(), object(), "pipeline"])
def test_something_that_is_not_a_pipeline_is_rejected_at_construction(bogus):
    class S(Spider):
        start_urls = ["http://127.0.0.1:9/"]

    with pytest.raises(TypeError):
        Crawler(S(), pipelines=[bogus])

    spider = S()
    spider.pipelines = [bogus]
    with pytest.raises(TypeError):
        Crawler(spider)


async def test_close_runs_even_if_a_callback_raised(server):
    server.route("/", links("/bad"))
    server.route("/bad", html("bad"))
    log: list = []
    pipe = Recorder("p", log)

    class S(Spider):
        start_urls = [server.url("/")]
        settings = FAST

        async def parse(self, response):
            yield {"url": response.url}
            if response.url.endswith("/bad"):
                raise RuntimeError("broken callback")
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)

    stats = await Crawler(S(), pipelines=[pipe]).run()

    assert stats.callback_errors == 1
    assert stats.items == 2  # the item yielded before the error was kept
    assert [i["url"] for i in pipe.seen] == [server.url("/"), server.url("/bad")]
    assert log[-1] == ("p", "close", "S")
