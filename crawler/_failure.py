"""What an errback receives when a request does not end in a handled response."""

from __future__ import annotations

import dataclasses

from ._request import Request
from ._response import Response

__all__ = ["Failure"]


@dataclasses.dataclass(frozen=True, slots=True)
class Failure:
    """A request's failure: ``reason`` is the counted token (``timeout``, ``http_404`` ...).

    ``response`` is set when the server answered with a status the spider does not handle;
    ``exception`` when the request raised.
    """

    request: Request
    reason: str
    exception: BaseException | None = None
    response: Response | None = None

    @property
    def url(self) -> str:
        return self.request.url
