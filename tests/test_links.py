"""The frontier's link screen: what follow_all gets back, what is counted, what is remembered."""

from __future__ import annotations

import pytest
from support import FAST, TestServer, html

from crawler import Crawler, CrawlSpider, LinkRule, Request, Response, Spider, fingerprint
from crawler._links import LinkScreen
from crawler._seen import FingerprintSet
from crawler._stats import StatsCollector

PAGE = "http://example.com/shop/item1.html"


def screen(max_bytes: int = 100_000) -> LinkScreen:
    return LinkScreen(FingerprintSet(), lambda host: host != "example.com", StatsCollector(), max_bytes=max_bytes)


def test_dead_links_are_counted_by_reason_and_live_ones_come_back_canonical():
    links = screen()
    links._seen.add(fingerprint("http://example.com/shop/seen.html"))

    got = links(PAGE, ["seen.html", "new.html#top", "/shop/new.html", "http://other.org/", "mailto:x", "HTTP://Example.COM/a"])

    assert got == ["http://example.com/shop/new.html", "http://example.com/a"]
    assert links._stats.filtered_by == {"duplicate": 2, "offsite": 1, "bad_url": 1}


def test_a_dead_href_is_remembered_for_the_directory_and_still_counted():
    links = screen()
    links._seen.add(fingerprint("http://example.com/shop/seen.html"))
    links(PAGE, ["seen.html"])

    links._seen = FingerprintSet()  # were it resolved again, it would pass: it is not
    assert links("http://example.com/shop/item2.html", ["seen.html"]) == []
    assert links._stats.filtered_by == {"duplicate": 2}
    # Another directory resolves it elsewhere: no memory applies there.
    assert links("http://example.com/other/x.html", ["seen.html"]) == ["http://example.com/other/seen.html"]


def test_absolute_links_found_dead_on_one_host_are_remembered_for_every_host():
    # A broad crawl: the same absolute link on pages of many hosts (each its own directory).
    links = screen()
    links._seen.add(fingerprint("http://example.com/shop/seen.html"))
    links(PAGE, ["http://example.com/shop/seen.html", "mailto:x", "http://other.org/a"])

    links._seen = FingerprintSet()  # were it resolved again, it would pass: it is not
    for page in ("http://a.example.com/p/1.html", "http://b.example.com/", "https://example.com/x/y"):
        assert links(page, ["http://example.com/shop/seen.html", "mailto:x", "http://other.org/a"]) == []
    assert links._stats.filtered_by == {"duplicate": 4, "bad_url": 4, "offsite": 4}
    # A site-absolute path depends on the host: remembered for its directory only.
    links._seen.add(fingerprint("http://example.com/shop/seen.html"))
    links(PAGE, ["/shop/seen.html"])
    links._seen = FingerprintSet()
    assert links("http://example.com/other/item.html", ["/shop/seen.html"]) == ["http://example.com/shop/seen.html"]


def test_the_memory_is_bounded_by_its_size():
    links = screen(max_bytes=2000)
    for page in range(50):
        links._seen.add(fingerprint(f"http://example.com/shop/{page}.html"))
        links(PAGE, [f"{page}.html", "x" * 500 + ":long"])  # the long one is bad_url, remembered
        assert links._bytes <= 2000 + 2 * (500 + 120) + 400 + 100  # cleared when a page finds it full
    for directory in range(50):  # links that pass are not remembered: no directory is kept
        links(f"http://example.com/d{directory}/", [f"new{directory}.html"])
    assert len(links._dead) <= 1


def test_hrefs_that_resolve_per_page_are_never_remembered():
    links = screen()
    for href in ["http:?q=1", "HTTP:?q=1", "\x01?q=1", " ?q=1", "?q=1"]:
        links._seen = FingerprintSet()
        links._seen.add(fingerprint("http://example.com/shop/item1.html?q=1"))
        assert links(PAGE, [href]) == [], href  # dead here ...
        # ... alive on the next page of the same directory
        assert links("http://example.com/shop/item2.html", [href]) == ["http://example.com/shop/item2.html?q=1"], href


class IdiomSpider(Spider):
    """Yields each page's URL and follows every link on it, in one of the idioms users write."""

    name = "idioms"

    def __init__(self, start: str, idiom: str = "follow_all") -> None:
        super().__init__()
        self.start_urls = [start]
        self.allowed_domains = ["127.0.0.1"]
        self.idiom = idiom

    async def parse(self, response: Response):
        yield {"url": response.url}
        if self.idiom == "follow_all":
            for request in response.follow_all(css="a"):
                yield request
        elif self.idiom == "follow":
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)
        else:  # Scrapy spiders written before follow()
            for href in response.css("a::attr(href)").getall():
                yield Request(response.urljoin(href), callback=self.parse)


