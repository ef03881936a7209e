"""crawler: a polite, rate-limited, async web-crawler framework.

Write a :class:`Spider`, then run it with ``python -m crawler run spider.py -o items.jsonl``
or, inside any asyncio program, ``stats = await Crawler(MySpider()).run()``.
"""

from ._crawler import Crawler, CrawlerState
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
from ._pipeline import ItemPipeline, Pipeline, ResumableExporter, item_to_dict
from ._request import Request
from ._response import Response
from ._settings import Settings
from ._spider import Spider
from ._stats import CrawlStats
from ._url import canonicalize, fingerprint
from ._version import __version__

__all__ = [
    "BaseMiddleware",
    "CrawlStateError",
    "CrawlStats",
    "Crawler",
    "CrawlerError",
    "CrawlerState",
    "DropItem",
    "Failure",
    "FrontierUnavailable",
    "IgnoreRequest",
    "ItemPipeline",
    "Middleware",
    "Pipeline",
    "Request",
    "RequestFailed",
    "Response",
    "ResponseTooLarge",
    "ResumableExporter",
    "Settings",
    "SettingsError",
    "Spider",
    "SpiderLoadError",
    "__version__",
    "canonicalize",
    "fingerprint",
    "item_to_dict",
    "log_formatter",
]
