"""robots.txt fetched once per origin for a whole shared crawl, however many workers.

Each worker's robots gate (``_robots_gate``) still asks for an origin's rules with its own
internal request; this middleware answers that request from the crawl's copy in Redis when
one is there. Otherwise one worker takes the origin's lock and fetches it (and stores the
answer for the others), while the rest wait for that answer instead of fetching too. A
stored answer is the final one of a definite kind: 2xx (the rules) or 4xx (no rules); a
redirect is followed first, and a 5xx or a failure is not stored, so every worker then
decides for itself as it would alone.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from ._middleware import BaseMiddleware
from ._request import Request
from ._response import Response

__all__ = ["SharedRobots"]

_LOCK_MS = 20_000  # longest one worker holds an origin's fetch before another may try
_POLL = 0.1


class SharedRobots(BaseMiddleware):
    def __init__(self, client: Any, prefix: str, worker: str) -> None:
        self._client = client
        self._answers = prefix + "robots"
        self._locks = prefix + "robotslock:"
        self._worker = worker

    async def process_request(self, request: Request) -> Request | Response | None:
        meta = request._meta
        if not request.internal or not meta or "robots_origin" not in meta or request.redirects:
            return None
        origin = meta["robots_origin"]
        lock = self._locks + origin
        deadline = asyncio.get_running_loop().time() + _LOCK_MS / 1000 + 5
        while True:
            stored = await self._client.hget(self._answers, origin)
            if stored is not None:
                answer = json.loads(stored)
                body = base64.b64decode(answer["body"])
                return Response(request.url, int(answer["status"]), {}, body, request)
            if await self._client.set(lock, self._worker, nx=True, px=_LOCK_MS):
                return None  # this worker fetches it, for everyone
            if asyncio.get_running_loop().time() > deadline:
                return None  # the fetching worker is gone or stuck: fetch it ourselves
            await asyncio.sleep(_POLL)

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        meta = request._meta
        if request.internal and meta and "robots_origin" in meta and not 300 <= response.status < 400:
            origin = meta["robots_origin"]
            # Rules (2xx) or "no rules" (4xx) are the origin's answer; 408, 429 and 5xx are
            # moments (retried, then each worker decides as it would alone).
            if response.status < 400 or (response.status < 500 and response.status not in (408, 429)):
                answer = {"status": response.status, "body": base64.b64encode(response.body).decode("ascii")}
                await self._client.hset(self._answers, origin, json.dumps(answer))
            await self._client.delete(self._locks + origin)
        return response

    async def process_exception(self, request: Request, exc: Exception) -> Request | Response | None:
        meta = request._meta
        if request.internal and meta and "robots_origin" in meta:
            await self._client.delete(self._locks + meta["robots_origin"])
        return None
