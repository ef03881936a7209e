"""The Spider base class users subclass to describe a crawl."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ._request import Request

if TYPE_CHECKING:
    from ._middleware import Middleware
    from ._pipeline import ItemPipeline
    from ._response import Response

__all__ = ["Spider"]


class Spider:
    """Subclass this: set ``start_urls`` (or write ``start``) and write ``parse``.

    ``parse(response)`` may be an async generator, a generator, or a coroutine/function that
    returns an iterable; it produces items (dicts or dataclass instances) and :class:`Request`
    objects. Keyword arguments given to the constructor (the CLI's ``-a name=value``) become
    attributes.
    """

    #: A short name for logs and the CLI's ``--spider``; defaults to the class name.
    name: ClassVar[str] = ""
    start_urls: ClassVar[Sequence[str]] = ()
    #: Hosts the crawl may visit (subdomains included); empty means any host.
    allowed_domains: ClassVar[Sequence[str]] = ()
    #: Setting overrides for this spider, applied over the defaults (see :class:`Settings`).
    settings: ClassVar[dict[str, Any]] = {}
    #: Extra request/response middlewares, run after the built-in ones.
    middlewares: Sequence[Middleware] = ()
    #: Item pipelines, run in order before the exporters.
    pipelines: Sequence[ItemPipeline] = ()

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)
        if not self.name:
            self.name = type(self).__name__  # type: ignore[misc]

    async def start(self) -> AsyncIterator[Request]:
        """The first requests; by default one per ``start_urls`` entry, never deduplicated."""
        for url in self.start_urls:
            yield Request(url, dont_filter=True)

    async def parse(self, response: Response) -> Any:
        """The default callback. Override it."""
        raise NotImplementedError(f"{type(self).__name__}.parse is not defined")

    async def opened(self) -> None:
        """Called once before the first request."""

    async def closed(self, reason: str) -> None:
        """Called once after the crawl ends, with the close reason (``finished``, ``cancelled`` ...)."""
