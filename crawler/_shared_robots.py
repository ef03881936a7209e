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
# One round trip per look (a broad crawl looks up thousands of origins): the stored answer,
# or else the origin's fetch lock if it is free. KEYS: answers, lock; ARGV: origin, worker, ms.
_ANSWER_OR_LOCK = """
local answer = redis.call('HGET', KEYS[1], ARGV[1])
if answer then return answer end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
return 0
"""


class SharedRobots(BaseMiddleware):
    def __init__(self, client: Any, prefix: str, worker: str) -> None:
        self._client = client
        self._answers = prefix + "robots"
        self._locks = prefix + "robotslock:"
        self._worker = worker
        self._answer_or_lock = client.register_script(_ANSWER_OR_LOCK)

    async def process_request(self, request: Request) -> Request | Response | None:
        meta = request._meta
        if not request.internal or not meta or "robots_origin" not in meta or request.redirects:
            return None
        origin = meta["robots_origin"]
        lock = self._locks + origin
        deadline = asyncio.get_running_loop().time() + _LOCK_MS / 1000 + 5
        while True:
            stored = await self._answer_or_lock(keys=[self._answers, lock], args=[origin, self._worker, _LOCK_MS])
            if isinstance(stored, str):
                answer = json.loads(stored)
                body = base64.b64decode(answer["body"])
                return Response(request.url, int(answer["status"]), {}, body, request)
            if stored == 1:
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
            async with self._client.pipeline(transaction=False) as both:  # one round trip
                if response.status < 400 or (response.status < 500 and response.status not in (408, 429)):
                    answer = {"status": response.status, "body": base64.b64encode(response.body).decode("ascii")}
                    both.hset(self._answers, origin, json.dumps(answer))
                both.delete(self._locks + origin)
                await both.execute()
        return response

    async def process_exception(self, request: Request, exc: Exception) -> Request | Response | None:
        meta = request._meta
        if request.internal and meta and "robots_origin" in meta:
            await self._client.delete(self._locks + meta["robots_origin"])
        return None
