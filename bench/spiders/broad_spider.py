"""The broad-crawl bench spider: thousands of hosts, links across them, default politeness.

``-a seeds=FILE`` names a file with one ``host:port`` per line (``bench/broad.py`` writes it):
every host's ``/index.html`` is a start URL and every host is in ``allowed_domains`` (the
crawl never leaves the loopback addresses of the generated site). One item per product
page; every link followed with ``follow_all``. Run::

    python -m crawler run bench/spiders/broad_spider.py -a seeds=hosts.txt -O out.jsonl \\
        -s concurrency=128 --log-level INFO
"""

from pathlib import Path

from crawler import Response, Spider


class BroadSpider(Spider):
    name = "broad"

    def __init__(self, seeds: str, **kwargs) -> None:
        super().__init__(**kwargs)
        hosts = Path(seeds).read_text().split()
        self.start_urls = [f"http://{host}/index.html" for host in hosts]
        self.allowed_domains = sorted({host.rpartition(":")[0] for host in hosts})

    async def parse(self, response: Response):
        title = response.css("h1.title::text").get()
        if title:
            yield {"url": response.url, "title": title, "price": response.css("span.price::text").get()}
        for request in response.follow_all(css="a"):
            yield request
