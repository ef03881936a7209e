"""What a Scrapy user writes out of habit either works as they expect or fails at once with a
message that says what to write instead; never a crawl that silently does nothing."""

from __future__ import annotations

import logging

import pytest
from support import FAST, Collect, html, links

from crawler import Crawler, Pipeline, Request, Settings, Spider, SpiderLoadError
from crawler._scrapy import translate_scrapy_settings

# -- start_urls and start_requests -------------------------------------------------------------


async def test_a_string_start_urls_is_one_url(server):
    server.route("/", html("<h1>home</h1>"))

    class S(Spider):
        start_urls = server.url("/")  # a string, not a list
        settings = FAST

        async def parse(self, response):
            yield {"title": response.css("h1::text").get()}

    sink = Collect()
    stats = await Crawler(S(), pipelines=[sink]).run()
    assert sink.items == [{"title": "home"}]
    assert stats.filtered == {} and stats.start_requests == 1
    assert [h.path for h in server.hits] == ["/"]


async def test_start_urls_given_as_a_spider_argument_string_is_one_url(server):
    server.route("/", html("<h1>home</h1>"))

    class S(Spider):
        settings = FAST

        async def parse(self, response):
            yield {"url": response.url}

    stats = await Crawler(S(start_urls=server.url("/"))).run()  # what -a start_urls=URL does
    assert stats.pages == 1 and stats.filtered == {}


@pytest.mark.parametrize("style", ["generator", "async generator", "list"])
async def test_scrapy_start_requests_is_honoured(server, style):
    server.route_pages(["/a", "/b"])

    class S(Spider):
        settings = FAST

        async def parse(self, response):
            yield {"url": response.url, "tag": response.meta["tag"]}

    urls = [server.url("/a"), server.url("/b")]
    if style == "generator":

        def start_requests(self):
            for url in urls:
                yield Request(url, meta={"tag": style})
    elif style == "async generator":

        async def start_requests(self):
            for url in urls:
                yield Request(url, meta={"tag": style})
    else:

        def start_requests(self):
            return [Request(url, meta={"tag": style}) for url in urls]

    S.start_requests = start_requests  # type: ignore[method-assign]
    sink = Collect()
    stats = await Crawler(S(), pipelines=[sink]).run()
    assert sorted((i["url"], i["tag"]) for i in sink.items) == [(url, style) for url in urls]
    assert stats.start_requests == 2


async def test_start_overrides_start_requests(server):
    server.route_pages(["/from-start", "/from-start-requests"])

    class S(Spider):
        settings = FAST

        async def start(self):
            yield Request(server.url("/from-start"))

        def start_requests(self):
            yield Request(server.url("/from-start-requests"))

        async def parse(self, response):
            yield {"url": response.url}

    await Crawler(S()).run()
    assert [h.path for h in server.hits] == ["/from-start"]


async def test_start_urls_of_the_wrong_type_is_an_error_naming_it(server, caplog):
    class S(Spider):
        start_urls = 42

        async def parse(self, response):
            yield {}

    with caplog.at_level(logging.ERROR, logger="crawler"):
        stats = await Crawler(S(), FAST).run()
    assert stats.pages == 0 and stats.callback_errors == 1
    assert "start_urls" in caplog.text
    assert "no start requests" in stats.no_pages_reason()


# -- custom_settings ----------------------------------------------------------------------------


def test_custom_settings_is_refused_naming_settings_and_our_names():
    class S(Spider):
        custom_settings = {
            "CONCURRENT_REQUESTS": 8,
            "CONCURRENT_REQUESTS_PER_DOMAIN": 4,
            "DOWNLOAD_DELAY": 0.5,
            "ROBOTSTXT_OBEY": False,
            "DEPTH_LIMIT": 3,
            "CLOSESPIDER_PAGECOUNT": 100,
            "SOMETHING_ELSE": 1,
        }

    with pytest.raises(SpiderLoadError) as caught:
        Crawler(S())
    message = str(caught.value)
    assert "custom_settings" in message and "`settings = " in message
    expected = {
        "concurrency": 8,
        "domain_concurrency": 4,
        "rate_limit": 2.0,
        "obey_robots": False,
        "max_depth": 3,
        "max_pages": 100,
    }
    assert repr(expected) in message  # ready to paste
    assert "SOMETHING_ELSE: no equivalent here" in message


def test_an_empty_custom_settings_is_harmless():
    class S(Spider):
        custom_settings = None

    Crawler(S())


# -- allowed_domains ----------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["127.0.0.1:{port}", "http://127.0.0.1:{port}/", "127.0.0.1"])
async def test_allowed_domains_with_a_port_or_scheme_is_used_as_its_host(server, caplog, entry):
    server.route("/", links("/next", f"http://127.0.0.2:{server.port}/away"))
    server.route("/next", html("next"))
    server.route("/away", html("away"))

    class S(Spider):
        start_urls = [server.url("/")]
        allowed_domains = [entry.format(port=server.port)]
        settings = FAST

        async def parse(self, response):
            yield {"url": response.url}
            for request in response.follow_all(css="a"):
                yield request

    with caplog.at_level(logging.WARNING, logger="crawler"):
        stats = await Crawler(S()).run()
    assert stats.pages == 2  # "/" and "/next"; 127.0.0.2 stays offsite
    assert stats.filtered == {"offsite": 1}
    assert sorted(h.path for h in server.hits) == ["/", "/next"]
    warned = [r for r in caplog.records if r.getMessage() == "allowed_domains_entry"]
    if entry == "127.0.0.1":
        assert warned == []
    else:
        assert len(warned) == 1 and entry.format(port=server.port) in warned[0].reason


