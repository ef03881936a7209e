"""A spider for a real public site made for scraping practice: https://quotes.toscrape.com

    python -m crawler run examples/quotes.py -O quotes.jsonl
    python -m crawler run examples/quotes.py -a tag=love -O love.jsonl

Yields one item per quote and follows the pagination. Default settings keep it polite
(a couple of requests per second, an honest User-Agent).
"""

from __future__ import annotations

from crawler import Response, Spider


class QuotesSpider(Spider):
    name = "quotes"
    allowed_domains = ["quotes.toscrape.com"]
    tag: str | None = None  # set with -a tag=...

    @property
    def start_urls(self):  # type: ignore[override]
        if self.tag:
            return [f"https://quotes.toscrape.com/tag/{self.tag}/"]
        return ["https://quotes.toscrape.com/"]

    async def parse(self, response: Response):
        for quote in response.css("div.quote"):
            yield {
                "text": quote.css("span.text::text").get(),
                "author": quote.css("small.author::text").get(),
                "tags": quote.css("a.tag::text").getall(),
            }
        for request in response.follow_all(css="li.next a"):
            yield request
