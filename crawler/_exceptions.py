"""The exception tree of crawler.

Every exception the framework raises on purpose derives from one root, so a host
program can catch them all with one clause::

    CrawlerError
    ├── SettingsError      a setting name is unknown or its value is invalid
    ├── SpiderLoadError    a spider cannot be loaded from a file, or is declared wrongly (custom_settings ...)
    ├── CrawlStateError    a Crawler was started twice, or used after it closed
    ├── FrontierUnavailable  the shared frontier (Redis) cannot be reached, refused an operation or lost the crawl
    ├── DropItem           raised by an item pipeline to discard an item (counted with its reason)
    ├── IgnoreRequest      raised by a middleware to drop a request (recorded as filtered)
    └── RequestFailed      a request ended without a usable response; carries ``request`` and ``reason``
        └── ResponseTooLarge   the decompressed body went over ``max_response_bytes``
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._request import Request

__all__ = [
    "CrawlStateError",
    "CrawlerError",
    "DropItem",
    "FrontierUnavailable",
    "IgnoreRequest",
    "RequestFailed",
    "ResponseTooLarge",
    "SettingsError",
    "SpiderLoadError",
]


class CrawlerError(Exception):
    """Root of every error crawler raises on purpose."""


class FrontierUnavailable(CrawlerError):
    """The shared frontier (Redis) cannot be reached or refused an operation, or the crawl's
    state is gone from it (Redis restarted without persistence, the crawl cleared); the
    message names it by its URL without the password."""


class SettingsError(CrawlerError, ValueError):
    """A setting is unknown or has a bad value; the message names the setting."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"setting {name!r}: {message}")
        self.name = name


class SpiderLoadError(CrawlerError):
    """A spider could not be loaded (missing file, no Spider subclass, ambiguous choice) or
    is declared in a way that would silently do nothing (Scrapy's ``custom_settings``, an
    ``allowed_domains`` that names no host)."""


class CrawlStateError(CrawlerError, RuntimeError):
    """A Crawler was asked to do something its state does not allow (e.g. run twice)."""


class DropItem(CrawlerError):
    """Raise from an item pipeline to discard the item; the message is the counted reason."""


class IgnoreRequest(CrawlerError):
    """Raise from a middleware's ``process_request`` to drop a request as filtered."""

    def __init__(self, reason: str = "ignored") -> None:
        super().__init__(reason)
        self.reason = reason


class RequestFailed(CrawlerError):
    """A request ended without a response that the spider can use.

    ``reason`` is a short stable token (``timeout``, ``connection_error``, ``http_503`` ...)
    that is also the key under which the failure is counted in the stats.
    """

    def __init__(self, reason: str, message: str = "", *, request: Request | None = None) -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.request = request


class ResponseTooLarge(RequestFailed):
    """The body went over ``max_response_bytes`` (counted after decompression)."""

    def __init__(self, limit: int, *, request: Request | None = None) -> None:
        super().__init__("too_large", f"body exceeds {limit} bytes", request=request)
        self.limit = limit
