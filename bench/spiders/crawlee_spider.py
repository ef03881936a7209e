#!/usr/bin/env python3
"""The bench crawl with Crawlee for Python (ParselCrawler), as in ``shared/benchsite/peers/``.

Crawlee keeps its request queue and datasets under ``./storage``: ``bench/run.py`` runs it in
a temporary working directory.

Usage: crawlee_spider.py BASE_URL CONCURRENCY OUT.jsonl
"""

import asyncio
import json
import sys

from crawlee import ConcurrencySettings
from crawlee.crawlers import ParselCrawler, ParselCrawlingContext


async def main(base: str, concurrency: int, out_path: str) -> None:
    with open(out_path, "w") as out:
        crawler = ParselCrawler(
            concurrency_settings=ConcurrencySettings(
                min_concurrency=concurrency, max_concurrency=concurrency, desired_concurrency=concurrency
            ),
            max_request_retries=2,
        )

        @crawler.router.default_handler
        async def handler(ctx: ParselCrawlingContext) -> None:
            title = ctx.selector.css("h1.title::text").get()
            if title:
                out.write(
                    json.dumps(
                        {"url": ctx.request.url, "title": title, "price": ctx.selector.css("span.price::text").get()}
                    )
                    + "\n"
                )
            await ctx.enqueue_links(strategy="same-hostname")

        await crawler.run([base])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
