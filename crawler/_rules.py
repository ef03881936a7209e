"""Declarative link rules: ``CrawlSpider`` with ``rules = [LinkRule(...), ...]``.

What Scrapy's CrawlSpider and Crawlee's ``enqueue_links`` users write: which links to take
(``allow``/``deny`` regexes searched in the URL, ``restrict_css`` regions of the page, a
``scope`` of the page's own host or registrable domain), which callback parses what they
lead to, and whether the links on those pages are followed in turn. On each page the rules
are tried in order and a link belongs to the first one that takes it. The links of one rule
go through ``follow_all``'s batch screening (dedupe, offsite, bad URLs) in one call.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ._request import Request
from ._response import Response
from ._spider import Spider

__all__ = ["CrawlSpider", "LinkRule"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class LinkRule:
    """Which links of a page to take, and what to do with the pages they lead to."""

    #: Regexes searched in the URL the link leads to (absolute, canonical, no fragment): a
    #: link must match one (none given: every link).
    allow: str | Sequence[str] = ()
    #: Regexes: a link matching one is not taken, whatever ``allow`` says.
    deny: str | Sequence[str] = ()
    #: CSS selectors of the page's regions to take links from (``"nav, .pagination"``).
    restrict_css: str | None = None
    #: The name of the spider's method that parses the pages reached; None: not parsed.
    callback: str | None = None
    #: Take links (by the rules) from the pages reached; None: only when there is no callback.
    follow: bool | None = None
    #: ``"host"``: only links to the page's own host; ``"domain"``: its registrable domain
    #: (``shop.example.co.uk`` and ``www.example.co.uk``); None: any (``allowed_domains`` still holds).
    scope: str | None = None

    def __post_init__(self) -> None:
        if self.scope not in (None, "host", "domain"):
            raise ValueError(f"LinkRule scope must be 'host', 'domain' or None, got {self.scope!r}")

    @functools.cached_property
    def _allow(self) -> list[re.Pattern[str]]:
        return [re.compile(p) for p in ([self.allow] if isinstance(self.allow, str) else self.allow)]

    @functools.cached_property
    def _deny(self) -> list[re.Pattern[str]]:
        return [re.compile(p) for p in ([self.deny] if isinstance(self.deny, str) else self.deny)]

    @functools.cached_property
    def _takes_all(self) -> bool:
        return not self._allow and not self._deny and self.scope is None

    def takes(self, url: str) -> bool:
        if self._allow and not any(p.search(url) for p in self._allow):
            return False
        return not any(p.search(url) for p in self._deny)

    @property
    def follows(self) -> bool:
        return self.follow if self.follow is not None else self.callback is None


class CrawlSpider(Spider):
    """Subclass it and set ``rules``; ``start_urls`` (or ``start()``) as for any spider. Its
    ``parse`` applies the rules: do not override it (write callbacks named in the rules)."""

    rules: ClassVar[Sequence[LinkRule]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for rule in cls.rules:  # a typo fails here, not once per page mid-crawl
            if rule.callback is not None and not callable(getattr(cls, rule.callback, None)):
                raise TypeError(f"{cls.__name__}.rules names callback {rule.callback!r}, which is not a method of it")

    async def parse(self, response: Response) -> list[Request]:
        return self.follow_rules(response)

    async def _by_rule(self, response: Response) -> AsyncIterator[Any]:
        rule = self.rules[response.request.meta["link_rule"]]
        if rule.callback is not None:
            result = getattr(self, rule.callback)(response)
            if hasattr(result, "__aiter__"):
                async for output in result:
                    yield output
            else:
                outputs = await result if hasattr(result, "__await__") else result
                for output in outputs or ():
                    yield output
        if rule.follows:
            for request in self.follow_rules(response):
                yield request

    def follow_rules(self, response: Response) -> list[Request]:
        """The requests the rules take from ``response``'s links."""
        taken: set[str] = set()
        requests: list[Request] = []
        resolve = response._page_links.resolve_canonical  # as follow() resolves: the URL fetched
        last = len(self.rules) - 1
        for index, rule in enumerate(self.rules):
            hrefs = _hrefs(response, rule.restrict_css)
            if rule._takes_all and not taken and index == last:
                # Every link, and no other rule took one (a spider with one catch-all rule):
                # follow_all screens the hrefs as written, so a link the crawl already has
                # costs no resolution at all. (After other rules' links, each would be
                # counted again if it is filtered.)
                found = response.follow_all(urls=hrefs, callback=self._by_rule)
            else:
                host = (urlsplit(response.url).hostname or "") if rule.scope else ""
                urls = []
                for href in hrefs:
                    url, link_host = resolve(href)
                    if url in taken or not rule.takes(url) or not _in_scope(link_host, host, rule.scope):
                        continue
                    taken.add(url)
                    urls.append(url)
                found = response.follow_all(urls=urls, callback=self._by_rule) if urls else []
            for request in found:
                request.meta = {"link_rule": index}  # its own dict: the engine may write to a request's meta
                requests.append(request)
        return requests


def _hrefs(response: Response, regions: str | None) -> list[str]:
    if regions is None:  # the strings read from lxml at once, as follow_all reads them
        return response._hrefs("a::attr(href), area::attr(href)", None)
    return list(response.css(regions).css("a::attr(href), area::attr(href)").getall())


@functools.cache
def _domain_of() -> Any:
    from ._frontier import registrable_domain_key

    return registrable_domain_key()


def _in_scope(target: str, host: str, scope: str | None) -> bool:
    """A link to host ``target`` ("" for one that is no crawlable URL) is in the rule's scope
    of the page's ``host``."""
    if scope is None:
        return True
    if scope == "host":
        return target == host
    key = _domain_of()
    return bool(key(target) == key(host))
