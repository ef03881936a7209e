from support import FAST, html, links

from crawler import Crawler, Response, Spider


async def test_crawl_follows_links_and_yields_items(server):
    server.route("/", links("/a", "/b", "/a#frag"))
    server.route("/a", html("<h1>A</h1>" + '<a href="/b">b</a>'))
    server.route("/b", html("<h1>B</h1>"))

    class S(Spider):
        start_urls = [server.url("/")]
        settings = FAST

        async def parse(self, response: Response):
            title = response.css("h1::text").get()
            if title:
                yield {"title": title}
            for req in response.follow_all(css="a"):
                yield req

    stats = await Crawler(S()).run()
    assert stats.items == 2
    assert sorted(h.path for h in server.hits) == ["/", "/a", "/b"]
    assert stats.close_reason == "finished"
