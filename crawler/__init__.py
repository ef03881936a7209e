"""crawler: a polite, rate-limited, async web-crawler framework.

Write a :class:`Spider`, then run it with ``python -m crawler run spider.py -o items.jsonl``
or, inside any asyncio program, ``stats = await Crawler(MySpider()).run()``.
"""

from ._addresses import AddressGuard
from ._aiohttp import AiohttpDownloader
from ._crawler import Crawler, CrawlerState
from ._downloader import Downloader, Network, ReadProgress, body_limit, read_capped
from ._exceptions import (
    CrawlerError,
    CrawlStateError,
    DropItem,
    FrontierUnavailable,
    IgnoreRequest,
    RequestFailed,
    ResponseTooLarge,
    SettingsError,
    SpiderLoadError,
)
from ._failure import Failure
from ._log import log_formatter
from ._middleware import BaseMiddleware, Middleware
from ._oneliner import crawl, fetch
from ._pipeline import ItemPipeline, Pipeline, ResumableExporter, item_to_dict
from ._progress import CrawlProgress
from ._request import Request
from ._response import Headers, Response
from ._rules import CrawlSpider, LinkRule
from ._settings import Settings
from ._sitemap import SitemapSpider
from ._spider import Spider
from ._stats import CrawlStats
from ._url import canonicalize, fingerprint
from ._version import __version__

__all__ = [
    "AddressGuard",
    "AiohttpDownloader",
    "BaseMiddleware",
    "CrawlProgress",
    "CrawlSpider",
    "CrawlStateError",
    "CrawlStats",
    "Crawler",
    "CrawlerError",
    "CrawlerState",
    "Downloader",
    "DropItem",
    "Failure",
    "FrontierUnavailable",
    "Headers",
    "IgnoreRequest",
    "ItemPipeline",
    "LinkRule",
    "Middleware",
    "Network",
    "Pipeline",
    "ReadProgress",
    "Request",
    "RequestFailed",
    "Response",
    "ResponseTooLarge",
    "ResumableExporter",
    "Settings",
    "SettingsError",
    "SitemapSpider",
    "Spider",
    "SpiderLoadError",
    "__version__",
    "body_limit",
    "canonicalize",
    "crawl",
    "fetch",
    "fingerprint",
    "item_to_dict",
    "log_formatter",
    "read_capped",
]
