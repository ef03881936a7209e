"""The bench crawl as a Scrapy spider (the incumbent), as in ``shared/benchsite/peers/``.

Run (what ``bench/run.py --peers`` does)::

    python -m scrapy runspider bench/spiders/scrapy_spider.py -a base=http://127.0.0.1:8080/index.html \\
        -s CONCURRENT_REQUESTS=64 -O out.jsonl

Per-domain concurrency is unbounded, robots.txt, cookies, the telnet console and download
delays are off, retries on; INFO logging stays on, as for the other crawlers.
"""

from urllib.parse import urlsplit

import scrapy


class BenchSpider(scrapy.Spider):
    name = "bench"
    custom_settings = {
        "CONCURRENT_REQUESTS_PER_DOMAIN": 10000,
        "ROBOTSTXT_OBEY": False,
        "LOG_LEVEL": "INFO",
        "TELNETCONSOLE_ENABLED": False,
        "COOKIES_ENABLED": False,
        "RETRY_ENABLED": True,
        "DOWNLOAD_DELAY": 0,
    }

    def __init__(self, base="http://127.0.0.1:8080/index.html", **kw):
        super().__init__(**kw)
        self.start_urls = [base]
        self.allowed_domains = [urlsplit(base).hostname]

    def parse(self, response):
        title = response.css("h1.title::text").get()
        if title:
            yield {"url": response.url, "title": title, "price": response.css("span.price::text").get()}
        for href in response.css("a::attr(href)").getall():
            if href.startswith(("mailto:", "javascript:")):
                continue
            yield response.follow(href, callback=self.parse)
