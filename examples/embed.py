"""Embedding: run a crawl inside your own asyncio program and stream its items.

    python examples/embed.py

No logging is configured by the crawler and no signal handler installed; cancelling the
task that runs the crawl closes everything and keeps the items produced so far.
"""

from __future__ import annotations

import asyncio

from demo_shop import DemoShopSpider

from crawler import Crawler


async def main() -> None:
    crawler = Crawler(DemoShopSpider(), {"max_items": 10})
    async with asyncio.TaskGroup() as tasks:
        run = tasks.create_task(crawler.run())
        async for item in crawler.items():
            print(item["title"], item["price"])
    stats = run.result()
    print(f"{stats.items} items, {stats.pages} pages, closed: {stats.close_reason}")


if __name__ == "__main__":
    asyncio.run(main())
