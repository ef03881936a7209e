"""The bench crawl written as Scrapy spiders were before ``response.follow()`` existed, and
as many still are: one ``Request(response.urljoin(href), callback=...)`` per link.

The same items and requests as ``crawler_spider.py``; ``bench/run.py --idioms`` runs it. Run::

    python -m crawler run bench/spiders/crawler_urljoin_spider.py -O out.jsonl \\
        -s concurrency=64 -s domain_concurrency=64 -s rate_limit=0 -s obey_robots=false \\
        -a base=http://127.0.0.1:8080/index.html --log-level INFO
"""

from urllib.parse import urlsplit

from crawler import Request, Response, Spider


class BenchUrljoinSpider(Spider):
    name = "bench-urljoin"

    def __init__(self, base: str = "http://127.0.0.1:8080/index.html", **kwargs) -> None:
        super().__init__(**kwargs)
        self.start_urls = [base]
        self.allowed_domains = [urlsplit(base).hostname]

    async def parse(self, response: Response):
        title = response.css("h1.title::text").get()
        if title:
            yield {"url": response.url, "title": title, "price": response.css("span.price::text").get()}
        for href in response.css("a::attr(href)").getall():
            yield Request(response.urljoin(href), callback=self.parse)
