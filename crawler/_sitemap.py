"""``SitemapSpider``: crawl what a site's sitemaps list.

``sitemap_urls`` are sitemaps, sitemap index files, or robots.txt URLs (their ``Sitemap:``
lines are followed). A sitemap may be gzipped (by file or by Content-Encoding). Each page URL
goes to the callback of the first ``sitemap_rules`` pattern it matches (a regex searched in
the URL; ``""`` matches all); a URL no rule matches is skipped. In an index, only the
sitemaps matching a ``sitemap_follow`` pattern are fetched. The URLs go through the same
batch screening as ``follow_all`` (dedupe, offsite, bad URLs), and a sitemap is parsed with
entities and network access off, inflated to at most 50 MiB (the protocol's own limit).
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from lxml import etree  # type: ignore[import-untyped]  # no stubs shipped

from ._log import get_logger
from ._request import Request
from ._response import Response
from ._spider import Spider

__all__ = ["SitemapSpider"]

MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # the sitemaps protocol's limit, uncompressed
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)


class SitemapSpider(Spider):
    """Subclass it: set ``sitemap_urls`` (and ``sitemap_rules``), write the callbacks."""

    sitemap_urls: ClassVar[Sequence[str]] = ()
    #: (regex, callback name): a page URL goes to the first rule whose regex it contains.
    sitemap_rules: ClassVar[Sequence[tuple[str, str]]] = (("", "parse"),)
    #: Regexes of the sitemaps to fetch from an index (``""``: all of them).
    sitemap_follow: ClassVar[Sequence[str]] = ("",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for _, name in cls.sitemap_rules:  # a typo fails here, not once per sitemap mid-crawl
            if not callable(getattr(cls, name, None)):
                raise TypeError(f"{cls.__name__}.sitemap_rules names {name!r}, which is not a method of it")

    async def start(self) -> AsyncIterator[Request]:
        for url in self.sitemap_urls:
            yield Request(url, callback=self.parse_sitemap, meta=_sitemap_meta())

    async def parse_sitemap(self, response: Response) -> AsyncIterator[Request]:
        """Follow a robots.txt's sitemaps, an index's sitemaps, or a sitemap's pages."""
        if response.url.split("?", 1)[0].endswith("/robots.txt"):
            text = response.body.decode("utf-8", "replace")
            urls = [m.group(1).strip() for m in re.finditer(r"(?im)^\s*sitemap\s*:\s*(\S+)", text)]
            for request in response.follow_all(urls=urls, callback=self.parse_sitemap):
                request.meta = _sitemap_meta()
                yield request
            return
        root = _root(response)
        if root is None:
            get_logger(spider=self.name).warning("sitemap_unreadable", url=response.url)
            return
        kind = etree.QName(root).localname
        locations = [
            (loc.text or "").strip()
            for loc in root.iter("{*}loc")
            if etree.QName(loc.getparent()).localname in ("url", "sitemap")
        ]
        if kind == "sitemapindex":
            follow = [re.compile(pattern) for pattern in self.sitemap_follow]
            wanted = [url for url in locations if any(p.search(url) for p in follow)]
            for request in response.follow_all(urls=wanted, callback=self.parse_sitemap):
                request.meta = _sitemap_meta()
                yield request
            return
        rules = [(re.compile(pattern), getattr(self, name)) for pattern, name in self.sitemap_rules]
        by_callback: dict[Any, list[str]] = {}
        for url in locations:
            for pattern, callback in rules:
                if pattern.search(url):
                    by_callback.setdefault(callback, []).append(url)
                    break
        for callback, urls in by_callback.items():
            for request in response.follow_all(urls=urls, callback=callback):
                yield request


def _sitemap_meta() -> dict[str, Any]:
    """A sitemap may be as large as the protocol allows, past the usual body cap."""
    return {"max_response_bytes": MAX_SITEMAP_BYTES}


def _root(response: Response) -> Any:
    """The sitemap's XML root, from a body that may be gzipped; None if it is not XML."""
    body = response.body
    if body[:2] == b"\x1f\x8b":  # a .xml.gz file (a Content-Encoding is undone by the downloader)
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(body)) as unzipped:
                body = unzipped.read(MAX_SITEMAP_BYTES + 1)
        except (OSError, EOFError, zlib.error):
            return None
        if len(body) > MAX_SITEMAP_BYTES:
            return None
    try:
        return etree.fromstring(body, parser=_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