def test_a_string_allowed_domains_is_one_host():
    class S(Spider):
        allowed_domains = "example.com"

    assert Crawler(S())._allowed_hosts == ("example.com",)


def test_allowed_domains_that_names_no_host_is_an_error_not_an_open_crawl():
    class S(Spider):
        allowed_domains = ["http://", ""]

    with pytest.raises(SpiderLoadError, match="allowed_domains names no usable host"):
        Crawler(S())


# -- errbacks -----------------------------------------------------------------------------------


async def test_errback_gets_the_failure_only_and_cb_kwargs_on_its_request(server):
    server.route("/", links("/missing"))

    class S(Spider):
        start_urls = [server.url("/")]
        settings = FAST

        async def parse(self, response):
            yield response.follow("/missing", callback=self.page, errback=self.failed, cb_kwargs={"sku": 7})

        async def page(self, response, sku):
            yield {"sku": sku}

        async def failed(self, failure):  # Scrapy's errback signature
            yield {"failed": failure.reason, "sku": failure.request.cb_kwargs["sku"]}

    sink = Collect()
    stats = await Crawler(S(), pipelines=[sink]).run()
    assert sink.items == [{"failed": "http_404", "sku": 7}]
    assert stats.callback_errors == 0


# -- per-request handle_statuses ----------------------------------------------------------------


@pytest.mark.parametrize(
    "meta",
    [
        {"handle_statuses": [404]},
        {"handle_statuses": 404},
        {"handle_statuses": True},
        {"handle_httpstatus_list": [404]},
        {"handle_httpstatus_all": True},
    ],
)
async def test_a_request_may_handle_statuses_of_its_own(server, meta):
    server.route("/gone", html("<h1>gone</h1>"), status=404)
    server.route("/also-gone", html("<h1>also gone</h1>"), status=404)

    class S(Spider):
        settings = FAST

        async def start(self):
            yield Request(server.url("/gone"), meta=meta)
            yield Request(server.url("/also-gone"))  # no meta: a failure as usual

        async def parse(self, response):
            yield {"status": response.status, "title": response.css("h1::text").get()}

    sink = Collect()
    stats = await Crawler(S(), pipelines=[sink]).run()
    assert sink.items == [{"status": 404, "title": "gone"}]
    assert stats.failures == {"http_404": 1}


# -- pipelines and middlewares as classes -------------------------------------------------------


class CountingPipeline(Pipeline):
    def __init__(self) -> None:
        self.count = 0

    async def process_item(self, item, spider):
        self.count += 1
        item["seen_by_pipeline"] = self.count
        return item


class CountingMiddleware:
    def __init__(self) -> None:
        self.requests = 0

    async def process_request(self, request):
        self.requests += 1
        request.headers["X-Count"] = str(self.requests)

    async def process_response(self, request, response):
        return response

    async def process_exception(self, request, exc):
        return None


async def test_pipeline_and_middleware_classes_get_one_instance_per_crawl(server):
    server.hub(3)

    class S(Spider):
        settings = FAST
        pipelines = [CountingPipeline]
        middlewares = [CountingMiddleware]

        def __init__(self, limit: int) -> None:
            super().__init__()
            self.limit = limit

        async def start(self):
            yield Request(server.url("/"))

        async def parse(self, response):
            yield {"url": response.url}
            for request in response.follow_all(css="a")[: self.limit]:
                yield request

    sink = Collect()
    first = Crawler(S(3), pipelines=[sink])
    second = Crawler(S(1), pipelines=[sink])
    await first.run()
    await second.run()
    assert first._pipelines[0] is not second._pipelines[0]
    assert first._pipelines[0].count == 4 and second._pipelines[0].count == 2
    # Each crawl counted from 1: nothing leaked from one crawl to the next.
    assert sorted(i["seen_by_pipeline"] for i in sink.items) == [1, 1, 2, 2, 3, 4]
    counts = sorted(int(h.headers["X-Count"]) for h in server.hits)
    assert counts == [1, 1, 2, 2, 3, 4]


def test_a_pipeline_class_that_needs_arguments_is_a_clear_error():
    class NeedsPath(Pipeline):
        def __init__(self, path: str) -> None:
            self.path = path

    class S(Spider):
        pipelines = [NeedsPath]

    with pytest.raises(TypeError, match=r"NeedsPath.*list an instance instead"):
        Crawler(S())


@pytest.mark.parametrize(
    "scrapy",
    [
        {"DOWNLOAD_MAXSIZE": 0, "CONCURRENT_REQUESTS_PER_IP": 0, "DOWNLOAD_DELAY": 0, "DEPTH_LIMIT": 0},
        {"DOWNLOAD_MAXSIZE": 1024, "CONCURRENT_REQUESTS_PER_IP": 2, "DOWNLOAD_DELAY": 3, "RETRY_ENABLED": False},
        {"HTTPERROR_ALLOWED_CODES": [404], "COOKIES_ENABLED": False, "USER_AGENT": "bot/1", "RETRY_ENABLED": True},
    ],
)
def test_the_settings_suggested_for_custom_settings_are_valid_here(scrapy):
    """Scrapy's 0 means "off" for some settings: what the error suggests must itself load."""
    ours, _ = translate_scrapy_settings(scrapy)
    Settings().merge(ours)
