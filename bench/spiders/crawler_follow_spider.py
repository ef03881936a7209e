"""The bench crawl written in the other idiom users write every day (Scrapy's tutorial form):
one ``response.follow(href)`` per link, rather than ``follow_all``.

The same items and the same requests as ``crawler_spider.py``; ``bench/run.py`` runs both, so
a fast path that only one idiom is on shows up as a gap between them. Run::

    python -m crawler run bench/spiders/crawler_follow_spider.py -O out.jsonl \\
        -s concurrency=64 -s domain_concurrency=64 -s rate_limit=0 -s obey_robots=false \\
        -a base=http://127.0.0.1:8080/index.html --log-level INFO
"""

from urllib.parse import urlsplit

from crawler import Response, Spider


class BenchFollowSpider(Spider):
    name = "bench-follow"

    def __init__(self, base: str = "http://127.0.0.1:8080/index.html", **kwargs) -> None:
        super().__init__(**kwargs)
        self.start_urls = [base]
        self.allowed_domains = [urlsplit(base).hostname]

    async def parse(self, response: Response):
        title = response.css("h1.title::text").get()
        if title:
            yield {"url": response.url, "title": title, "price": response.css("span.price::text").get()}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href)
