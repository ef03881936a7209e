"""User middlewares: added per spider, run after the built-ins, in list order."""

import pytest
from support import FAST, Collect, RecordingSpider, html

from crawler import BaseMiddleware, Crawler, IgnoreRequest, Request, Response


class Tag(BaseMiddleware):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def process_request(self, request: Request) -> None:
        self.log.append(f"{self.name}:request")
        request.headers["X-Tag"] = request.headers.get("X-Tag", "") + self.name

    async def process_response(self, request: Request, response: Response) -> Response:
        self.log.append(f"{self.name}:response")
        return response


async def test_middlewares_run_in_list_order_and_change_requests(server):
    server.route("/", html("<p>hi</p>"))
    log: list[str] = []
    spider = RecordingSpider([server.url("/")])
    spider.middlewares = [Tag("a", log), Tag("b", log)]
    stats = await Crawler(spider, FAST).run()
    assert stats.pages == 1
    assert log == ["a:request", "b:request", "a:response", "b:response"]
    assert server.hits[0].headers["X-Tag"] == "ab"
    assert server.hits[0].headers["User-Agent"].startswith("crawler/")


class Cache(BaseMiddleware):
    async def process_request(self, request: Request) -> Response | None:
        if request.url.endswith("/cached"):
            return Response.from_html(request.url, "<p>from cache</p>", request=request)
        return None


class Block(BaseMiddleware):
    async def process_request(self, request: Request) -> None:
        if "private" in request.url:
            raise IgnoreRequest("blocked_by_policy")


async def test_a_middleware_can_answer_or_drop_a_request(server):
    server.route("/live", html("<p>live</p>"))
    spider = RecordingSpider([server.url("/cached"), server.url("/live"), server.url("/private")])
    collect = Collect()
    stats = await Crawler(spider, FAST, middlewares=[Cache(), Block()], pipelines=[collect]).run()
    assert sorted(item["path"] for item in collect.items) == ["/cached", "/live"]
    assert [h.path for h in server.hits] == ["/live"]  # the cache answered, the blocked one never went out
    assert stats.filtered == {"blocked_by_policy": 1}
    assert stats.failures == {}


class Fallback(BaseMiddleware):
    """Answers a failed request with a stand-in page (after the built-in retries gave up)."""

    async def process_exception(self, request: Request, exc: Exception) -> Response:
        return Response.from_html(request.url, "<p>stand-in</p>", request=request)


async def test_process_exception_can_recover_a_failed_request(server):
    spider = RecordingSpider(["http://127.0.0.1:9/unreachable"])  # port 9: connection refused
    stats = await Crawler(spider, {**FAST, "retries": 0}, middlewares=[Fallback()]).run()
    assert stats.pages == 1 and stats.failures == {}
    assert spider.parsed[0].css("p::text").get() == "stand-in"


def test_an_object_without_the_hooks_is_rejected():
    class NotOne:
        async def process_request(self, request):
            return None

    with pytest.raises(TypeError, match="not a Middleware"):
        Crawler(RecordingSpider([]), middlewares=[NotOne()])
