"""The Request value: what to fetch and what to do with the answer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Request"]


class Request:
    """One HTTP request of a crawl.

    ``callback`` receives the :class:`Response` (the spider's ``parse`` when ``None``);
    ``errback`` receives a :class:`Failure` when the request fails or its status is not handled.
    Higher ``priority`` is fetched sooner within its domain. ``dont_filter`` skips dedupe.
    A malformed ``url`` is not an exception here: the crawl records it as filtered ``bad_url``.

    ``meta`` keys the crawler reads: ``max_response_bytes`` (this request's body cap) and
    ``truncate_body`` (keep the first ``max_response_bytes`` instead of failing ``too_large``).
    """

    __slots__ = (
        "attempt",
        "body",
        "callback",
        "cb_kwargs",
        "depth",
        "domain",
        "dont_filter",
        "errback",
        "headers",
        "internal",
        "meta",
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
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"Request url must be str, got {type(url).__name__}")
        self.url = url
        self.callback = callback
        self.errback = errback
        self.method = method.upper()
        self.headers: dict[str, str] = dict(headers) if headers else {}
        self.body: bytes | None = body.encode() if isinstance(body, str) else body
        self.meta: dict[str, Any] = meta if meta is not None else {}
        self.cb_kwargs: dict[str, Any] = cb_kwargs if cb_kwargs is not None else {}
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

    def replace(self, **changes: Any) -> Request:
        """A copy with some attributes changed (depth, attempt and redirects carry over)."""
        new = Request.__new__(Request)
        for name in Request.__slots__:
            setattr(new, name, changes.pop(name) if name in changes else getattr(self, name))
        if changes:
            raise TypeError(f"unknown Request attributes: {', '.join(changes)}")
        new.headers = dict(new.headers)
        new.meta = dict(new.meta)
        return new

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"
