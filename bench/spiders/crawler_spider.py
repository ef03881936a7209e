"""The bench crawl as a crawler spider, written the way a user would write it.

One item ``{url, title, price}`` per product page, and every link on every page followed:
the framework resolves them, drops ``#fragments``, filters duplicates, offsite hosts and
``mailto:``/``javascript:`` links, and sends the ``/missing/`` 404s to the errback.

Run (what ``bench/run.py`` does, against a site it serves)::

    python -m crawler run bench/spiders/crawler_spider.py -O out.jsonl \\
        -s concurrency=64 -s domain_concurrency=64 -s rate_limit=0 -s obey_robots=false \\
        -a base=http://127.0.0.1:8080/index.html --log-level INFO
"""

from urllib.parse import urlsplit

from crawler import Response, Spider


class BenchSpider(Spider):
    name = "bench"

    def __init__(self, base: str = "http://127.0.0.1:8080/index.html", **kwargs) -> None:
        super().__init__(**kwargs)
        self.start_urls = [base]
        self.allowed_domains = [urlsplit(base).hostname]

    async def parse(self, response: Response):
        title = response.css("h1.title::text").get()
        if title:
            yield {"url": response.url, "title": title, "price": response.css("span.price::text").get()}
        for request in response.follow_all(css="a"):
            yield request
