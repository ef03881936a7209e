"""The bench crawl written declaratively, as Scrapy's ``CrawlSpider`` users write it: one
rule that takes every link, parses the page it leads to and follows that page's links.

The same items and requests as ``crawler_spider.py`` (the start page, which no rule reached,
is not parsed: it has no item); ``bench/run.py --idioms`` runs it. Run::

    python -m crawler run bench/spiders/crawler_rules_spider.py -O out.jsonl \\
        -s concurrency=64 -s domain_concurrency=64 -s rate_limit=0 -s obey_robots=false \\
        -a base=http://127.0.0.1:8080/index.html --log-level INFO
"""

from urllib.parse import urlsplit

from crawler import CrawlSpider, LinkRule, Response


class BenchRulesSpider(CrawlSpider):
    name = "bench-rules"
    rules = [LinkRule(callback="parse_page", follow=True)]

    def __init__(self, base: str = "http://127.0.0.1:8080/index.html", **kwargs) -> None:
        super().__init__(**kwargs)
        self.start_urls = [base]
        self.allowed_domains = [urlsplit(base).hostname]

    async def parse_page(self, response: Response):
        title = response.css("h1.title::text").get()
        if title:
            yield {"url": response.url, "title": title, "price": response.css("span.price::text").get()}