@pytest.mark.parametrize("idiom", ["follow_all", "follow", "urljoin"])
async def test_a_menu_on_every_page_is_fetched_once_and_every_other_copy_counted(server: TestServer, idiom: str):
    menu = ["/menu/a.html", "/menu/b.html", "../menu/c.html", "http://elsewhere.example/", "mailto:x", "#top",
            "/menu/b.html#x", "../menu/c.html#"]
    for i in range(10):
        links = [f"{j}.html" for j in range(10)] + menu
        server.route(f"/p/{i}.html", html("".join(f'<a href="{h}">x</a>' for h in links)))
    for name in "abc":
        server.route(f"/menu/{name}.html", html("menu"))
    spider = IdiomSpider(server.url("/p/0.html"), idiom)  # ten pages linking to each other and a menu

    stats = await Crawler(spider, FAST).run()

    fetched = [hit.path for hit in server.hits]
    assert sorted(fetched) == sorted([f"/p/{i}.html" for i in range(10)] + [f"/menu/{n}.html" for n in "abc"])
    assert stats.items == 13
    # 18 links on each of 10 pages: 12 are followed (0.html is the start page), the rest
    # are duplicates (a page itself, "#top", and the menu with a fragment among them),
    # whether resolved, remembered or judged before.
    assert stats.filtered == {"duplicate": 10 * 18 - 12 - 20, "offsite": 10, "bad_url": 10}


class DirectorySpider(Spider):
    """Pages in two directories, each linking to "x.html": a different page in each."""

    name = "directories"

    def __init__(self, base: str) -> None:
        super().__init__()
        self.start_urls = [f"{base}/a/1.html", f"{base}/b/1.html"]

    async def parse(self, response: Response):
        yield {"url": response.url}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href)


async def test_follow_resolves_a_remembered_href_against_each_directory_and_base(server: TestServer):
    for directory in "abc":
        for page in ("1", "2", "x"):
            server.route(f"/{directory}/{page}.html", html('<a href="x.html">x</a><a href="2.html">2</a>'))
    # In directory a, a page whose <base> sends its relative links to c/.
    server.route("/a/2.html", html('<base href="/c/"><a href="x.html">x</a>'))

    stats = await Crawler(DirectorySpider(server.url("")), FAST).run()

    fetched = sorted(hit.path for hit in server.hits)
    assert fetched == ["/a/1.html", "/a/2.html", "/a/x.html", "/b/1.html", "/b/2.html", "/b/x.html",
                       "/c/2.html", "/c/x.html"]
    assert stats.items == 8


class ListSpider(Spider):
    """The urljoin idiom in a plain method that returns a list, with a Request subclass (the
    frontier canonicalises all but the last one)."""

    name = "idioms-list"
    allowed_domains = ["127.0.0.1"]

    class Link(Request):
        __slots__ = ()

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start_urls = [start]

    def parse(self, response: Response) -> list[Request]:
        return [self.Link(response.urljoin(href)) for href in response.css("a::attr(href)").getall()]


class RulesSpider(CrawlSpider):
    name = "idioms-rules"
    allowed_domains = ["127.0.0.1"]
    rules = [LinkRule(callback="parse_page", follow=True)]

    def __init__(self, start: str) -> None:
        super().__init__()
        self.start_urls = [start]

    async def parse_page(self, response: Response):
        return []


async def test_every_idiom_fetches_the_same_urls_for_links_as_real_pages_write_them(server: TestServer):
    port = server.port
    hrefs = [
        " /a.html ", "\n/b.html\n", "c.html#frag", "./d.html", "/f.html?x=1&y=2", "/g.html?q=a b",
        f"HTTP://127.0.0.1:{port}/h.html", f"//127.0.0.1:{port}/i.html", "/j%41.html", "k.html\t",
        "/l/./m.html", "/n/../o.html", "/ünï.html", "?page=2", "", "#top", "dir/", "p.html#a b",
        "javascript:void(0)", "mailto:x@example.com", "tel:+1", "http://[::1", "http://elsewhere.example/x",
        f"http://127.0.0.1:{port}/q.html#x", "y" * 9000 + ".html",  # longer than any URL the crawl fetches
    ]
    server.route("/", html("".join(f'<a href="{h}">x</a>' for h in hrefs)))
    # A page with a <base href>, and relative links that go up and across from it.
    server.route("/dir/", html('<base href="/base/x/"><a href="../r.html">r</a><a href="s.html?t=1#u">s</a>'))

    fetched, bad = {}, {}
    for idiom in ("follow_all", "follow", "urljoin", "rules", "list"):
        server.hits.clear()
        if idiom in ("rules", "list"):
            spider: Spider = (RulesSpider if idiom == "rules" else ListSpider)(server.url("/"))
        else:
            spider = IdiomSpider(server.url("/"), idiom)
        stats = await Crawler(spider, FAST).run()
        fetched[idiom] = sorted(hit.path for hit in server.hits)
        bad[idiom] = stats.filtered["bad_url"]

    assert fetched["follow"] == fetched["follow_all"]
    assert fetched["urljoin"] == fetched["follow_all"]
    assert fetched["rules"] == fetched["follow_all"]
    assert fetched["list"] == fetched["follow_all"]
    assert len(fetched["follow_all"]) == len(set(fetched["follow_all"]))  # each URL once
    # javascript:, mailto:, tel:, the unclosed IPv6 bracket and the 9,000-character link, on
    # "/" and on "/?page=2" (the same page)
    assert bad == dict.fromkeys(fetched, 10)
    expected = {"/", "/a.html", "/b.html", "/c.html", "/d.html", "/f.html?x=1&y=2", "/h.html", "/i.html",
                "/k.html", "/l/m.html", "/o.html", "/?page=2", "/dir/", "/p.html", "/q.html", "/base/r.html",
                "/base/x/s.html?t=1"}
    assert expected <= set(fetched["follow_all"])
    assert len(fetched["follow_all"]) == len(expected) + 3  # /g.html?q=a%20b, /j%41.html and /%C3%BCn%C3%AF.html
