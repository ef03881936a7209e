"""robots.txt (RFC 9309): one fetch per origin, parsed by protego, cached for the crawl.

The frontier asks :meth:`RobotsCache.verdict` for each new URL. While an origin's robots.txt
is unknown its requests are parked (they hold no worker) and one robots.txt request is queued
for that origin, through the same limiter, retries and redirects as any request. Then:

* 2xx: the rules apply (matched on the product token of ``user_agent``); ``Crawl-delay`` and
  ``Request-rate`` become a floor on that domain's interval. At most 500 KiB is read.
* 4xx other than 429: there are no rules; everything is allowed.
* 5xx, 429 or unreachable, after the usual retries with backoff: the origin is unavailable;
  its parked requests fail with reason ``robots_unavailable``, and robots.txt is tried again
  for requests that come after ``UNAVAILABLE_RETRY_S``.

A cached robots.txt older than 24 hours is fetched again when the next URL of its origin comes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from protego import Protego

__all__ = ["MAX_ROBOTS_BYTES", "RobotsCache", "RobotsRules", "origin_of", "product_token"]

MAX_ROBOTS_BYTES = 500 * 1024
MAX_AGE_S = 24 * 3600
UNAVAILABLE_RETRY_S = 300.0
MAX_ROBOTS_REDIRECTS = 5


def product_token(user_agent: str) -> str:
    """``crawler`` for ``crawler/0.1 (+https://...)``: the name robots.txt groups match on."""
    token = user_agent.strip().split("/", 1)[0].split()[0] if user_agent.strip() else "*"
    return token.lower()


def origin_of(canonical_url: str) -> str:
    """``scheme://host[:port]`` of a canonical URL (whose path always starts with ``/``)."""
    return canonical_url[: canonical_url.index("/", canonical_url.index("//") + 2)]


@dataclasses.dataclass(frozen=True, slots=True)
class RobotsRules:
    """What one origin's robots.txt says for our user agent."""

    parser: Protego | None  #: None: allow everything (no robots.txt, or a 4xx)
    token: str
    fetched_at: float

    def allows(self, url: str) -> bool:
        return self.parser is None or self.parser.can_fetch(url, self.token)

    def min_interval(self) -> float:
        """Seconds between requests that ``Crawl-delay``/``Request-rate`` ask for (0 if none)."""
        if self.parser is None:
            return 0.0
        delay = self.parser.crawl_delay(self.token) or 0.0
        rate = self.parser.request_rate(self.token)
        if rate is not None and rate.requests > 0:
            delay = max(delay, rate.seconds / rate.requests)
        return max(float(delay), 0.0)


class RobotsCache:
    def __init__(self, user_agent: str, clock: Callable[[], float]) -> None:
        self.token = product_token(user_agent)
        self._clock = clock
        self._rules: dict[str, RobotsRules] = {}
        self._unavailable: dict[str, tuple[float, str]] = {}  # origin -> (until, why)

    def verdict(self, origin: str, url: str) -> bool | None:
        """True/False once the origin's rules are known; None while they must be fetched."""
        rules = self._rules.get(origin)
        if rules is None or self._clock() - rules.fetched_at > MAX_AGE_S:
            return None
        return rules.allows(url)

    def unavailable(self, origin: str) -> str | None:
        """Why the origin's robots.txt could not be had, while that verdict stands; else None."""
        until, why = self._unavailable.get(origin, (0.0, ""))
        return why if until > self._clock() else None

    def loaded(self, origin: str, body: bytes) -> RobotsRules:
        text = body[:MAX_ROBOTS_BYTES].decode("utf-8", "replace")
        try:
            parser: Protego | None = Protego.parse(text)
        except Exception:  # a robots.txt protego cannot read is treated as having no rules
            parser = None
        return self._store(origin, parser)

    def allow_all(self, origin: str) -> RobotsRules:
        return self._store(origin, None)

    def mark_unavailable(self, origin: str, why: str) -> None:
        self._rules.pop(origin, None)
        self._unavailable[origin] = (self._clock() + UNAVAILABLE_RETRY_S, why)

    def _store(self, origin: str, parser: Protego | None) -> RobotsRules:
        rules = self._rules[origin] = RobotsRules(parser, self.token, self._clock())
        self._unavailable.pop(origin, None)
        return rules
