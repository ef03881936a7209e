"""The Spider base class users subclass to describe a crawl."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ._exceptions import SpiderLoadError
from ._request import Request
from ._scrapy import translate_scrapy_settings

if TYPE_CHECKING:
    from ._middleware import Middleware
    from ._pipeline import ItemPipeline
    from ._response import Response

__all__ = ["Spider", "check_declaration"]


class Spider:
    """Subclass this: set ``start_urls`` (or write ``start``) and write ``parse``.

    ``parse(response)`` may be an async generator, a generator, or a coroutine/function that
    returns an iterable; it produces items (dicts or dataclass instances) and :class:`Request`
    objects. Keyword arguments given to the constructor (the CLI's ``-a name=value``) become
    attributes.
    """

    #: A short name for logs and the CLI's ``--spider``; defaults to the class name.
    name: ClassVar[str] = ""
    #: The first URLs; a single string is one URL (so ``-a start_urls=http://host/`` works).
    start_urls: ClassVar[Sequence[str] | str] = ()
    #: Hosts the crawl may visit (subdomains included); empty means any host. An entry with a
    #: port or a scheme is used as its host, with a warning.
    allowed_domains: ClassVar[Sequence[str] | str] = ()
    #: Setting overrides for this spider, applied over the defaults (see :class:`Settings`).
    settings: ClassVar[dict[str, Any]] = {}
    #: Extra request/response middlewares, run after the built-in ones. A class listed here
    #: is instantiated once per crawl; an object is shared by every crawl of the spider class.
    middlewares: Sequence[Middleware | type[Middleware]] = ()
    #: Item pipelines, run in order before the exporters; classes or objects, as ``middlewares``.
    pipelines: Sequence[ItemPipeline | type[ItemPipeline]] = ()

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)
        if not self.name:
            self.name = type(self).__name__  # type: ignore[misc]

    async def start(self) -> AsyncIterator[Request]:
        """The first requests: by default those of :meth:`start_requests`.

        Override this one (an async generator) or ``start_requests``, Scrapy's name, which
        may be a plain or an async generator.
        """
        requests: Any = self.start_requests()
        if inspect.isawaitable(requests):  # a coroutine returning a list
            requests = await requests
        if isinstance(requests, AsyncIterable):
            async for request in requests:
                yield request
        elif requests is not None:
            for request in requests:
                yield request

    def start_requests(self) -> Iterable[Request] | AsyncIterable[Request]:
        """One request per ``start_urls`` entry, never deduplicated (Scrapy's hook, honoured).

        Override it with a plain or an async generator, as in Scrapy.
        """
        return self._start_url_requests()

    def _start_url_requests(self) -> Iterator[Request]:
        urls = self.start_urls
        if isinstance(urls, str):
            urls = (urls,)
        elif not isinstance(urls, Iterable):
            raise TypeError(f"start_urls must be a URL or a list of URLs, got {urls!r}")
        for url in urls:
            if not isinstance(url, str):
                raise TypeError(f"start_urls must be a URL or a list of URLs, found {url!r} in it")
            yield Request(url, dont_filter=True)

    async def parse(self, response: Response) -> Any:
        """The default callback. Override it."""
        raise NotImplementedError(f"{type(self).__name__}.parse is not defined")

    async def opened(self) -> None:
        """Called once before the first request."""

    async def closed(self, reason: str) -> None:
        """Called once after the crawl ends, with the close reason (``finished``, ``cancelled`` ...)."""


def check_declaration(spider: Spider) -> None:
    """Refuse a spider attribute that would silently do nothing here.

    Scrapy's ``custom_settings`` is the common one: a spider ported from Scrapy would crawl
    with none of its settings. The error says what to write instead, converted.
    """
    custom = getattr(spider, "custom_settings", None)
    if not custom:
        return
    where = f"{type(spider).__name__}.custom_settings"
    if not isinstance(custom, Mapping):
        raise SpiderLoadError(f"{where} is Scrapy's attribute and is not read here: use `settings = {{...}}`")
    ours, notes = translate_scrapy_settings(custom)
    raise SpiderLoadError(
        f"{where} is Scrapy's attribute and is not read here: use `settings = {ours!r}`"
        + (f" ({'; '.join(notes)})" if notes else "")
    )
