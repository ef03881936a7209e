"""The middleware chain between the engine and the downloader.

A middleware is a plain object matching :class:`Middleware`; the chain runs every hook of
every middleware in list order (the built-ins first, then the spider's). Each hook may pass
its argument on, or answer instead:

* ``process_request`` returns ``None`` (go on), a changed ``Request`` (go on with it), or a
  ``Response`` (skip the download, e.g. a cache); raising ``IgnoreRequest`` drops the request.
* ``process_response`` returns the ``Response`` (possibly another one) or a ``Request`` to
  schedule instead (a retry); a ``Request`` stops the chain.
* ``process_exception`` returns ``None`` (not handled), a ``Response`` or a ``Request``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from ._request import Request
from ._response import Response

__all__ = ["BaseMiddleware", "Middleware", "MiddlewareChain", "check_middlewares"]


@runtime_checkable
class Middleware(Protocol):
    async def process_request(self, request: Request) -> Request | Response | None: ...

    async def process_response(self, request: Request, response: Response) -> Request | Response: ...

    async def process_exception(self, request: Request, exc: Exception) -> Request | Response | None: ...


class BaseMiddleware:
    """Pass-through hooks; subclass and override the ones you need."""

    async def process_request(self, request: Request) -> Request | Response | None:
        return None

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        return response

    async def process_exception(self, request: Request, exc: Exception) -> Request | Response | None:
        return None


def check_middlewares(middlewares: Sequence[object]) -> None:
    """Raise TypeError, naming the object, for anything that is not a whole Middleware."""
    for mw in middlewares:
        if not isinstance(mw, Middleware):
            raise TypeError(
                f"{mw!r} is not a Middleware: it needs async process_request, "
                "process_response and process_exception (subclass BaseMiddleware)"
            )


class MiddlewareChain:
    """Runs every middleware's hooks in list order.

    A hook a middleware inherits unchanged from :class:`BaseMiddleware` is a pass-through, so
    the chain leaves it out rather than await it for every request of the crawl.
    """

    def __init__(self, middlewares: Sequence[Middleware]) -> None:
        check_middlewares(middlewares)
        self.middlewares = tuple(middlewares)
        self._request_hooks = _overridden(middlewares, "process_request")
        self._response_hooks = _overridden(middlewares, "process_response")
        self._exception_hooks = _overridden(middlewares, "process_exception")

    async def process_request(self, request: Request) -> Request | Response:
        for hook in self._request_hooks:
            result = await hook(request)
            if result is None:
                continue
            if isinstance(result, Response):
                return result
            request = result
        return request

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        result: Request | Response = response
        for hook in self._response_hooks:
            result = await hook(request, result)
            if isinstance(result, Request):
                return result
        return result

    async def process_exception(self, request: Request, exc: Exception) -> Request | Response | None:
        for hook in self._exception_hooks:
            result: Request | Response | None = await hook(request, exc)
            if result is not None:
                return result
        return None


def _overridden(middlewares: Sequence[Middleware], name: str) -> tuple[Any, ...]:
    return tuple(
        getattr(mw, name) for mw in middlewares if getattr(type(mw), name, None) is not getattr(BaseMiddleware, name)
    )
