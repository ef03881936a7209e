"""``python -m crawler new NAME URL``: a runnable spider and a unit test of its callback.

The test runs the callback on a page written in the test (no network) with plain pytest:
``asyncio.run`` collects what the async generator yields, so no pytest plugin is needed.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from urllib.parse import urlsplit

from ._url import BadURL, canonicalize, join

__all__ = ["new_spider"]

SPIDER = '''"""A spider for {host_text}.

Run it:   python -m crawler run {file} -o items.jsonl
Test it:  python -m pytest {test}
"""

from crawler import Response, Spider


class {cls}(Spider):
    name = {name!r}
    start_urls = [{url!r}]
    allowed_domains = [{host!r}]  # links to other hosts are not followed

    async def parse(self, response: Response):
        yield {{
            "url": response.url,
            "title": response.css("title::text").get(),
        }}
        for request in response.follow_all(css="a"):
            yield request
'''

TEST = '''"""A unit test of {cls}.parse on a page written here: no network, no server."""

import asyncio

from crawler import Request, Response
from {module} import {cls}

PAGE = """<html><head><title>A page</title></head>
<body><a href="/next">next</a> <a href="https://elsewhere.example/">away</a></body></html>"""


def run_parse(response: Response) -> list:
    async def collect() -> list:
        return [output async for output in {cls}().parse(response)]

    return asyncio.run(collect())


def test_parse_yields_the_page_and_follows_its_links():
    outputs = run_parse(Response.from_html({url!r}, PAGE))

    items = [output for output in outputs if not isinstance(output, Request)]
    requests = [output for output in outputs if isinstance(output, Request)]
    assert items == [{{"url": {url!r}, "title": "A page"}}]
    assert [request.url for request in requests] == [{next_url!r}, "https://elsewhere.example/"]
'''


def new_spider(name: str, url: str, directory: Path) -> tuple[Path, Path]:
    """Write ``NAME.py`` and ``test_NAME.py`` into ``directory``; refuse to overwrite."""
    module = re.sub(r"\W", "_", name.strip().lower()).strip("_")
    if not module or module[0].isdigit() or keyword.iskeyword(module):
        raise ValueError(f"{name!r} cannot be a module name: use letters, digits and _ (not first a digit)")
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    try:
        url, host = canonicalize(parts.geturl())
    except BadURL as exc:
        raise ValueError(f"{url!r} is not a URL a crawl can fetch: {exc}") from None
    next_url = canonicalize(join(url, "/next"))[0]
    cls = "".join(word.capitalize() for word in module.split("_")) + "Spider"
    spider, test = directory / f"{module}.py", directory / f"test_{module}.py"
    for path in (spider, test):
        if path.exists():
            raise FileExistsError(f"{path} exists: not overwriting it")
    fields = {"cls": cls, "name": module, "url": url, "host": host, "next_url": next_url,
              "module": module, "file": spider.name, "test": test.name,
              "host_text": host}  # canonical: letters, digits, dots, dashes (or an IP literal)
    spider.write_text(SPIDER.format(**fields), encoding="utf-8")
    test.write_text(TEST.format(**fields), encoding="utf-8")
    return spider, test
