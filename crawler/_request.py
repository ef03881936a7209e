"""The Request value: what to fetch and what to do with the answer."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from http.cookies import CookieError, SimpleCookie
from typing import Any

__all__ = ["Request"]


class Request:
    """One HTTP request of a crawl.

    ``callback`` receives the :class:`Response` (the spider's ``parse`` when ``None``);
    ``errback`` receives a :class:`Failure` when the request fails or its status is not handled.
    Higher ``priority`` is fetched sooner within its domain. ``dont_filter`` skips dedupe.
    A malformed ``url`` is not an exception here: the crawl records it as filtered ``bad_url``.

    ``cookies`` (a ``{name: value}`` dict, or Scrapy's list of dicts with ``name``, ``value``
    and optionally ``domain`` and ``path``) are put in the crawl's cookie jar for this URL's
    host (path ``/`` unless given), so later requests to that host send them too; with the
    ``cookies`` setting off they go with this request only.

    ``meta`` keys the crawler reads: ``max_response_bytes`` (this request's body cap),
    ``truncate_body`` (keep the first ``max_response_bytes`` instead of failing ``too_large``),
    ``max_redirects`` (this request's redirect limit) and ``handle_statuses`` (non-2xx
    statuses handed to the callback, or ``True`` for all; it replaces the setting for this
    request; Scrapy's ``handle_httpstatus_list`` / ``handle_httpstatus_all`` work too).
    """

    __slots__ = (
        "_canonical",
        "_cb_kwargs",
        "_headers",
        "_meta",
        "attempt",
        "body",
        "callback",
        "chain",
        "cookies",
        "depth",
        "domain",
        "dont_filter",
        "errback",
        "internal",
        "method",
        "not_before",
        "priority",
        "redirects",
        "url",
    )

    def __init__(
        self,
        url: str,
        callback: Callable[..., Any] | None = None,
        errback: Callable[..., Any] | None = None,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
        meta: dict[str, Any] | None = None,
        cb_kwargs: dict[str, Any] | None = None,
        priority: int = 0,
        dont_filter: bool = False,
        cookies: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"Request url must be str, got {type(url).__name__}")
        if cookies:
            _check_cookies(cookies)
        #: Cookies to set for this request's host (see the class docstring); None for none.
        self.cookies = cookies or None
        self.url = url
        #: Set by Response.follow: (url, host), the host "" when the URL is not crawlable. The
        #: frontier trusts it (no canonicalising again) only while ``url`` is that very string.
        self._canonical: tuple[str, str] | None = None
        self.callback = callback
        self.errback = errback
        self.method = method.upper()
        # headers, meta and cb_kwargs are made on first use: most requests never need them,
        # and a crawl creates many requests.
        self._headers: dict[str, str] | None = dict(headers) if headers else None
        self.body: bytes | None = body.encode() if isinstance(body, str) else body
        self._meta: dict[str, Any] | None = meta
        self._cb_kwargs: dict[str, Any] | None = cb_kwargs
        self.priority = priority
        self.dont_filter = dont_filter
        #: Link depth: 0 for start requests, the parent's depth + 1 for followed links.
        self.depth = 0
        #: Attempt number, 1 for the first try; retries increase it.
        self.attempt = 1
        #: Redirect hops taken to reach this request.
        self.redirects = 0
        #: The scheduling key (host), set when the frontier accepts the request.
        self.domain = ""
        #: True for requests the framework makes for itself (robots.txt): not pages, no limits.
        self.internal = False
        #: Loop time before which the frontier must not hand this request out (retries).
        self.not_before = 0.0
        #: A durable store's id for the chain (the request, its retries and redirect hops)
        #: this belongs to; 0 while it is stored nowhere.
        self.chain = 0

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = {}
        return self._headers

    @headers.setter
    def headers(self, value: dict[str, str]) -> None:
        self._headers = value

    @property
    def meta(self) -> dict[str, Any]:
        if self._meta is None:
            self._meta = {}
        return self._meta

    @meta.setter
    def meta(self, value: dict[str, Any]) -> None:
        self._meta = value

    @property
    def cb_kwargs(self) -> dict[str, Any]:
        if self._cb_kwargs is None:
            self._cb_kwargs = {}
        return self._cb_kwargs

    @cb_kwargs.setter
    def cb_kwargs(self, value: dict[str, Any]) -> None:
        self._cb_kwargs = value

    @classmethod
    def _link(cls, url: str, callback: Callable[..., Any] | None, depth: int, domain: str) -> Request:
        """A plain GET for a followed link, built without the checks of ``__init__`` (hot path)."""
        request = cls.__new__(cls)
        request.url = url
        request._canonical = None
        request.callback = callback
        request.errback = request._headers = request._meta = request._cb_kwargs = request.body = None
        request.cookies = None
        request.method = "GET"
        request.priority = 0
        request.dont_filter = request.internal = False
        request.depth = depth
        request.domain = domain
        request.attempt = 1
        request.redirects = 0
        request.not_before = 0.0
        request.chain = 0
        return request

    def replace(self, **changes: Any) -> Request:
        """A copy with some attributes changed (depth, attempt and redirects carry over)."""
        new = type(self).__new__(type(self))  # a user's Request subclass stays one
        for name in ("headers", "meta", "cb_kwargs"):
            if name in changes:
                changes["_" + name] = changes.pop(name)
        for name in Request.__slots__:
            setattr(new, name, changes.pop(name) if name in changes else getattr(self, name))
        if changes:
            raise TypeError(f"unknown Request attributes: {', '.join(changes)}")
        new._headers = dict(new._headers) if new._headers else None
        new._meta = dict(new._meta) if new._meta else None
        return new

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


def _check_cookies(cookies: object) -> None:
    """A TypeError now, naming what is wrong, rather than a failure at send time."""
    if isinstance(cookies, Mapping):
        entries: list[object] = [{"name": k, "value": v} for k, v in cookies.items()]
    elif isinstance(cookies, Sequence) and not isinstance(cookies, str | bytes):
        entries = list(cookies)
    else:
        raise TypeError(f"Request cookies must be a dict of name: value or a list of dicts, got {cookies!r}")
    for entry in entries:
        if not (
            isinstance(entry, Mapping)
            and isinstance(entry.get("name"), str)
            and entry.get("name")
            and isinstance(entry.get("value"), str | int | float)
        ):
            raise TypeError(f"Request cookie {entry!r} needs a 'name' (text) and a 'value'")
        try:
            SimpleCookie()[entry["name"]] = str(entry["value"])
        except CookieError as exc:
            raise ValueError(f"Request cookie {entry['name']!r}: {exc}") from None
