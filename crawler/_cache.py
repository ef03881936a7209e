"""A development HTTP cache: the second run of a spider on a site makes no request to it.

``-s http_cache=DIR`` (or ``--cache``) keeps every answer (status, headers, body) in a SQLite
file under ``DIR``, keyed by the request's fingerprint (method, canonical URL, body), and a
later request with the same key gets the stored answer without a download: robots.txt
included, so a re-run while writing a callback is instant and costs the site nothing.

It is a middleware, first in the chain, so it works the same with every downloader. Errors
(4xx, 5xx) are not kept unless ``http_cache_errors`` is set; entries older than
``http_cache_expiry`` seconds (0: never) are fetched again. It follows no HTTP caching
rules (``Cache-Control``, validators): it is a tool for developing a spider, not a shared
cache. (Client caches such as hishel or aiohttp-client-cache each belong to one client; this
one has to sit above all of them, and the standard library's sqlite3 is all it needs.)
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from multidict import CIMultiDict, CIMultiDictProxy

from ._log import get_logger
from ._middleware import BaseMiddleware
from ._request import Request
from ._response import Response
from ._url import fingerprint

__all__ = ["HttpCache"]

_SIGN, _HALF = 1 << 64, 1 << 63


class HttpCache(BaseMiddleware):
    """The cache as a middleware; one SQLite file (``DIR/http-cache.sqlite3``) per directory."""

    def __init__(self, directory: str | Path, *, expiry: float = 0.0, errors: bool = False) -> None:
        self.path = Path(directory) / "http-cache.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._expiry = expiry
        self._errors = errors
        # Autocommit and no fsync: a development cache may lose its last entries in a crash,
        # and must not slow the crawl down by a disk flush per page.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0.5)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS entries (key INTEGER PRIMARY KEY, url TEXT, status INTEGER,"
            " headers TEXT, body BLOB, stored REAL)"
        )
        self._served: set[int] = set()  # requests answered from the cache, not to be stored again
        #: Requests answered from the cache, and answers stored, in this crawl.
        self.hits = 0
        self.stored = 0

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _key(request: Request) -> int:
        url, meta = request.url, request._meta
        if meta and meta.get("truncate_body"):  # a body cut at a cap (robots.txt) is its own entry
            url = f"{url}#truncated-at={meta.get('max_response_bytes')}"
        key = fingerprint(url, request.method, request.body)
        return key - _SIGN if key >= _HALF else key  # SQLite integers are signed

    async def process_request(self, request: Request) -> Request | Response | None:
        try:
            row = self._db.execute(
                "SELECT status, headers, body, stored FROM entries WHERE key = ?", (self._key(request),)
            ).fetchone()
        except sqlite3.Error as exc:  # another process holding the file, a broken file: no cache
            self._failed(exc, request)
            return None
        if row is None:
            return None
        status, headers, body, stored = row
        if self._expiry and time.time() - stored > self._expiry:
            return None
        self._served.add(id(request))
        self.hits += 1
        return Response(request.url, status, _headers(headers), bytes(body), request)

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if id(request) in self._served:
            self._served.discard(id(request))
            return response
        # Errors are fetched again next time, unless asked; but a robots.txt's 4xx is an answer
        # (no rules), kept like any other, so a re-run asks a site without one nothing either.
        if response.status >= 400 and not self._errors and not (request.internal and response.status < 500):
            return response
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self._key(request),
                    request.url,
                    response.status,
                    json.dumps(list(response.headers.items())),
                    response.body,
                    time.time(),
                ),
            )
        except sqlite3.Error as exc:
            self._failed(exc, request)
            return response
        self.stored += 1
        return response

    def _failed(self, exc: sqlite3.Error, request: Request) -> None:
        get_logger().warning("http_cache_error", url=request.url, error=str(exc), path=str(self.path))


def _headers(text: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(json.loads(text)))
