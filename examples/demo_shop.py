"""A complete crawl with no internet: the spider serves a small demo shop on 127.0.0.1 itself.

    python -m crawler run examples/demo_shop.py -O items.jsonl

The shop has category pages with pagination and 60 product pages; the spider follows
categories and "next" links, and yields one item per product.
"""

from __future__ import annotations

from aiohttp import web

from crawler import Request, Response, Spider

PRODUCTS = 60
PER_PAGE = 10
CATEGORIES = ("books", "games", "music")


def _page(title: str, body: str) -> web.Response:
    html = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>{body}</body></html>"
    return web.Response(text=html, content_type="text/html")


def _products_in(category: str) -> list[int]:
    return [i for i in range(PRODUCTS) if CATEGORIES[i % len(CATEGORIES)] == category]


async def _index(request: web.Request) -> web.Response:
    links = "".join(f'<li><a class="category" href="/c/{c}?page=1">{c}</a></li>' for c in CATEGORIES)
    return _page("Demo shop", f"<h1>Demo shop</h1><ul>{links}</ul>")


async def _category(request: web.Request) -> web.Response:
    category = request.match_info["category"]
    page = int(request.query.get("page", "1"))
    ids = _products_in(category)
    shown = ids[(page - 1) * PER_PAGE : page * PER_PAGE]
    items = "".join(f'<li><a class="product" href="/p/{i}#top">Product {i}</a></li>' for i in shown)
    nxt = f'<a class="next" href="?page={page + 1}">next</a>' if page * PER_PAGE < len(ids) else ""
    return _page(f"{category} p{page}", f"<ul>{items}</ul>{nxt}<a href='/'>home</a>")


async def _product(request: web.Request) -> web.Response:
    i = int(request.match_info["id"])
    body = (
        f'<div class="product"><h1 class="title">Product {i}</h1>'
        f'<span class="price">{(i * 7919) % 10000 / 100:.2f}</span>'
        f'<span class="category">{CATEGORIES[i % len(CATEGORIES)]}</span></div>'
        f'<a href="/p/{(i + 1) % PRODUCTS}">related</a>'
    )
    return _page(f"Product {i}", body)


class DemoShopSpider(Spider):
    name = "demo_shop"
    settings = {"rate_limit": 50, "domain_concurrency": 4}

    async def opened(self) -> None:
        app = web.Application()
        app.router.add_get("/", _index)
        app.router.add_get("/c/{category}", _category)
        app.router.add_get("/p/{id:\\d+}", _product)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/"
        self.allowed_domains = ["127.0.0.1"]

    async def closed(self, reason: str) -> None:
        await self._runner.cleanup()

    async def start(self):
        yield Request(self.base_url)

    async def parse(self, response: Response):
        for request in response.follow_all(css="a.category", callback=self.parse_category):
            yield request

    async def parse_category(self, response: Response):
        for request in response.follow_all(css="a.product", callback=self.parse_product):
            yield request
        next_page = response.css("a.next::attr(href)").get()
        if next_page:
            yield response.follow(next_page, callback=self.parse_category)

    async def parse_product(self, response: Response):
        yield {
            "url": response.url,
            "title": response.css("h1.title::text").get(),
            "price": float(response.css("span.price::text").get()),
            "category": response.css("span.category::text").get(),
        }
        yield response.follow(response.css("a::attr(href)").get(), callback=self.parse_product)
