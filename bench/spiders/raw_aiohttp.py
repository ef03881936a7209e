#!/usr/bin/env python3
"""The floor for a Python crawler: a hand-written aiohttp crawl of the bench site.

No framework: one ClientSession, an asyncio.Queue, N worker tasks, a set for dedupe, and the
same parsel selectors the framework spiders use. Whatever a framework adds on top of this
(scheduling, middleware, politeness, stats, logging) shows as the ratio between its time and
this one's. The logic is that of ``shared/benchsite/peers/raw_aiohttp.py``; it keeps only
links on the start URL's host with an http(s) scheme, drops ``#fragments``, and writes one
item ``{url, title, price}`` per page that has a title.

Usage: raw_aiohttp.py BASE_URL CONCURRENCY OUT.jsonl [--no-parse]
"""

import asyncio
import json
import sys
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp
from parsel import Selector


async def main(base: str, concurrency: int, out_path: str, parse: bool = True) -> int:
    host = urlsplit(base).netloc
    seen = {base}
    queue: asyncio.Queue[str] = asyncio.Queue()
    queue.put_nowait(base)
    pages = 0
    errors = 0

    with open(out_path, "w") as out:

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal pages, errors
            while True:
                url = await queue.get()
                try:
                    async with session.get(url) as resp:
                        body = await resp.read()
                        if resp.status != 200:
                            continue
                    pages += 1
                    if not parse:
                        continue
                    sel = Selector(text=body.decode("utf-8", "replace"))
                    title = sel.css("h1.title::text").get()
                    if title:
                        out.write(
                            json.dumps({"url": url, "title": title, "price": sel.css("span.price::text").get()}) + "\n"
                        )
                    for href in sel.css("a::attr(href)").getall():
                        link = urldefrag(urljoin(url, href))[0]
                        parts = urlsplit(link)
                        if parts.scheme in ("http", "https") and parts.netloc == host and link not in seen:
                            seen.add(link)
                            queue.put_nowait(link)
                except Exception as exc:  # a floor measurement: errors are only counted
                    errors += 1
                    print("error", url, repr(exc), file=sys.stderr)
                finally:
                    queue.task_done()

        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn) as session:
            workers = [asyncio.create_task(worker(session)) for _ in range(concurrency)]
            await queue.join()
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    print(f"pages={pages} errors={errors}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], "--no-parse" not in sys.argv)))
